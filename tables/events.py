"""The events of ``<prefix>.deliveries`` (SPEC §9, docs/architecture.md): how they are
written and how an ``outcome`` event is read back. One place for the fan-out, backfill,
the dispatcher and ``flare replay``, so they cannot drift apart. Pure: no I/O.

- ``offer``: a change of the document for one subscriber;
- ``redrive``: send a dead delivery again;
- ``outcome``: a change was delivered or discarded (for a replay: what the subscriber has).

The topic is compacted, and a replay rebuilds the deliveries table from what compaction
leaves: the last event of each key. So events that a replay needs together get keys of
their own (:func:`event_key`), all in the partition of the base key
``<subscription id>|<document URL>`` (:func:`base_key`): a winning put's offer keeps the
base key; a losing (older) put's offer, a delete's offer, an outcome and a redrive add
``.stale``, ``.delete``, ``.outcome``, ``.redrive`` to the subscription id. A delete offer
carries its generation (the documents-topic offset of the delete, plus one), so a rebuild
numbers a document's lives as the dispatcher did, whatever was compacted before it.
tests/unit/test_compaction.py shows that the last event of each of these keys rebuilds
the same state as every event.
"""

from __future__ import annotations

from typing import Any

import orjson

from tables.delivery import DeliveryState, PendingChange, offer, on_outcome, redrive
from tables.documents import Applied, Change
from tables.outcome import Outcome
from tables.subscriptions import Retry

EVENT_VERSION = 1
REDRIVE = orjson.dumps({"v": EVENT_VERSION, "type": "redrive"})


#: What follows the subscription id in the key of each event that is not a winning offer.
STALE, DELETE, OUTCOME, REDRIVE_KEY = b".stale", b".delete", b".outcome", b".redrive"
SUFFIXES = (STALE, DELETE, OUTCOME, REDRIVE_KEY)


def event_key(base: bytes, suffix: bytes = b"") -> bytes:
    """The key of an event of the base key ``<subscription id>|<document URL>``: the
    suffix goes after the subscription id (a UUID has no dot; a URL may hold anything)."""
    if not suffix:
        return base
    at = base.index(b"|")
    return base[:at] + suffix + base[at:]


def base_key(key: bytes) -> bytes:
    """``<subscription id>|<document URL>`` of any event key (its table key)."""
    at = key.find(b"|")
    dot = key.find(b".", 0, at) if at > 0 else -1
    return key if dot < 0 else key[:dot] + key[at:]


def offer_suffix(kind: str, stale: bool) -> bytes:
    """The key suffix of an offer: a delete's, a losing put's, or none (a winning put)."""
    if kind == "delete":
        return DELETE
    return STALE if stale else b""


def offer_value(kind: str, revision: int | None, document: dict[str, Any] | None,
                updated_at: int, generation: int = 0, seq: int = 0) -> bytes:
    """An ``offer`` event; raises (TypeError/ValueError) when the document cannot be encoded.
    ``generation``: a delete's (module docstring); 0 for a put. ``seq``: a put's documents
    offset + 1 (0: unknown), so a put read again from before a delete is known as such."""
    event = {"v": EVENT_VERSION, "type": "offer", "kind": kind, "revision": revision,
             "document": document, "updatedAt": updated_at}
    if generation:
        event["generation"] = generation
    if seq:
        event["seq"] = seq
    return orjson.dumps(event)


def delete_generation(mark: dict[str, Any] | None) -> int:
    """A delete's generation, from the mark it left in the documents table."""
    offset = None if mark is None else mark.get("offset")
    return 0 if offset is None else offset + 1


def fan_out(change: Change, applied: Applied, offset: int | None = None) -> tuple[bytes, bytes] | None:
    """The offer of an accepted change, the same for every subscription of its resource
    (SPEC §9.1): (key suffix, value), or None when no subscriber can need it (a delete of
    nothing). ``offset``: the change's on ``<prefix>.documents``. Raises
    (TypeError/ValueError) when the document cannot be encoded."""
    if change.action == "delete":
        if applied.previous is None:
            return None
        return DELETE, offer_value("delete", applied.previous["revision"],
                                   applied.previous["content"], change.updated_at,
                                   delete_generation(applied.stored))
    stale = not applied.changed and applied.previous is not None  # lost to a newer one
    return offer_suffix("put", stale), offer_value("put", change.revision, change.document,
                                                   change.updated_at,
                                                   seq=0 if offset is None else offset + 1)


def offered_change(event: dict[str, Any]) -> PendingChange:
    """The change an ``offer`` event carries."""
    return PendingChange(event["kind"], event["revision"], event["document"], event["updatedAt"],
                         event.get("generation", 0), event.get("seq", 0))


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
