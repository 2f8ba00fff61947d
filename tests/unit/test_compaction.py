"""Compaction leaves the state a replay rebuilds as it was (DESIGN.md invariant 5).

Kafka's cleaner keeps, of the records before some offset, only the last one of each key,
and every record after it. So for random histories of one document — made by the real
deciding functions, with the dispatcher reading behind the log and its outcomes landing
after offers it has not read yet — these tests compact the log at every possible offset
and check that a rebuild from what is left equals a rebuild from everything.
"""

from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest

from tables.delivery import DeliveryState, _action, next_action, on_outcome
from tables.documents import Change, _state, apply, is_live
from tables.events import (OUTCOME, REDRIVE, REDRIVE_KEY, apply_event, base_key, event_key,
                           fan_out, outcome_value)
from tables.outcome import Outcome

SEEDS = range(400)
BASE = b"5f0c6a9e-0000-4000-8000-000000000001|http://api/users/1"


def _compact(log: list, cut: int, key) -> list:
    """What the cleaner leaves after cleaning up to ``cut``: the last record of each key
    before it, and everything from it on, in offset order."""
    last = {key(record): n for n, record in enumerate(log[:cut])}
    kept = set(last.values()) | set(range(cut, len(log)))
    return [log[n] for n in sorted(kept)]


# -- <prefix>.deliveries ------------------------------------------------------------------
def _random_change(rng: random.Random, offset: int) -> Change:
    if rng.random() < 0.25:
        return Change("delete", "u", "R", None, None, offset)
    revision = rng.randint(1, 6)
    return Change("put", "u", "R", revision, {"n": revision}, offset)


def _deliveries_history(rng: random.Random, steps: int) -> list[tuple[bytes, dict]]:
    """(key, event) records of one (subscription, document), as the changes stage and a
    live dispatcher (reading behind the log, one request in flight) write them."""
    document, log, offset = None, [], 0
    read, record, in_flight = 0, None, None
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.35:  # a change of the document: the fan-out offers it
            change = _random_change(rng, offset)
            applied = apply(document, change, offset)
            if applied.changed:
                document = applied.stored
            offered = fan_out(change, applied, offset) if applied.offer else None
            offset += 1
            if offered is not None:
                log.append((event_key(BASE, offered[0]), orjson.loads(offered[1])))
        elif roll < 0.7 and read < len(log):  # the dispatcher reads the next event
            state = apply_event(record, log[read][1], 0.0, None, 0.5)
            read += 1
            record = record if state is None else state.to_record()
        elif roll < 0.95 and in_flight is not None:  # the request in flight ends
            outcome = rng.choice([Outcome.DELIVERED, Outcome.DELIVERED, Outcome.DISCARDED,
                                  Outcome.RETRY])
            sent, in_flight = in_flight, None
            state = on_outcome(DeliveryState.from_record(record), outcome, 0.0, None, 0.5,
                               sent=sent)
            record = state.to_record()
            if outcome is not Outcome.RETRY:
                log.append((event_key(BASE, OUTCOME),
                            orjson.loads(outcome_value(outcome, 200, sent))))
        elif roll >= 0.95:
            log.append((event_key(BASE, REDRIVE_KEY), orjson.loads(REDRIVE)))
        if in_flight is None and record is not None:
            state, action = next_action(DeliveryState.from_record(record), 0.0)
            record = state.to_record()
            if action is not None:
                in_flight = state.pending
    return log


def _rebuild_deliveries(log: list[tuple[bytes, dict]]) -> tuple:
    record = None
    for key, event in log:
        assert base_key(key) == BASE
        state = apply_event(record, event, 0.0, None, 0.5)
        record = record if state is None else state.to_record()
    state = DeliveryState() if record is None else DeliveryState.from_record(record)
    pending = state.pending
    action = None if pending is None else _action(pending, state)
    # What the subscriber has, and what it would be sent next (create/update/delete).
    return state.received, None if action is None else (action, pending.revision)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_last_event_of_each_deliveries_key_rebuilds_the_same_state(seed):
    rng = random.Random(seed)
    log = _deliveries_history(rng, rng.randint(5, 60))
    everything = _rebuild_deliveries(log)
    for cut in range(len(log) + 1):
        assert _rebuild_deliveries(_compact(log, cut, lambda r: r[0])) == everything, cut


def test_one_key_for_all_offers_would_not_do():
    """The reason for the keys: a losing put's offer, or the offer of a put after a delete,
    under the winning offers' key hides what a replay needs."""
    def one_key(record):
        return base_key(record[0]) if record[1]["type"] == "offer" else record[0]
    broken = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        log = _deliveries_history(rng, rng.randint(5, 60))
        everything = _rebuild_deliveries(log)
        broken += any(_rebuild_deliveries(_compact(log, cut, one_key)) != everything
                      for cut in range(len(log) + 1))
    assert broken > len(SEEDS) // 10


# -- <prefix>.documents -----------------------------------------------------------------
def _documents_history(rng: random.Random, steps: int,
                       repair: bool = True) -> tuple[list[Change], dict | None]:
    """The documents topic of one URL, as producers and the changes stage write it: a
    repair goes to the end of the log a little later (other changes may come first), and
    the stage reads behind. Returns the log once the stage has read all of it, and the
    record the stage holds then."""
    log: list[Change] = []
    held, read, repairs = None, 0, []

    def produce_repair(repair):
        record, lost = repair
        log.append(Change("put" if is_live(record) else "delete", "u", "R",
                          record["revision"] if is_live(record) else None,
                          record["content"] if is_live(record) else None,
                          record["updatedAt"], lost))

    def step_stage():
        nonlocal held, read
        applied = apply(held, log[read], read)
        if applied.changed:
            held = applied.stored
        if applied.repair is not None and repair:
            repairs.append((applied.repair, read))
        read += 1

    for _ in range(steps):
        roll = rng.random()
        if roll < 0.4:
            change = _random_change(rng, len(log))
            if change.action == "put" and rng.random() < 0.5:  # same revision, other content
                change = replace(change, document={"n": change.revision, "other": True})
            log.append(change)
        elif roll < 0.7 and repairs:
            produce_repair(repairs.pop(0))
        elif read < len(log):
            step_stage()
    while read < len(log) or repairs:
        if repairs:
            produce_repair(repairs.pop(0))
        while read < len(log):
            step_stage()
    return log, held


def _rebuild_documents(log: list[tuple[int, Change]]) -> tuple:
    stored = None
    for offset, change in log:
        applied = apply(stored, change, offset)
        assert not (change.repair is not None and applied.offer)  # a repair is never offered
        if applied.changed:
            stored = applied.stored
    return ("delete",) if stored is None else _state(stored)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_documents_topic_repaired_rebuilds_what_the_stage_holds(seed):
    rng = random.Random(seed)
    log, held = _documents_history(rng, rng.randint(5, 50))
    want = ("delete",) if held is None else _state(held)
    numbered = list(enumerate(log))
    assert _rebuild_documents(numbered) == want
    for cut in range(len(log) + 1):
        assert _rebuild_documents(_compact(numbered, cut, lambda r: "u")) == want, cut


def test_a_repair_read_back_changes_nothing_and_offers_nothing():
    newer = Change("put", "u", "R", 5, {"n": 5}, 10)
    held = apply(None, newer, 3).stored
    lost = apply(held, Change("put", "u", "R", 4, {"n": 4}, 11), 4)
    assert not lost.changed and lost.repair is held
    repair = Change("put", "u", "R", 5, {"n": 5}, 10, repair=4)
    again = apply(held, repair, 5)
    assert (again.changed, again.offer, again.repair) == (False, False, None)


def test_a_stale_repair_repairs_again_once():
    held = apply(None, Change("put", "u", "R", 5, {"n": 5}, 10), 3).stored
    deleted = apply(held, Change("delete", "u", "R", None, None, 12), 6).stored
    # the put at 4 lost to the held one; its repair lands after the delete at 6
    stale = apply(deleted, Change("put", "u", "R", 5, {"n": 5}, 10, repair=4), 7)
    assert not stale.changed and stale.repair is deleted  # the delete, stated again
    back = apply(deleted, Change("delete", "u", "R", None, None, 12, repair=7), 8)
    assert (back.changed, back.repair, back.offer) == (False, None, False)


def test_an_equal_put_with_the_same_document_needs_no_repair():
    held = apply(None, Change("put", "u", "R", 5, {"n": 5}, 10), 3).stored
    assert apply(held, Change("put", "u", "R", 5, {"n": 5}, 20), 4).repair is None
    assert apply(held, Change("put", "u", "R", 5, {"n": 6}, 20), 4).repair is held


def test_without_repairs_a_rebuild_can_hold_a_loser():
    broken = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        log, held = _documents_history(rng, rng.randint(5, 50), repair=False)
        want = ("delete",) if held is None else _state(held)
        broken += _rebuild_documents(_compact(list(enumerate(log)), len(log), lambda r: "u")) != want
    assert broken > len(SEEDS) // 10
