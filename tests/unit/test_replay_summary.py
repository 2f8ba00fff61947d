"""app/replay.py and streams/replay.Summary: what `flare replay` reports (SPEC §10)."""

from __future__ import annotations

from rich.console import Console

from app.replay import SHOWN, show
from streams.replay import Summary
from tables.replay import Missing

SID, OTHER, RID = "s" * 36, "t" * 36, "r" * 36


def summary(dry_run: bool, gaps: int) -> Summary:
    missing = [Missing(SID, f"http://api.test/users/{n}", "put", 3, {}, 1, "create")
               for n in range(gaps)]
    missing.append(Missing(SID, "http://api.test/users/x", "delete", 2, {}, 1, "delete"))
    return Summary("next", dry_run, read={"flare.documents": 9, "flare.deliveries": 20},
                   documents_live=gaps, documents_deleted=1, deliveries=4, missing=missing,
                   subscriptions={SID: RID, OTHER: RID}, offers=0 if dry_run else gaps + 1)


def rendered(s: Summary) -> str:
    console = Console(width=100)
    with console.capture() as captured:
        show(s, console)
    return " ".join(captured.get().split())


def test_counts_per_subscription_including_those_missing_nothing():
    data = summary(True, 2).to_json()
    assert data["missing"] == 3
    assert data["subscriptions"][SID] == {
        "resource": RID, "create": 2, "update": 0, "delete": 1,
        "documents": ["http://api.test/users/0", "http://api.test/users/1",
                      "http://api.test/users/x"]}
    assert data["subscriptions"][OTHER]["documents"] == []


def test_a_dry_run_lists_what_each_subscriber_would_be_sent():
    text = rendered(summary(True, 2))
    assert "dry run: 3 missing documents for 1 subscription(s) would be offered" in text
    assert "create http://api.test/users/1 (revision 3)" in text
    assert "delete http://api.test/users/x (revision 2)" in text
    assert "nothing was written" in text


def test_long_lists_are_cut_and_a_real_run_says_how_to_go_on():
    text = rendered(summary(False, SHOWN + 5))
    assert f"and {5 + 1} more" in text
    assert "FLARE_APP_ID=next" in text
