"""Backfill of one subscription (SPEC §11): this process's part.

The documents table is partitioned across the members of the changes group; each member
offers the live documents of the partitions it owns (``tables.replay.backfill_offers``) to
``<prefix>.deliveries`` and waits for the broker's acks (acks=all), so an answer means
every offer is in Kafka. The dispatcher then decides as for any change: a revision the
subscriber already has is skipped, the rest is sent as ``create`` (§9.1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from streams.registry_view import REGISTRY_HEADER
from tables.errors import FlareError
from tables.replay import backfill_offers


@dataclass(frozen=True)
class LocalBackfill:
    """The partitions of the documents table this process offered, and how many offers."""

    partitions: list[int]
    offered: int

    def to_json(self) -> dict:
        return {"partitions": self.partitions, "offered": self.offered}


async def backfill_local(runtime, resource_id: str, subscription_id: str) -> LocalBackfill:
    """Offer the live documents of ``resource_id`` that this process holds to the
    subscription; return once the broker has acknowledged every offer."""
    changes, producer = runtime.changes, runtime.producer
    why = changes.readiness()
    if why is not None or producer is None:
        raise FlareError(503, "service unavailable",
                         f"cannot backfill now: {why or 'the producer is still starting'}")
    # The tables are read in one go (no await) so a rebalance cannot change them midway.
    tables = dict(changes.tables)
    offers = [offer for partition in sorted(tables)
              for offer in backfill_offers(tables[partition], resource_id, subscription_id)]
    # Invariant 7: the dispatcher of another process waits until it knows the subscription.
    headers = [(REGISTRY_HEADER, runtime.view.mark())]
    topic = runtime.settings.topic("deliveries")
    try:
        sent = [await producer.send(topic, value, key=key, headers=headers)
                for key, value in offers]
        await asyncio.gather(*sent)
    except KafkaError as exc:
        raise FlareError(503, "error during backfill",
                         f"Kafka did not acknowledge the offers: {exc.__class__.__name__}") from None
    return LocalBackfill(sorted(tables), len(offers))
