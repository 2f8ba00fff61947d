"""Backfill of a subscription (SPEC §11): `POST .../backfill` and `flare backfill` offer the
current revision of every live document of the resource, as `create`, through the
dispatcher; what the subscriber has already is skipped."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.flare_process import FLARE, poll, unique_name
from tests.integration.delivery_support import delete, new_resource, put, subscribe, wait_count
from tests.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver():
    receiver = Receiver().up()
    yield receiver
    receiver.down()


def _stored(flare, url: str, version: int | None) -> bool:
    answer = flare.get(f"/documents/{url}")
    if version is None:
        return answer.status_code == 404
    return answer.status_code == 200 and answer.json()["revision"] == version


def _cli_backfill(flare, rid: str, sid: str) -> str:
    done = subprocess.run([FLARE, "backfill", "--resource", rid, "--subscription", sid,
                           "--url", flare.base_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _markers_then_history(flare, receiver, base: str, latest: dict[int, int | None]) -> dict:
    """PUT one more revision of every document and wait for it: per key, the offers made
    before it are settled once it has arrived (one partition, in order). Returns path →
    [(action, version)] of everything the subscriber got."""
    for n in latest:
        put(flare, f"{base}/{n}", 100)
    for n in latest:
        poll(lambda n=n: any(r.json()["document"]["version"] == 100
                             for r in receiver.received(f"/b/{n}")),
             timeout=30, message=f"the marker revision of document {n}")
    return {n: [(r.json()["action"], r.json()["document"]["version"])
                for r in receiver.received(f"/b/{n}")] for n in latest}


def test_backfill_sends_every_live_document_once_as_create(flare_factory, receiver):
    flare = flare_factory().start()
    rid, base = new_resource(flare)
    # Documents PUT before the subscription existed; one deleted, one with several revisions.
    latest = {1: 2, 2: 3, 3: None, 4: 5}
    put(flare, f"{base}/1", 1)
    put(flare, f"{base}/1", 2)
    put(flare, f"{base}/2", 3)
    put(flare, f"{base}/3", 1)
    delete(flare, f"{base}/3")
    put(flare, f"{base}/4", 5)
    put(flare, f"{base}/4", 4)  # older: the stored one stays
    for n, version in latest.items():
        poll(lambda n=n, v=version: _stored(flare, f"{base}/{n}", v), timeout=30,
             message=f"document {n} stored")
    sid = subscribe(flare, rid, receiver.url + "/b/{id}")["id"]

    # SPEC's titles for what is unknown.
    unknown = flare.post(f"/resources/nope/subscriptions/{sid}/backfill")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["title"] == "error during resource search"
    unknown = flare.post(f"/resources/{rid}/subscriptions/nope/backfill")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["title"] == "error during subscription search"
    assert receiver.received() == []  # nothing is sent to a new subscriber by itself

    assert "offered 3 documents" in _cli_backfill(flare, rid, sid)
    for n in (1, 2, 4):
        wait_count(receiver, f"/b/{n}", 1)

    # A second backfill offers the same revisions: the subscriber has them, nothing is sent.
    again = flare.post(f"/resources/{rid}/subscriptions/{sid}/backfill")
    assert again.status_code == 202, again.text
    assert again.json() == {"offered": 3}

    history = _markers_then_history(flare, receiver, base, latest)
    assert history == {1: [("create", 2), ("update", 100)],
                       2: [("create", 3), ("update", 100)],
                       3: [("create", 100)],   # deleted: never offered by the backfill
                       4: [("create", 5), ("update", 100)]}


def _accepted(flare) -> float:
    for family in text_string_to_metric_families(flare.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "flare_changes_accepted_total":
                return sample.value
    return 0.0


def _changes_partitions(flare) -> set[int]:
    """The documents partitions this process's changes stage owns (from /metrics)."""
    owned = set()
    for family in text_string_to_metric_families(flare.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "flare_consumer_lag" and sample.labels["stage"] == "changes":
                owned.add(int(sample.labels["partition"]))
    return owned


def test_backfill_asks_every_process_that_holds_documents(flare_factory, receiver):
    # With tokens: the processes ask each other with the first one; a client may use any.
    env = {"FLARE_API_TOKENS": "first-token,second-token"}
    first = flare_factory(app_id=unique_name("bf"), env=env)
    second = flare_factory(prefix=first.prefix, app_id=first.env["FLARE_APP_ID"], env=env)
    for flare in (first, second):
        flare.client.headers["authorization"] = "Bearer second-token"
        flare.start()
    rid, base = new_resource(first)
    documents = range(1, 17)
    for n in documents:
        put(first, f"{base}/{n}", n)
    # Stored by both processes' changes stages together (a GET would be forwarded to the
    # owner, which this base does not do with a token).
    poll(lambda: _accepted(first) + _accepted(second) >= len(documents), timeout=30,
         message="every document stored")

    def shared() -> bool:
        one, two = _changes_partitions(first), _changes_partitions(second)
        return bool(one) and bool(two) and not one & two and one | two == set(range(4))

    poll(shared, timeout=60, interval=0.5, message="both processes own documents partitions")
    sid = subscribe(first, rid, receiver.url + "/b/{id}")["id"]

    done = subprocess.run([FLARE, "backfill", "-r", rid, "-s", sid, "--url", second.base_url,
                           "--token", "second-token"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"offered {len(documents)} documents" in done.stdout
    for n in documents:
        got = wait_count(receiver, f"/b/{n}", 1)
        assert [(r.json()["action"], r.json()["document"]["version"]) for r in got] == [("create", n)]
    assert len(receiver.received()) == len(documents)

    # A member that does not answer (killed: the group notices only after its session
    # timeout) makes the backfill a 503 that names it, not a partial 202.
    second.kill()
    answer = first.post(f"/resources/{rid}/subscriptions/{sid}/backfill")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["title"] == "error during backfill"
    assert second.base_url in answer.json()["error"]["detail"]
