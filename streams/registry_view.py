"""Every process's copy of the registry: the compacted resources and subscriptions topics.

Why not a Faust GlobalTable: a global table on a non-owning worker applies its changelog in
batches (DESIGN.md, "Tables on other instances lag in batches") and offers no way to wait for
one write. This view reads both one-partition topics from the beginning, forever, and knows
the offset it has applied, so a caller can wait for exactly its own write (read-your-writes)
or for the end of the topics (a consistent snapshot before deciding on a command).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from tables.resources import Resource
from tables.subscriptions import Subscription
from tables.documents import ResourceIndex

log = logging.getLogger("flare.registry")

#: Header on documents and offers: the registry position (``<resources>,<subscriptions>``
#: next offsets) of the view that accepted the change. A stage on another process waits
#: until its own view has read that far before deciding (DESIGN.md invariant 7).
REGISTRY_HEADER = "flare-registry"


class RegistryUnavailable(RuntimeError):
    """The view did not reach the wanted offset in time (broker down or slow)."""


class RegistryView:
    """Resources and subscriptions by id, in creation order, with the offsets applied."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.resources_topic = settings.topic("resources")
        self.subscriptions_topic = settings.topic("subscriptions")
        self.resources: dict[str, Resource] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._next_offset: dict[str, int] = {self.resources_topic: 0, self.subscriptions_topic: 0}
        self._changed = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        # End offsets are asked on a connection of their own: on the follower's connection
        # they would queue behind its long-poll fetch (up to fetch_max_wait_ms per command).
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self.caught_up = asyncio.Event()
        #: subscriptions grouped by resource, rebuilt after any subscription record
        self._by_resource: dict[str, list[Subscription]] | None = None
        #: resources indexed for document matching, rebuilt after any resource record
        self._index: ResourceIndex | None = None

    # -- reading -------------------------------------------------------------------
    def resource(self, resource_id: str) -> Resource | None:
        return self.resources.get(resource_id)

    def subscriptions_of(self, resource_id: str) -> list[Subscription]:
        """The resource's subscriptions in creation order (indexed: the fan-out asks per change)."""
        if self._by_resource is None:
            grouped: dict[str, list[Subscription]] = {}
            for sub in self.subscriptions.values():
                grouped.setdefault(sub.resource_id, []).append(sub)
            self._by_resource = grouped
        return self._by_resource.get(resource_id, [])

    def resource_index(self) -> ResourceIndex:
        """The resources indexed for SPEC §8 matching; the same object until they change."""
        if self._index is None:
            self._index = ResourceIndex(self.resources.values())
        return self._index

    def find_resource(self, document_url: str) -> Resource | None:
        """The resource a document URL belongs to (SPEC §8 matching), or None."""
        return self.resource_index()(document_url)

    # -- waiting -------------------------------------------------------------------
    async def wait_for(self, topic: str, offset: int, timeout: float = 10.0) -> None:
        """Return once the record at ``offset`` of ``topic`` has been applied here."""
        await self._wait(lambda: self._next_offset[topic] > offset, timeout)

    async def catch_up(self, timeout: float = 10.0) -> None:
        """Return once everything written to both topics before this call is applied."""
        assert self._offsets is not None
        tps = [TopicPartition(t, 0) for t in self._next_offset]
        ends = await asyncio.wait_for(self._offsets.end_offsets(tps), timeout)
        await self._wait(lambda: all(self._next_offset[tp.topic] >= ends[tp] for tp in tps), timeout)

    async def _wait(self, predicate, timeout: float) -> None:
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
        except asyncio.TimeoutError:
            raise RegistryUnavailable("the registry did not catch up in time") from None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
        )
        await self._consumer.start()
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                         group_id=None, enable_auto_commit=False)
        await self._offsets.start()
        tps = [TopicPartition(t, 0) for t in self._next_offset]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._follow(), name="flare-registry-view")
        await self.catch_up(timeout=60.0)
        self.caught_up.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        if self._offsets is not None:
            await self._offsets.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            if not batches:
                # Empty fetches still move the position past compacted-away offsets.
                await self._sync_positions()
                continue
            for tp, messages in batches.items():
                for message in messages:
                    self._apply(tp.topic, message.key, message.value)
                    self._next_offset[tp.topic] = message.offset + 1
            await self._sync_positions()

    async def _sync_positions(self) -> None:
        assert self._consumer is not None
        for topic in self._next_offset:
            with contextlib.suppress(Exception):
                position = await self._consumer.position(TopicPartition(topic, 0))
                self._next_offset[topic] = max(self._next_offset[topic], position)
        async with self._changed:
            self._changed.notify_all()

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """One record: a value creates, a tombstone (null value) deletes. Bad records are skipped."""
        if key is None:
            return
        object_id = key.decode()
        table = self.resources if topic == self.resources_topic else self.subscriptions
        if table is self.subscriptions:
            self._by_resource = None
        else:
            self._index = None
        if value is None:
            table.pop(object_id, None)
            return
        try:
            record = orjson.loads(value)
            obj = (Resource if topic == self.resources_topic else Subscription).from_record(record)
        except Exception as exc:  # a foreign record on our topic must not stop the view
            log.warning("skipping unreadable %s record %r: %s", topic, object_id, exc)
            return
        table[object_id] = obj

    # -- the registry barrier between processes (REGISTRY_HEADER) ------------------
    def mark(self) -> bytes:
        """This view's position, for REGISTRY_HEADER."""
        return (f"{self._next_offset[self.resources_topic]},"
                f"{self._next_offset[self.subscriptions_topic]}").encode()

    def reached(self, mark: bytes) -> bool:
        """Whether this view has read at least as far as ``mark`` (a bad mark counts as
        reached: it must not hold a stage up)."""
        try:
            resources, subscriptions = (int(x) for x in mark.split(b","))
        except ValueError:
            return True
        return (self._next_offset[self.resources_topic] >= resources
                and self._next_offset[self.subscriptions_topic] >= subscriptions)

    async def reach(self, mark: bytes, timeout: float = 30.0) -> None:
        """Return once this view has read as far as ``mark``."""
        await self._wait(lambda: self.reached(mark), timeout)
