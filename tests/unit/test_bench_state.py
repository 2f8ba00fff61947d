"""bench/state.py's pure parts, and the claim its deliveries step rests on: an ``outcome``
event makes the same record as a real delivery of that revision."""

from __future__ import annotations

import orjson
import pytest

from bench import report, state
from tables.delivery import DeliveryState, PendingChange, offer, on_outcome
from tables.events import apply_event
from tables.outcome import Outcome


@pytest.mark.parametrize(("n", "expected"), [
    (100_000, "100k"), (1_000_000, "1m"), (10_000_000, "10m"), (12_345, "12345")])
def test_label(n, expected):
    assert state.label(n) == expected


def test_deliveries_at_most_a_million():
    assert state.deliveries_for(100_000) == 100_000
    assert state.deliveries_for(10_000_000) == 1_000_000


def test_outcome_event_makes_a_delivered_record():
    (event,) = state.outcomes("sub-1", 7, 8)
    assert event.key == b"sub-1|" + state.workload.url(7).encode()
    applied = apply_event(None, orjson.loads(event.value), now=100.0, retry=None, rand=0.5)
    # What the dispatcher stores after sending revision 1 and getting a 200.
    pending, _ = offer(DeliveryState(), PendingChange("put", 1, {"id": 7}, 0), now=100.0)
    sent = on_outcome(pending, Outcome.DELIVERED, 100.0, None, 0.5,
                      sent=pending.pending, status=200)
    assert applied == sent
    assert applied.received == 1 and applied.pending is None


def test_estimate_grows_with_the_size():
    small = state.estimate_seconds(1_000_000, state.DEFAULT_RATES)
    assert state.estimate_seconds(10_000_000, state.DEFAULT_RATES) > 5 * small


def test_metric_reads_one_sample():
    text = ('flare_table_records{table="documents"} 1e+06\n'
            'flare_table_records{table="deliveries"} 0.0\nflare_deliveries_pending 3.0\n')
    assert state._metric(text, "flare_table_records", 'table="documents"') == 1_000_000
    assert state._metric(text, "flare_deliveries_pending") == 3
    assert state._metric(text, "flare_absent") == 0


def test_a_module_section_is_written_beside_the_full_run(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\n{report.BEGIN}\nold full run\n{report.END}\n\nprose\n")
    figure = report.Figure(key="state_1m_x", title="x", unit="s", value=1.0, baseline=2.0,
                           baseline_title="y")
    run = {"finished": "now", "command": "python -m bench --only state", "seconds": 1.0,
           "load_before": 0.0, "load_after": 0.0, "machine": report.machine("test")}
    for _ in range(2):  # written again: replaced, not added
        report.write_docs([figure], run, docs, section="state")
    text = docs.read_text()
    assert "old full run" in text and "prose" in text
    begin, end = report.markers("state")
    assert text.count(begin) == 1 and text.count(end) == 1


def test_a_missed_goal_is_written_with_its_reason_and_a_met_one_without():
    """Issue 13's "done when": each goal met, or said with why and the next step."""
    missed = report.Figure(key="a", title="fan-out", unit="s", value=5.0, baseline=2.0,
                           baseline_title="raw", higher_is_better=False, goal_max=1.5,
                           when_missed="raw alone took 2.0 s. Next: a free core")
    met = report.Figure(key="b", title="restart", unit="s", value=3.0, baseline=3.0,
                        baseline_title="empty", higher_is_better=False, goal_max=10.0,
                        when_missed="never shown")
    run = {"finished": "now", "command": "python -m bench", "seconds": 1.0,
           "load_before": 0.0, "load_after": 0.0, "machine": report.machine("test")}
    text = report.markdown([missed, met], run)
    assert "- fan-out: raw alone took 2.0 s. Next: a free core" in text
    assert "never shown" not in text
    assert missed.as_json()["when_missed"].startswith("raw alone")
