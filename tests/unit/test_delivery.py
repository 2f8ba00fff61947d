"""tables.delivery: DESIGN invariants 2-3 and SPEC §9.1, §9.3-§9.6, transition by transition."""

from __future__ import annotations

import random
from typing import Any
from collections import Counter
from dataclasses import replace

import pytest

from tables.delivery import (
    DeliveryState,
    PendingChange,
    due,
    next_action,
    offer,
    on_outcome,
    redrive,
    webhook_id,
)
from tables.outcome import Outcome
from tables.subscriptions import Retry

NOW = 1000.0


def put(rev: int, generation: int = 0) -> PendingChange:
    return PendingChange("put", rev, {"n": rev}, 1_700_000_000 + rev, generation)


def delete(rev: int | None = 9, generation: int = 0) -> PendingChange:
    return PendingChange("delete", rev, {"n": rev}, 1_800_000_000, generation)


def waiting(pending: PendingChange, received: int | None = None, **kw: Any) -> DeliveryState:
    """A state with ``pending`` due at NOW (its life: the latest generation it has seen)."""
    kw.setdefault("life", max(pending.generation, kw.get("received_generation", 0)))
    return DeliveryState(received=received, pending=pending, next_attempt_at=NOW, **kw)


FAILING = {"attempt": 2, "first_failure_at": 900.0, "next_attempt_at": NOW + 50, "last_status": 503}


@pytest.mark.parametrize(
    ("state", "change", "after", "send_now"),
    [
        # §9.1 none + put → create: the change waits, due now
        (DeliveryState(), put(5), waiting(put(5)), True),
        # §9.1 r + put > r → update
        (DeliveryState(received=5), put(6), waiting(put(6), 5), True),
        # §9.1 r + put ≤ r → nothing (equal, then older)
        (DeliveryState(received=5), put(5), DeliveryState(received=5), False),
        (DeliveryState(received=5), put(4), DeliveryState(received=5), False),
        # §9.1 some + delete → delete; the delete starts the document's next life
        (DeliveryState(received=5), delete(5), waiting(delete(5, 1), 5), True),
        # §9.1 none + delete → nothing, but a later put is of the next life (a rebuild
        # from a compacted topic may see the put without what was before the delete)
        (DeliveryState(), delete(), DeliveryState(life=1), False),
        # a delete offer numbered by its documents offset: its life is that number
        (DeliveryState(received=5), delete(5, 42), waiting(delete(5, 42), 5), True),
        # §9.4 a newer revision replaces a retrying one and keeps its backoff
        (
            DeliveryState(3, put(5), **FAILING),
            put(7),
            DeliveryState(3, put(7), **FAILING),
            False,
        ),
        # §9.4 never an older (or equal) one replacing a newer
        (DeliveryState(3, put(5), **FAILING), put(4), DeliveryState(3, put(5), **FAILING), False),
        (DeliveryState(3, put(5), **FAILING), put(5), DeliveryState(3, put(5), **FAILING), False),
        # §9.4 a delete is newer than anything before it in the log
        (
            DeliveryState(3, put(5), **FAILING),
            delete(5),
            DeliveryState(3, delete(5, 1), **FAILING, life=1),
            False,
        ),
        # §9.1 a put after a waiting delete: the delete cleared the record, so any revision
        # (even below the record) replaces it, in the next life (sent as a create)
        (waiting(delete(5, 1), 3), put(2), waiting(put(2, 1), 3), True),
        # a second delete adds nothing to a waiting one
        (waiting(delete(5, 1), 3), delete(5), waiting(delete(5, 1), 3, life=2), False),
        # §9.4 a delete behind a create that may be in flight is kept, not judged yet
        (waiting(put(5)), delete(5), waiting(delete(5, 1)), True),
        # §9.1 after a delivered delete (no record, life 1), a put is a create in life 1
        (
            DeliveryState(received_generation=1),
            put(1),
            waiting(put(1, 1), received_generation=1),
            True,
        ),
        # §9.6 (SPEC silent) a newer change revives a dead delivery with a fresh streak
        (
            DeliveryState(3, put(5), 9, NOW + 99, first_failure_at=1.0, dead=True),
            put(7),
            DeliveryState(3, put(7), attempt=0, next_attempt_at=NOW),
            True,
        ),
        # §9.6 an older change leaves a dead delivery parked
        (
            DeliveryState(3, put(5), attempt=9, dead=True),
            put(4),
            DeliveryState(3, put(5), attempt=9, dead=True),
            False,
        ),
    ],
)
def test_offer(
    state: DeliveryState, change: PendingChange, after: DeliveryState, send_now: bool
) -> None:
    assert offer(state, change, NOW) == (after, send_now)


@pytest.mark.parametrize(
    ("state", "after", "action"),
    [
        (waiting(put(5)), waiting(put(5)), "create"),  # §9.1 none + put
        (waiting(put(5), 3), waiting(put(5), 3), "update"),  # §9.1 r + newer put
        (waiting(delete(5, 1), 5), waiting(delete(5, 1), 5), "delete"),  # §9.1 some + delete
        # §9.1 none + delete: the create it followed was never delivered; cleared, not sent
        (waiting(delete(5, 1)), DeliveryState(next_attempt_at=NOW, life=1), None),
        # §9.1 + §9.4 a put that replaced a delete is a create, even below the record
        (waiting(put(2, 1), 3), waiting(put(2, 1), 3), "create"),
        (waiting(put(7, 1), 3), waiting(put(7, 1), 3), "create"),
        # same life as the record: the plain §9.1 rule
        (
            waiting(put(5, 1), 2, received_generation=1),
            waiting(put(5, 1), 2, received_generation=1),
            "update",
        ),
        # §9.3 not due yet: waiting for the backoff
        (DeliveryState(3, put(5), **FAILING), DeliveryState(3, put(5), **FAILING), None),
        # §9.6 dead: only a redrive sends it
        (waiting(put(5), dead=True), waiting(put(5), dead=True), None),
        (DeliveryState(5), DeliveryState(5), None),  # nothing waiting
    ],
)
def test_next_action(state: DeliveryState, after: DeliveryState, action: str | None) -> None:
    assert next_action(state, NOW) == (after, action)


SLOW = Retry(initial=2.0, max=10.0, give_up_after=60.0)


@pytest.mark.parametrize(
    ("state", "sent", "outcome", "status", "policy", "after"),
    [
        # §9.3 delivered: the record becomes the revision sent (invariant 2)
        (
            waiting(put(5)),
            put(5),
            Outcome.DELIVERED,
            200,
            None,
            DeliveryState(5, None, 0, NOW, None, 200),
        ),
        # §9.3 discarded: given up on purpose, record updated all the same, no retry
        (
            DeliveryState(3, put(5), **FAILING),
            put(5),
            Outcome.DISCARDED,
            500,
            None,
            DeliveryState(5, None, 0, NOW, None, 500),
        ),
        # §9.1 a delivered delete clears the record (and the next put is a create)
        (
            waiting(delete(5, 1), 5),
            delete(5, 1),
            Outcome.DELIVERED,
            200,
            None,
            DeliveryState(None, None, 0, NOW, None, 200, received_generation=1, life=1),
        ),
        # §9.3 first failure: record kept, retry after rand * 1 s
        (
            waiting(put(5), 3),
            put(5),
            Outcome.RETRY,
            503,
            None,
            DeliveryState(3, put(5), 1, NOW + 0.5, NOW, 503),
        ),
        # §9.3 transport error (no status), third failure: rand * 4 s, streak start kept
        (
            DeliveryState(3, put(5), **FAILING),
            put(5),
            Outcome.RETRY,
            None,
            None,
            DeliveryState(3, put(5), 3, NOW + 2.0, 900.0, None),
        ),
        # §9.6 retry policy: initial 2 s, doubling to 8 s (under the 10 s cap)
        (
            DeliveryState(3, put(5), 2, NOW, NOW - 10, 503),
            put(5),
            Outcome.RETRY,
            503,
            SLOW,
            DeliveryState(3, put(5), 3, NOW + 4.0, NOW - 10, 503),
        ),
        # §9.6 retry policy: capped at 10 s
        (
            DeliveryState(3, put(5), 6, NOW, NOW - 10, 503),
            put(5),
            Outcome.RETRY,
            503,
            SLOW,
            DeliveryState(3, put(5), 7, NOW + 5.0, NOW - 10, 503),
        ),
        # §9.6 past giveUpAfter: parked dead, the change kept (never dropped)
        (
            DeliveryState(3, put(5), attempt=7, first_failure_at=NOW - 60, next_attempt_at=NOW),
            put(5),
            Outcome.RETRY,
            503,
            SLOW,
            DeliveryState(3, put(5), 8, NOW, NOW - 60, 503, dead=True),
        ),
        # §9.4 a newer change offered while put(5) was in flight survives its delivery,
        # due at once (invariant 3: nothing lost, one in flight)
        (
            waiting(put(7), 3),
            put(5),
            Outcome.DELIVERED,
            200,
            None,
            DeliveryState(5, put(7), 0, NOW, None, 200),
        ),
        # ... and its failure: the newer one waits for the backoff instead
        (
            waiting(put(7), 3),
            put(5),
            Outcome.RETRY,
            503,
            None,
            DeliveryState(3, put(7), 1, NOW + 0.5, NOW, 503),
        ),
        # §9.1 a delete offered while a create was in flight: needed once the create arrived
        (
            waiting(delete(5, 1)),
            put(5),
            Outcome.DELIVERED,
            200,
            None,
            DeliveryState(5, delete(5, 1), 0, NOW, None, 200, life=1),
        ),
        # ... and dropped when the create failed: the subscriber never had the document
        (
            waiting(delete(5, 1)),
            put(5),
            Outcome.RETRY,
            503,
            None,
            DeliveryState(None, None, 0, NOW, None, 503, life=1),
        ),
        # §9.1 deleted and put again at the same revision while put(5) was in flight
        (
            waiting(put(5, 1)),
            put(5),
            Outcome.DELIVERED,
            200,
            None,
            DeliveryState(5, put(5, 1), 0, NOW, None, 200, life=1),
        ),
    ],
)
def test_on_outcome(
    state: DeliveryState,
    sent: PendingChange,
    outcome: Outcome,
    status: int | None,
    policy: Retry | None,
    after: DeliveryState,
) -> None:
    assert on_outcome(state, outcome, NOW, policy, 0.5, sent=sent, status=status) == after


@pytest.mark.parametrize(
    ("state", "after"),
    [
        # §9.6 a dead delivery is sent again: due now, attempt 0, a fresh streak
        (
            DeliveryState(3, put(5), 8, NOW - 5, NOW - 600, 503, dead=True),
            DeliveryState(3, put(5), 0, NOW, None, 503),
        ),
        # §9.6 only dead ones: a retrying delivery keeps its schedule
        (DeliveryState(3, put(5), **FAILING), DeliveryState(3, put(5), **FAILING)),
        (DeliveryState(5), DeliveryState(5)),
    ],
)
def test_redrive(state: DeliveryState, after: DeliveryState) -> None:
    assert redrive(state, NOW) == after


@pytest.mark.parametrize(
    ("state", "now", "is_due"),
    [
        (waiting(put(5)), NOW, True),  # waiting and due
        (DeliveryState(3, put(5), **FAILING), NOW, False),  # §9.3 in backoff
        (DeliveryState(3, put(5), **FAILING), NOW + 50, True),  # §9.3 backoff over
        (waiting(put(5), dead=True), NOW, False),  # §9.6 parked
        (DeliveryState(5), NOW, False),  # nothing waiting
    ],
)
def test_due(state: DeliveryState, now: float, is_due: bool) -> None:
    assert due(state, now) is is_due


def test_webhook_id_is_stable_and_distinct() -> None:
    """§9.5: one id for every attempt of one (subscription, document, revision, action)."""
    base = ("sub-1", "http://api/users/1", 5, "update")
    wid = webhook_id(*base)
    assert wid == webhook_id(*base)
    assert wid.startswith("msg_") and len(wid) == 36
    others = [
        ("sub-2", "http://api/users/1", 5, "update"),
        ("sub-1", "http://api/users/2", 5, "update"),
        ("sub-1", "http://api/users/1", 6, "update"),
        ("sub-1", "http://api/users/1", 5, "create"),
        ("sub-1", "http://api/users/1", None, "update"),
        ("sub-1|http://api/users/1", "", 5, "update"),  # no ambiguity from joining
    ]
    assert len({wid} | {webhook_id(*o) for o in others}) == len(others) + 1


def test_record_round_trip() -> None:
    """STYLE 10: the table value is self-describing and gives back the same state."""
    state = DeliveryState(3, put(7, 2), 4, NOW + 8, 900.0, None, True, 1)
    record = state.to_record()
    assert record["v"] == 1
    assert DeliveryState.from_record(record) == state
    assert DeliveryState.from_record(DeliveryState().to_record()) == DeliveryState()


def _simulate(seed: int) -> dict[str, int]:
    """A dispatcher in miniature: changes, sends and outcomes in a random order.

    Checks DESIGN invariants 2-3 and §9.1/§9.4 from the subscriber's side: one request in
    flight, no update going back in revision, no create or delete that the log does not
    explain, and once sends succeed again the subscriber has exactly what the document is.
    Returns how often each action was acknowledged, to show the paths were taken.
    """
    rng = random.Random(seed)
    state = DeliveryState()
    log: list[PendingChange] = []  # every change, in order; updated_at is the index
    acked = -1  # log index of the last change the subscriber acknowledged
    has: int | None = None  # the revision the subscriber holds
    seen = {"create": 0, "update": 0, "delete": 0, "recreate": 0}

    def acknowledge(sent: PendingChange, action: str) -> None:
        nonlocal acked, has
        deleted_between = any(c.action_kind == "delete" for c in log[acked + 1 : sent.updated_at])
        if action == "update":
            assert has is not None and sent.revision > has  # §9.4 never backwards
        elif action == "create":
            assert has is None or deleted_between  # §9.1 a delete cleared the record
            seen["recreate"] += has is not None
        else:
            assert has is not None  # §9.1 nothing to delete otherwise
        seen[action] += 1
        has = sent.revision if action != "delete" else None
        acked = sent.updated_at

    in_flight: tuple[PendingChange, str] | None = None
    now = 0.0
    for _ in range(300):
        now += 1.0
        roll = rng.random()
        if roll < 0.4:
            i = len(log)
            change = (
                PendingChange("delete", None, None, i)
                if rng.random() < 0.15
                else PendingChange("put", rng.randint(0, 12), {}, i)
            )
            log.append(change)
            state, _ = offer(state, change, now)
        elif in_flight is None:
            state, action = next_action(state, now)
            if action is not None:
                assert state.pending is not None
                in_flight = (state.pending, action)
        else:
            (sent, action), in_flight = in_flight, None
            outcome = rng.choice(list(Outcome))
            state = on_outcome(state, outcome, now, None, rng.random(), sent=sent)
            if outcome is not Outcome.RETRY:
                acknowledge(sent, action)
            assert state.received == has  # invariant 2: the record is what was acknowledged
        if state.pending is not None:
            # §9.4 backlog: at most the one change, a real one
            assert replace(state.pending, generation=0) in log
    # Every send succeeds from now on (§9.3: a subscriber that comes back gets what it missed).
    while True:
        if in_flight is not None:
            (sent, action), in_flight = in_flight, None
            state = on_outcome(state, Outcome.DELIVERED, now, None, 0.0, sent=sent)
            acknowledge(sent, action)
        now += 1000.0
        state, action = next_action(state, now)
        if action is None:
            break
        assert state.pending is not None
        in_flight = (state.pending, action)
    last_delete = max((i for i, c in enumerate(log) if c.action_kind == "delete"), default=-1)
    alive = [c.revision for c in log[last_delete + 1 :] if c.revision is not None]
    assert state.pending is None
    assert state.received == has == (max(alive) if alive else None)
    return seen


def test_random_interleavings_keep_the_invariants() -> None:
    """300 seeded runs of _simulate; every kind of acknowledged send occurs."""
    totals = Counter[str]()
    for seed in range(300):
        totals.update(_simulate(seed))
    assert min(totals.values()) > 0, totals


def test_a_delete_read_again_after_a_crash_does_not_replace_the_put_that_followed_it() -> None:
    """put 3, delete (documents offset 41 → id 42) and put 5 were offered; after a crash the
    dispatcher reads the delete again. It must change nothing: had it replaced the waiting
    put 5 (a new life), the subscriber, who has the delete, would never hear of put 5."""
    state, _ = offer(DeliveryState(), put(3), NOW)
    state = on_outcome(state, Outcome.DELIVERED, NOW, None, 0.5, sent=state.pending)
    state, _ = offer(state, delete(3, generation=42), NOW)
    state = on_outcome(state, Outcome.DELIVERED, NOW, None, 0.5, sent=state.pending)
    state, _ = offer(state, put(5), NOW)
    assert state.pending.action_kind == "put" and next_action(state, NOW)[1] == "create"

    again, changed = offer(state, delete(3, generation=42), NOW)
    assert (again, changed) == (state, False)
    # A later delete of the same document (a larger offset) still replaces it.
    later, _ = offer(state, delete(5, generation=77), NOW)
    assert later.pending.action_kind == "delete"


def test_puts_read_again_from_before_a_delete_are_superseded_by_it() -> None:
    """puts 1-3 (documents offsets 10-12), then a delete (offset 20 → id 21), all delivered.
    Then the same puts are offered again, as another app id's changes stage offers them when
    it reads the documents topic from the start, or a dispatcher reading again after a crash.
    They come from before the delete (their offsets say so): nothing is sent, where taking
    them for the document's current life would send a `create` of revision 3 to a subscriber
    who has its delete (tests/integration/test_replay.py saw that)."""
    state = DeliveryState()
    for rev in (1, 2, 3):
        state, _ = offer(state, replace(put(rev), seq=10 + rev), NOW)
        state = on_outcome(state, Outcome.DELIVERED, NOW, None, 0.5, sent=state.pending)
    state, _ = offer(state, delete(3, generation=21), NOW)
    state = on_outcome(state, Outcome.DELIVERED, NOW, None, 0.5, sent=state.pending)
    assert state.received is None and state.pending is None
    for rev in (1, 2, 3):
        again, send = offer(state, replace(put(rev), seq=10 + rev), NOW)
        assert (again, send) == (state, False)
    # A put after the delete (a larger offset) creates the document again; so does a put
    # whose place is unknown (seq 0: offers of earlier versions, backfill, replay).
    for seq in (31, 0):
        after, send = offer(state, replace(put(4), seq=seq), NOW)
        assert send and next_action(after, NOW)[1] == "create"
        assert after.pending.seq == 0  # the place is not stored


@pytest.mark.parametrize("changes", [
    {}, {"attempt": 3}, {"pending": None, "dead": True},
    {"received": 7, "received_generation": 2, "life": 2, "next_attempt_at": 9.5}])
def test_the_modules_replace_gives_what_dataclasses_replace_gives(changes):
    import dataclasses

    from tables.delivery import replace
    state = DeliveryState(received=1, pending=PendingChange("put", 2, {"a": 1}, 1700000000),
                          attempt=1, first_failure_at=5.0)
    assert replace(state, **changes) == dataclasses.replace(state, **changes)
    assert state.attempt == 1 and state.pending is not None  # the original is untouched
    with pytest.raises(TypeError):
        replace(state, attempts=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(state, **changes).attempt = 9
