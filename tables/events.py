"""The events of ``<prefix>.deliveries`` (SPEC §9, docs/architecture.md): how they are
written and how an ``outcome`` event is read back. One place for the fan-out, backfill,
the dispatcher and ``flare replay``, so they cannot drift apart. Pure: no I/O.

- ``offer``: a change of the document for one subscriber;
- ``redrive``: send a dead delivery again;
- ``outcome``: a change was delivered or discarded (for a replay: what the subscriber has).
"""

from __future__ import annotations

from typing import Any

import orjson

from tables.delivery import DeliveryState, PendingChange, offer, on_outcome, redrive
from tables.outcome import Outcome
from tables.subscriptions import Retry

EVENT_VERSION = 1
REDRIVE = orjson.dumps({"v": EVENT_VERSION, "type": "redrive"})


def offer_value(kind: str, revision: int | None, document: dict[str, Any] | None,
                updated_at: int) -> bytes:
    """An ``offer`` event; raises (TypeError/ValueError) when the document cannot be encoded."""
    return orjson.dumps({"v": EVENT_VERSION, "type": "offer", "kind": kind,
                         "revision": revision, "document": document, "updatedAt": updated_at})


def offered_change(event: dict[str, Any]) -> PendingChange:
    """The change an ``offer`` event carries."""
    return PendingChange(event["kind"], event["revision"], event["document"], event["updatedAt"])


def outcome_value(outcome: Outcome, status: int | None, sent: PendingChange) -> bytes:
    """An ``outcome`` event: ``sent`` was delivered or discarded."""
    return orjson.dumps({"v": EVENT_VERSION, "type": "outcome", "outcome": outcome.value,
                         "status": status,
                         "sent": {"kind": sent.action_kind, "revision": sent.revision,
                                  "generation": sent.generation}})


def outcome_applies(record: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    """Whether an outcome event moves the record (a deliveries-table record) forward.

    For the owner that wrote it, it never does (it was recorded live); in a replay it
    rebuilds the record. Read on the stored record itself: this runs once per delivery."""
    if event.get("outcome") not in (Outcome.DELIVERED.value, Outcome.DISCARDED.value):
        return False
    sent = event["sent"]
    received_generation = 0 if record is None else record["received_generation"]
    received = None if record is None else record["received"]
    if sent["generation"] != received_generation:
        return sent["generation"] > received_generation
    if sent["kind"] == "delete":  # a delete ends its generation: already recorded
        return False
    return received is None or sent["revision"] > received


def sent_change(pending: PendingChange | None, sent: dict[str, Any]) -> PendingChange:
    """The change an outcome event is about: the waiting one when it is the same."""
    if (pending is not None and pending.action_kind == sent["kind"]
            and pending.revision == sent["revision"]
            and pending.generation == sent["generation"]):
        return pending
    return PendingChange(sent["kind"], sent["revision"], None, 0, sent["generation"])


class UnknownEvent(ValueError):
    """An event type this version does not know."""


#: Event types earlier versions wrote; they change nothing now.
RETIRED = ("mark", "forget")


def apply_event(record: dict[str, Any] | None, event: dict[str, Any], now: float,
                retry: Retry | None, rand: float) -> DeliveryState | None:
    """The state of one key after one event, or None when the event changes nothing (an
    outcome already recorded, a retired type). The dispatcher applies events with this
    and then sends; ``flare replay`` applies them and sends nothing. ``retry``/``rand``
    only matter to an outcome that schedules a retry (tables/delivery.py on_outcome).

    Raises UnknownEvent for a type it does not know, and KeyError/ValueError/TypeError
    for an event it cannot read."""
    kind = event.get("type")
    if kind in RETIRED or (kind == "outcome" and not outcome_applies(record, event)):
        return None
    state = DeliveryState() if record is None else DeliveryState.from_record(record)
    if kind == "offer":
        return offer(state, offered_change(event), now)[0]
    if kind == "redrive":
        return redrive(state, now)
    if kind == "outcome":
        return on_outcome(state, Outcome(event["outcome"]), now, retry, rand,
                          sent=sent_change(state.pending, event["sent"]),
                          status=event.get("status"))
    raise UnknownEvent(f"unknown delivery event type {kind!r}")
