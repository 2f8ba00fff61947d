"""``flare replay`` and backfill, the pure parts (SPEC §10-§11, DESIGN.md invariant 5).

1. Rebuild the tables from the topics: each message of ``<prefix>.documents`` is decided
   as the changes stage decides it (:func:`replay_change`), each event of
   ``<prefix>.deliveries`` as the dispatcher applies it, without sending
   (:func:`replay_event`). An ``outcome`` event moves ``received`` (what the subscriber
   has), so the rebuilt deliveries table knows what every subscriber already holds.
2. Compare (:func:`missing`): per subscription, the latest revision of every document of
   its resource against the subscriber's record. A live document it has no revision of,
   or an older one, or one still waiting or parked dead, is missing (a put); a deleted
   document it still holds is missing (a delete).
3. What to produce for it (:func:`offers_for`): an offer, as the fan-out writes it, and a
   redrive, so a delivery parked dead goes out again. The dispatcher's rules skip what a
   subscriber already has, so an offer more than needed changes nothing.

No I/O here: streams/replay.py reads and writes Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tables.delivery import DeliveryState
from tables.documents import Rejected, apply, is_live, parse_message
from tables.events import (REDRIVE, REDRIVE_KEY, apply_event, delete_generation, event_key,
                           offer_suffix, offer_value)
from tables.resources import Resource


class HasResource(Protocol):
    id: str
    resource_id: str


@dataclass(frozen=True)
class Missing:
    """One document one subscriber is missing: the change to offer it."""

    subscription_id: str
    url: str
    kind: str  # "put" | "delete"
    revision: int | None
    document: dict[str, Any] | None
    updated_at: int
    #: what the subscriber would be sent now: "create", "update" or "delete"
    action: str
    #: a delete's generation (tables/events.py), from its mark
    generation: int = 0


def delivery_key(subscription_id: str, url: str) -> bytes:
    return f"{subscription_id}|{url}".encode()


# -- 1. rebuild ------------------------------------------------------------------------
def replay_change(stored: dict[str, Any] | None, key: bytes | None, value: bytes | None,
                  timestamp_ms: int, offset: int,
                  find_resource: Callable[[str], Resource | None],
                  repair: bytes | None = None) -> dict[str, Any] | None:
    """The documents-table record of ``key`` after one message of ``<prefix>.documents``
    (``stored`` when the message is rejected or changes nothing), as the changes stage
    keeps it: highest revision wins, a delete leaves a mark, the source offset is kept.
    ``repair``: the message's ``flare-repair`` header (tables/documents.py)."""
    try:
        change = parse_message(key, value, find_resource, timestamp_ms, repair)
    except Rejected:
        return stored
    return apply(stored, change, offset).stored


def replay_event(stored: dict[str, Any] | None, value: bytes | None, now: float,
                 subscribed: bool) -> dict[str, Any] | None:
    """The deliveries-table record of one key after one event of ``<prefix>.deliveries``,
    as the dispatcher applies it (nothing is sent). ``subscribed``: whether the key's
    subscription still exists (if not, its record goes: None). ``now`` is the event's
    time. An event that cannot be read leaves the record as it is (the dispatcher parks it).
    """
    if not subscribed:
        return None
    try:
        event = orjson.loads(value or b"")
        if not isinstance(event, dict):
            return stored
        # Only delivered and discarded outcomes apply here: no retry policy is involved.
        state = apply_event(stored, event, now, None, 0.0)
    except (ValueError, KeyError, TypeError):  # UnknownEvent is a ValueError
        return stored
    return stored if state is None else state.to_record()


# -- 2. compare ------------------------------------------------------------------------
def missing(documents: Mapping[str, dict[str, Any]],
            deliveries: Mapping[bytes, dict[str, Any]],
            subscriptions: Iterable[HasResource]) -> list[Missing]:
    """What each subscription is missing (module docstring, step 2), by subscription then
    document URL. ``documents``: URL → documents-table record (live or mark);
    ``deliveries``: ``subscription|url`` → deliveries-table record."""
    by_resource: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for url, record in documents.items():
        by_resource.setdefault(record.get("resource"), []).append((url, record))
    found: list[Missing] = []
    for subscription in sorted(subscriptions, key=lambda s: s.id):
        for url, record in sorted(by_resource.get(subscription.resource_id, ())):
            stored = deliveries.get(delivery_key(subscription.id, url))
            state = DeliveryState() if stored is None else DeliveryState.from_record(stored)
            gap = _gap(subscription.id, url, record, state)
            if gap is not None:
                found.append(gap)
    return found


def _gap(subscription_id: str, url: str, record: dict[str, Any],
         state: DeliveryState) -> Missing | None:
    revision, content, updated_at = record["revision"], record["content"], record["updatedAt"]
    if is_live(record):
        has_it = (state.pending is None and state.received is not None
                  and state.received >= revision)
        if has_it:
            return None
        new_life = (state.pending is not None
                    and state.pending.generation > state.received_generation)
        action = "create" if state.received is None or new_life else "update"
        return Missing(subscription_id, url, "put", revision, content, updated_at, action)
    # A mark: the subscriber still holds the document while it has a received revision.
    if state.received is None:
        return None
    return Missing(subscription_id, url, "delete", revision, content, updated_at, "delete",
                   delete_generation(record))


# -- 3. what to produce ------------------------------------------------------------------
def offers_for(gaps: Iterable[Missing]) -> list[tuple[bytes, bytes, bytes]]:
    """(deliveries key, value, base key: its partition's) records for what is missing: an
    offer, then a redrive (a delivery parked dead keeps its change and waits for one; on
    any other state it changes nothing)."""
    records: list[tuple[bytes, bytes, bytes]] = []
    for gap in gaps:
        key = delivery_key(gap.subscription_id, gap.url)
        records.append((event_key(key, offer_suffix(gap.kind, False)),
                        offer_value(gap.kind, gap.revision, gap.document, gap.updated_at,
                                    gap.generation), key))
        records.append((event_key(key, REDRIVE_KEY), REDRIVE, key))
    return records


def backfill_offers(table: Mapping[bytes, bytes], resource_id: str,
                    subscription_id: str) -> list[tuple[bytes, bytes]]:
    """Backfill (SPEC §11): one ``create`` offer per live document of the resource in a
    documents table (URL → record as JSON); the dispatcher skips what the subscriber has."""
    offers = []
    for key, value in table.items():
        record = orjson.loads(value)
        if record.get("resource") != resource_id or not is_live(record):
            continue
        offers.append((delivery_key(subscription_id, key.decode()),
                       offer_value("put", record["revision"], record["content"],
                                   record["updatedAt"])))
    return offers
