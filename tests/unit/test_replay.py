"""tables/replay.py: rebuilding the tables from the topics and what subscribers are missing
(SPEC §10-§11, DESIGN.md invariant 5)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from tables.delivery import DeliveryState, PendingChange
from tables.documents import ResourceIndex
from tables.events import REDRIVE, offer_value, outcome_value
from tables.outcome import Outcome
from tables.replay import (Missing, backfill_offers, missing, offers_for, replay_change,
                           replay_event)
from tables.resources import Resource

USERS = Resource("r-users", "http://api.test/users/{id}", "version", "", 1)
INDEX = ResourceIndex([USERS])
URL = "http://api.test/users/1"


@dataclass(frozen=True)
class Sub:
    id: str
    resource_id: str


def put(version: int, url: str = URL) -> bytes:
    return orjson.dumps({"action": "put", "id": url, "document": {"version": version}})


def delete(url: str = URL) -> bytes:
    return orjson.dumps({"action": "delete", "id": url})


def rebuild_documents(*values: bytes) -> dict | None:
    record = None
    for offset, value in enumerate(values):
        record = replay_change(record, URL.encode(), value, 1_000_000 + offset * 1000, offset, INDEX)
    return record


# -- 1. the documents table, as the changes stage keeps it (§8) ------------------------------

@pytest.mark.parametrize("values, live, revision", [
    ([put(1)], True, 1),
    ([put(1), put(3), put(2)], True, 3),                       # highest revision wins
    ([put(2), put(2)], True, 2),                               # equal: unchanged
    ([put(2), delete()], False, 2),                            # a delete leaves a mark
    ([put(5), delete(), put(1)], True, 1),                     # a new life at any revision
    ([delete()], None, None),                                  # nothing to delete
    ([b"{nope", put(1), b"[1]"], True, 1),                     # rejected messages skipped
])
def test_documents_rebuilt_as_the_changes_stage_decides(values, live, revision):
    record = rebuild_documents(*values)
    if live is None:
        assert record is None
        return
    assert bool(not record.get("deleted")) is live
    assert record["revision"] == revision
    assert record["resource"] == USERS.id


def test_a_message_of_no_known_resource_is_skipped():
    assert replay_change(None, b"http://x.test/a/1", orjson.dumps(
        {"action": "put", "id": "http://x.test/a/1", "document": {"version": 1}}), 0, 0, INDEX) is None


# -- 1. the deliveries table, as the dispatcher applies events (§9) -------------------------

def offer_event(kind: str, revision: int) -> bytes:
    return offer_value(kind, revision, {"version": revision}, 100)


def outcome(kind: str, revision: int, generation: int = 0, how=Outcome.DELIVERED) -> bytes:
    return outcome_value(how, 200, PendingChange(kind, revision, None, 0, generation))


def rebuild_deliveries(*values: bytes) -> DeliveryState:
    record = None
    for n, value in enumerate(values):
        record = replay_event(record, value, 1000.0 + n, subscribed=True)
    return DeliveryState() if record is None else DeliveryState.from_record(record)


@pytest.mark.parametrize("events, received, pending", [
    ([offer_event("put", 1)], None, ("put", 1)),                                  # not yet sent
    ([offer_event("put", 1), outcome("put", 1)], 1, None),                        # delivered
    ([offer_event("put", 1), outcome("put", 1, how=Outcome.DISCARDED)], 1, None),  # discarded
    ([offer_event("put", 1), outcome("put", 1, how=Outcome.RETRY)], None, ("put", 1)),
    ([offer_event("put", 1), offer_event("put", 3), outcome("put", 3)], 3, None),  # coalesced
    ([offer_event("put", 1), outcome("put", 1), offer_event("put", 2)], 1, ("put", 2)),
    ([offer_event("put", 2), outcome("put", 2), offer_event("put", 1)], 2, None),  # older: nothing
    ([offer_event("put", 2), outcome("put", 2), offer_event("delete", 2),
      outcome("delete", 2, 1)], None, None),                                      # delete clears
    ([offer_event("put", 2), outcome("put", 2), offer_event("delete", 2)], 2, ("delete", 2)),
    ([offer_event("put", 1), outcome("put", 1), outcome("put", 1)], 1, None),     # read twice
    ([offer_event("put", 1), REDRIVE, b"{nope", orjson.dumps({"type": "mark"})], None, ("put", 1)),
])
def test_deliveries_rebuilt_as_the_dispatcher_applies_events(events, received, pending):
    state = rebuild_deliveries(*events)
    assert state.received == received
    got = None if state.pending is None else (state.pending.action_kind, state.pending.revision)
    assert got == pending
    assert not state.dead


def test_a_deleted_subscription_loses_its_record():
    assert replay_event({"v": 1}, offer_event("put", 1), 0.0, subscribed=False) is None


# -- 2. what a subscriber is missing ---------------------------------------------------------

def live(revision: int, resource: str = USERS.id) -> dict:
    return {"v": 1, "revision": revision, "content": {"version": revision},
            "resource": resource, "updatedAt": 7}


def mark(revision: int) -> dict:
    return {**live(revision), "deleted": True}


def record(received=None, pending=None, generation=0, dead=False) -> dict:
    change = None if pending is None else PendingChange(*pending, None, 0, generation + (pending[0] == "delete"))
    return DeliveryState(received=received, pending=change, received_generation=generation,
                         dead=dead).to_record()


SUB = Sub("s1", USERS.id)
KEY = b"s1|" + URL.encode()


@pytest.mark.parametrize("document, delivery, expected", [
    (live(3), None, ("put", 3, "create")),                       # never had it (or backfill)
    (live(3), record(received=3), None),                         # has it
    (live(3), record(received=5), None),                         # has newer: never backwards
    (live(3), record(received=2), ("put", 3, "update")),         # older
    (live(3), record(received=2, pending=("put", 3)), ("put", 3, "update")),  # waiting
    (live(3), record(received=2, pending=("put", 3), dead=True), ("put", 3, "update")),  # dead
    (live(3), record(received=3, pending=("put", 4)), ("put", 3, "update")),  # still waiting
    (mark(3), record(received=3), ("delete", 3, "delete")),      # still holds a deleted one
    (mark(3), record(received=3, pending=("delete", 3), dead=True), ("delete", 3, "delete")),
    (mark(3), None, None),                                       # never had it
    (mark(3), record(received=None, generation=1), None),        # heard the delete
    (live(3, resource="r-other"), None, None),                   # another resource's document
])
def test_missing(document, delivery, expected):
    deliveries = {} if delivery is None else {KEY: delivery}
    found = missing({URL: document}, deliveries, [SUB])
    if expected is None:
        assert found == []
    else:
        assert [(m.kind, m.revision, m.action) for m in found] == [expected]
        assert found[0].subscription_id == "s1" and found[0].url == URL
        assert found[0].document == {"version": 3}


def test_missing_per_subscription_and_document_in_order():
    documents = {f"http://api.test/users/{n}": live(1) for n in (2, 1)}
    subs = [Sub("b", USERS.id), Sub("a", USERS.id), Sub("c", "r-other")]
    found = missing(documents, {b"a|http://api.test/users/1": record(received=1)}, subs)
    assert [(m.subscription_id, m.url[-1]) for m in found] == [("a", "2"), ("b", "1"), ("b", "2")]


# -- 3. what is produced -------------------------------------------------------------------------

def test_offers_for_a_gap_are_an_offer_then_a_redrive():
    gap = Missing("s1", URL, "put", 3, {"version": 3}, 7, "create")
    assert offers_for([gap]) == [(KEY, offer_value("put", 3, {"version": 3}, 7), KEY),
                                 (b"s1.redrive|" + URL.encode(), REDRIVE, KEY)]


def test_a_missing_delete_is_offered_under_its_key_with_its_generation():
    gap = Missing("s1", URL, "delete", 3, {"version": 3}, 7, "delete", generation=12)
    offer_key, value, base = offers_for([gap])[0]
    assert (offer_key, base) == (b"s1.delete|" + URL.encode(), KEY)
    assert orjson.loads(value)["generation"] == 12


def test_backfill_offers_every_live_document_of_the_resource_as_a_put():
    table = {b"http://api.test/users/1": orjson.dumps(live(2)),
             b"http://api.test/users/2": orjson.dumps(mark(4)),
             b"http://api.test/users/3": orjson.dumps(live(1, resource="r-other"))}
    assert backfill_offers(table, USERS.id, "s1") == [
        (KEY, offer_value("put", 2, {"version": 2}, 7))]
