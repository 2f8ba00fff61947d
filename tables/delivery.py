"""The delivery record of one (subscription, document) and its transitions (SPEC §9.1-§9.5).

DESIGN invariants 2-3, kept here so the dispatcher only stores what these functions return:

- ``received`` (what the subscriber has) moves only when a delivery is delivered or
  discarded (:func:`on_outcome`), never when a change is offered or sent;
- at most one change waits per key: a newer one replaces it, an older one is dropped (§9.4);
- one request in flight per key. "In flight" is the caller's knowledge, not stored (a crash
  would leave it stuck): it sends ``state.pending`` when :func:`next_action` gives an action,
  and hands that same change back to :func:`on_outcome` as ``sent``. A change offered
  meanwhile is then kept, and :func:`due` says whether to send again.

The action (create/update/delete) is decided when sending, against ``received``, because a
change waiting behind a request in flight cannot know what that request will leave. Deletes
are counted in ``generation`` (a document's lives: each delete ends one), so a put that
replaced a waiting delete is still a ``create`` (§9.1 "a delete clears the record") and
never an ``update`` going back in revision (§9.4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any, Literal

import orjson

from tables.backoff import DEFAULT_INITIAL, DEFAULT_MAX, gives_up, next_delay
from tables.notify import decide
from tables.outcome import Outcome
from tables.subscriptions import Retry

__all__ = [
    "DeliveryState",
    "PendingChange",
    "due",
    "next_action",
    "offer",
    "on_outcome",
    "redrive",
    "webhook_id",
]

RECORD_VERSION = 1


def replace(obj, **changes):
    """``dataclasses.replace`` for this module's frozen records, without its per-call
    introspection (5 µs a call, six or seven calls a delivery: ~6 % of a delivery's CPU
    in the end-to-end benchmark); the same result, the same TypeError for a wrong name."""
    names = _FIELDS[type(obj)]
    if not changes.keys() <= names:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(changes.keys() - names)}")
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


@dataclass(frozen=True)
class PendingChange:
    """A change waiting to be sent to one subscriber; what the request is built from (§9.2).

    For a delete, ``revision`` and ``document`` are the last stored ones (the body and
    ``{revision}`` need them). ``generation`` is set by :func:`offer`; leave it 0.
    """

    action_kind: Literal["put", "delete"]
    revision: int | None
    document: dict[str, Any] | None
    updated_at: int
    generation: int = 0
    #: where the change is in the document's history: its ``<prefix>.documents`` offset + 1
    #: (0: unknown). Only :func:`offer` reads it; it is not stored.
    seq: int = 0


@dataclass(frozen=True)
class DeliveryState:
    """The record of one (subscription, document); ``DeliveryState()`` is "nothing yet".

    ``received`` is the revision last delivered or discarded (``None``: no record, also after
    a delete); ``attempt`` counts failures of the current streak; a ``dead`` delivery keeps
    its pending change until :func:`redrive` (§9.6).
    """

    received: int | None = None
    pending: PendingChange | None = None
    attempt: int = 0
    next_attempt_at: float = 0.0
    first_failure_at: float | None = None
    last_status: int | None = None
    dead: bool = False
    received_generation: int = 0
    #: the latest life (generation) any offer showed, sent or not: a put after a delete
    #: that changed nothing here (nothing to delete) still belongs to the new life
    life: int = 0

    def to_record(self) -> dict[str, Any]:
        """The table value (self-describing, ``"v": 1``)."""
        p = self.pending
        return {
            "v": RECORD_VERSION,
            "received": self.received,
            "received_generation": self.received_generation,
            "pending": None
            if p is None
            else {
                "action": p.action_kind,
                "revision": p.revision,
                "document": p.document,
                "updated_at": p.updated_at,
                "generation": p.generation,
            },
            "attempt": self.attempt,
            "next_attempt_at": self.next_attempt_at,
            "first_failure_at": self.first_failure_at,
            "last_status": self.last_status,
            "life": self.life,
            "dead": self.dead,  # last: api/metrics.py reads it without decoding
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DeliveryState:
        if record.get("v") != RECORD_VERSION:
            raise ValueError(f"unknown delivery record version {record.get('v')!r}")
        p = record.get("pending")
        pending = None
        if p is not None:
            pending = PendingChange(
                p["action"], p["revision"], p["document"], p["updated_at"], p["generation"]
            )
        return cls(
            received=record["received"],
            pending=pending,
            attempt=record["attempt"],
            next_attempt_at=record["next_attempt_at"],
            first_failure_at=record["first_failure_at"],
            last_status=record["last_status"],
            dead=record["dead"],
            received_generation=record["received_generation"],
            life=record.get("life", 0),
        )


def _action(change: PendingChange, state: DeliveryState) -> str | None:
    """§9.1 against the record; a put in a later life than the record is a create."""
    if change.action_kind == "put" and change.generation > state.received_generation:
        return "create"
    return decide(change.action_kind, change.revision, state.received)


def _newer(change: PendingChange, pending: PendingChange) -> bool:
    """§9.4: does ``change`` (later in the log) replace ``pending``?

    A delete replaces a put and a put replaces a delete (log order); a put replaces a put
    only with a higher revision; a second delete adds nothing.
    """
    if change.action_kind == "delete":
        return pending.action_kind == "put"
    if pending.action_kind == "delete":
        return True
    assert change.revision is not None and pending.revision is not None
    return change.revision > pending.revision


def _idle(state: DeliveryState) -> DeliveryState:
    """No change waiting: the failure streak ends with it."""
    return replace(state, pending=None, attempt=0, first_failure_at=None, dead=False)


def _settle(state: DeliveryState) -> DeliveryState:
    """Drop a waiting change the subscriber no longer needs (e.g. a delete of a create that
    was never delivered). Only safe when nothing is in flight."""
    if state.pending is not None and _action(state.pending, state) is None:
        return _idle(state)
    return state


def due(state: DeliveryState, now: float) -> bool:
    """Whether the waiting change should be sent at ``now`` (dead ones wait for a redrive)."""
    return state.pending is not None and not state.dead and now >= state.next_attempt_at


def offer(
    state: DeliveryState, change: PendingChange, now: float
) -> tuple[DeliveryState, bool]:
    """Take one accepted change of the document (§9.1, §9.4); returns ``(state, send_now)``.

    A change §9.1 gives nothing for, or older than the one waiting, leaves the state as it
    is. A newer one replaces the waiting one and keeps its backoff (the subscriber is still
    failing); one that revives an idle or dead key starts afresh. ``send_now`` means "due
    now"; a caller with a request in flight for this key ignores it and asks :func:`due`
    after the outcome. Nothing is dropped here for a request in flight's sake: a delete
    behind an undelivered create is kept, and :func:`next_action` drops it if still unneeded.
    """
    if change.action_kind not in ("put", "delete"):
        raise ValueError(f"unknown change action {change.action_kind!r}")
    if change.action_kind == "put" and change.revision is None:
        raise ValueError("a put needs a revision")
    waiting = state.pending
    if change.action_kind == "put" and change.seq and change.seq < state.life:
        # A put from before the latest delete this record knows (its documents offset is
        # below the delete's): read again (a crash, or another app id's changes stage
        # reading the documents from the start). The delete superseded it.
        return state, False
    change = replace(change, seq=0)
    base = max(state.life,
               state.received_generation if waiting is None else waiting.generation)
    if change.action_kind == "delete":
        # A delete starts a new life: numbered by its own id when the offer has one
        # (absolute, so a rebuild from a compacted log numbers it the same), else counted.
        # A delete whose id is not past the lives seen here was applied already: it is
        # read again after a crash, and must not replace a put that came after it.
        if change.generation and change.generation <= max(base, state.life):
            return state, False
        new = replace(change, generation=max(base + 1, change.generation))
    else:
        new = replace(change, generation=base)
    if new.generation > state.life:
        state = replace(state, life=new.generation)
    if waiting is None:
        if _action(new, state) is None:
            return state, False
    elif not _newer(change, waiting):
        return state, False
    if waiting is None or state.dead:
        result = replace(
            state, pending=new, attempt=0, first_failure_at=None, dead=False, next_attempt_at=now
        )
    else:
        result = replace(state, pending=new)
    return result, due(result, now)


def next_action(state: DeliveryState, now: float) -> tuple[DeliveryState, str | None]:
    """The action to send ``state.pending`` with now (§9.1), or ``None``.

    ``None`` when not due, or when the waiting change is no longer needed; then the change
    is cleared from the returned state, which the caller stores.
    """
    if not due(state, now):
        return state, None
    assert state.pending is not None
    action = _action(state.pending, state)
    if action is None:
        return _idle(state), None
    return state, action


def on_outcome(
    state: DeliveryState,
    outcome: Outcome,
    now: float,
    policy: Retry | None,
    rand: float,
    *,
    sent: PendingChange,
    status: int | None = None,
) -> DeliveryState:
    """Record the outcome of sending ``sent`` (the ``state.pending`` it was sent from), §9.3.

    1. Delivered or discarded: the record becomes ``sent`` (no record after a delete); a
       change offered while it was in flight stays waiting, due at once.
    2. Retry: the record stays; the waiting change (``sent`` or a newer one) is due after
       :func:`tables.backoff.next_delay`, or parked dead once ``policy.give_up_after`` has
       passed since the streak's first failure (§9.6), never dropped.

    ``policy`` is the subscription's ``delivery.retry`` (``None`` parts: §9.3 defaults);
    ``status`` is kept as ``last_status`` (``None``: transport error or timeout).
    """
    if sent.action_kind not in ("put", "delete"):
        raise ValueError(f"unknown change action {sent.action_kind!r}")
    # Step 1
    if outcome in (Outcome.DELIVERED, Outcome.DISCARDED):
        settled = replace(
            state,
            received=sent.revision if sent.action_kind == "put" else None,
            received_generation=sent.generation,
            life=max(state.life, sent.generation),
            pending=None if state.pending == sent else state.pending,
            attempt=0,
            first_failure_at=None,
            next_attempt_at=now,
            dead=False,
            last_status=status,
        )
        # A waiting change that looks unneeded now is kept: in a replay an older request's
        # outcome may still follow and make it needed; next_action drops it when due.
        return settled
    # Step 2
    settled = _settle(replace(state, last_status=status))
    if settled.pending is None:
        return settled
    policy = policy or Retry()
    first = now if state.first_failure_at is None else state.first_failure_at
    failed = replace(settled, attempt=state.attempt + 1, first_failure_at=first)
    if gives_up(first, now, policy.give_up_after):
        return replace(failed, dead=True)
    delay = next_delay(
        state.attempt,
        DEFAULT_INITIAL if policy.initial is None else policy.initial,
        DEFAULT_MAX if policy.max is None else policy.max,
        rand=rand,
    )
    return replace(failed, next_attempt_at=now + delay)


def redrive(state: DeliveryState, now: float) -> DeliveryState:
    """A dead delivery waits again, due now with attempt 0 (§9.6); others are unchanged."""
    if not state.dead:
        return state
    return replace(state, dead=False, attempt=0, first_failure_at=None, next_attempt_at=now)


def webhook_id(
    subscription_id: str, document_url: str, revision: int | None, action: str
) -> str:
    """``webhook-id`` (§9.5): the same for every attempt of one (subscription, document,
    revision, action), so receivers can drop duplicates; ``msg_`` + 128 bits of SHA-256."""
    key = orjson.dumps([subscription_id, document_url, revision, action])
    return "msg_" + hashlib.sha256(key).hexdigest()[:32]


_PENDING = b'"pending":'
#: What :func:`record_kind` answers.
IDLE, PENDING, DEAD = 0, 1, 2


def record_kind(value: bytes | None) -> int:
    """IDLE, PENDING or DEAD for a stored record (``to_record`` as JSON), read without
    decoding it: the record's own ``pending`` comes before any document it holds, and
    ``dead`` is its last key (tests/unit/test_metrics.py holds this to the record's shape).
    Counting and indexing a million records this way takes a fraction of a second."""
    if value is None:
        return IDLE
    at = value.find(_PENDING)
    if at < 0 or value.startswith(b"null", at + len(_PENDING)):
        return IDLE
    return DEAD if value.endswith(b'"dead":true}') else PENDING


#: The field names of the records ``replace`` copies.
_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (PendingChange, DeliveryState)}
