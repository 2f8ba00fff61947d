"""Every process's copy of the registry: the compacted resources and subscriptions topics.

This view reads both one-partition topics from the beginning, forever, and knows the offset
it has applied, so a caller can wait for exactly its own write (read-your-writes) or for the
end of the topics (a consistent snapshot before the registry stage decides commands).

Its indexes are kept up to date record by record, so a write costs the same with 10 or
100,000 subscriptions: per resource, its subscriptions by id (creation order) and by url
(the §7 step 5 conflict check). The resource index for document matching is rebuilt on the
next read after a resource record: resources are few and rarely written.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from tables.resources import Resource
from tables.subscriptions import Subscription
from tables.documents import ResourceIndex

#: Header on registry records naming the command that wrote them (streams/registry.py).
COMMAND_HEADER = "flare-command"

log = logging.getLogger("flare.registry")

#: Header on documents and offers: the registry position (``<resources>,<subscriptions>``
#: next offsets) of the view that accepted the change. A stage on another process waits
#: until its own view has read that far before deciding (DESIGN.md invariant 7).
REGISTRY_HEADER = "flare-registry"
#: How long the broker may hold an empty fetch of the registry consumers (ms). Records
#: end a fetch at once; this only bounds how soon a fetch starts again after an empty one.
FETCH_WAIT_MS = 20
#: Deleted ids remembered with the command that deleted them (a redelivered delete answers
#: the same 204): far more than one batch of commands can hold.
DELETED_KEPT = 10_000


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
        #: ids of the subscriptions deleted since start, in order (the dispatcher drops
        #: their delivery records: streams/dispatcher.py)
        self.deleted_subscriptions: list[str] = []
        self._next_offset: dict[str, int] = {self.resources_topic: 0, self.subscriptions_topic: 0}
        #: topic → heap of (offset, n, future): callers waiting until ``offset`` is applied.
        #: One future per caller, woken only when its offset is reached (a Condition woke
        #: every waiter on every fetch, and each re-took the lock in turn: with 64 requests
        #: waiting that queue alone cost tens of milliseconds per write).
        self._waiters: dict[str, list[tuple[int, int, asyncio.Future]]] = {
            self.resources_topic: [], self.subscriptions_topic: []}
        self._waiter_seq = itertools.count()
        self._consumer: AIOKafkaConsumer | None = None
        # End offsets are asked on a connection of their own: on the follower's connection
        # they would queue behind its long-poll fetch (up to fetch_max_wait_ms per command).
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self.caught_up = asyncio.Event()
        #: resource id → its subscriptions by id, in creation order
        self._by_resource: dict[str, dict[str, Subscription]] = {}
        #: resource id → every url (top-level and action) of its subscriptions → the subscription
        self._urls: dict[str, dict[str, Subscription]] = {}
        #: resource id → its subscriptions as a list, made on demand, dropped on its next change
        self._lists: dict[str, list[Subscription]] = {}
        #: object id → the id of the command whose tombstone deleted it (the latest few)
        self._deleted_by: dict[str, str] = {}
        #: resources indexed for document matching, rebuilt after any resource record
        self._index: ResourceIndex | None = None

    # -- reading -------------------------------------------------------------------
    def resource(self, resource_id: str) -> Resource | None:
        return self.resources.get(resource_id)

    def subscriptions_of(self, resource_id: str) -> list[Subscription]:
        """The resource's subscriptions in creation order (the fan-out asks per change)."""
        found = self._lists.get(resource_id)
        if found is None:
            found = list(self._by_resource.get(resource_id, {}).values())
            self._lists[resource_id] = found
        return found

    def subscription_count(self, resource_id: str) -> int:
        return len(self._by_resource.get(resource_id, ()))

    def subscription_urls(self, resource_id: str) -> dict[str, Subscription]:
        """url → the subscription of this resource that has it (SPEC §7 step 5)."""
        return self._urls.get(resource_id, {})

    def deleted_by(self, object_id: str) -> str | None:
        """The command that deleted this object, if it was deleted lately (tables/commands.py)."""
        return self._deleted_by.get(object_id)

    def applied(self, topic: str) -> int:
        """The offset of the last record of ``topic`` applied here (-1: none)."""
        return self._next_offset[topic] - 1

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
        if self._next_offset[topic] > offset:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters[topic], (offset, next(self._waiter_seq), future))
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise RegistryUnavailable("the registry did not catch up in time") from None

    async def catch_up(self, timeout: float = 10.0) -> None:
        """Return once everything written to both topics before this call is applied."""
        assert self._offsets is not None
        tps = [TopicPartition(t, 0) for t in self._next_offset]
        ends = await asyncio.wait_for(self._offsets.end_offsets(tps), timeout)
        for tp in tps:
            await self.wait_for(tp.topic, ends[tp] - 1, timeout)

    def _wake(self) -> None:
        for topic, waiting in self._waiters.items():
            applied = self._next_offset[topic]
            while waiting and waiting[0][0] < applied:
                future = heapq.heappop(waiting)[2]
                if not future.done():
                    future.set_result(None)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A registry write waits for this view: fetch as soon as records are there.
            fetch_max_wait_ms=FETCH_WAIT_MS,
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
                    self._apply(tp.topic, message.key, message.value, message.headers)
                    self._next_offset[tp.topic] = message.offset + 1
            await self._sync_positions()

    async def _sync_positions(self) -> None:
        assert self._consumer is not None
        for topic in self._next_offset:
            with contextlib.suppress(Exception):
                position = await self._consumer.position(TopicPartition(topic, 0))
                self._next_offset[topic] = max(self._next_offset[topic], position)
        self._wake()

    def _apply(self, topic: str, key: bytes | None, value: bytes | None,
               headers=()) -> None:
        """One record: a value creates, a tombstone (null value) deletes. Bad records are skipped."""
        if key is None:
            return
        object_id = key.decode()
        is_resource = topic == self.resources_topic
        if value is None:
            if is_resource:
                self.resources.pop(object_id, None)
                self._index = None
            else:
                old = self.subscriptions.pop(object_id, None)
                if old is not None:
                    self._unindex(old)
                    self.deleted_subscriptions.append(object_id)
            self._remember_delete(object_id, headers)
            return
        try:
            record = orjson.loads(value)
            obj = (Resource if is_resource else Subscription).from_record(record)
        except Exception as exc:  # a foreign record on our topic must not stop the view
            log.warning("skipping unreadable %s record %r: %s", topic, object_id, exc)
            return
        if is_resource:
            self.resources[object_id] = obj
            self._index = None
            return
        old = self.subscriptions.get(object_id)
        if old is not None:  # the same id written again: keep its place in creation order
            self._unindex(old, keep_place=old.resource_id == obj.resource_id)
        self.subscriptions[object_id] = obj
        self._by_resource.setdefault(obj.resource_id, {})[object_id] = obj
        owners = self._urls.setdefault(obj.resource_id, {})
        for url in obj.urls:
            owners.setdefault(url, obj)
        self._lists.pop(obj.resource_id, None)

    def _unindex(self, sub: Subscription, keep_place: bool = False) -> None:
        group = self._by_resource.get(sub.resource_id)
        if group is not None and not keep_place:
            group.pop(sub.id, None)
            if not group:
                del self._by_resource[sub.resource_id]
        owners = self._urls.get(sub.resource_id)
        if owners is not None:
            for url in sub.urls:
                if owners.get(url) is sub:
                    del owners[url]
            if not owners:
                del self._urls[sub.resource_id]
        self._lists.pop(sub.resource_id, None)

    def _remember_delete(self, object_id: str, headers) -> None:
        for name, raw in headers or ():
            if name == COMMAND_HEADER and raw:
                self._deleted_by.pop(object_id, None)
                self._deleted_by[object_id] = raw.decode()
                if len(self._deleted_by) > DELETED_KEPT:
                    del self._deleted_by[next(iter(self._deleted_by))]
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
        if self.reached(mark):
            return
        resources, subscriptions = (int(x) for x in mark.split(b","))
        await self.wait_for(self.resources_topic, resources - 1, timeout)
        await self.wait_for(self.subscriptions_topic, subscriptions - 1, timeout)
