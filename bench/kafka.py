"""Kafka helpers for the benchmarks: topics, registry, bulk produce, progress, timestamps."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.admin import DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request

from app.config import Settings
from bench import workload
from streams.topics import ensure_topics
from tests.kafka_offsets import admin_client, committed, end_offsets

__all__ = ["admin_client", "committed", "end_offsets", "group_state", "prepare_prefix", "produce",
           "wait_committed", "read_span", "Produced", "Span"]


async def prepare_prefix(settings: Settings) -> None:
    """Flare's topics for a fresh prefix (as ``flare start`` would create them) and the
    benchmark registry written to ``<prefix>.resources`` in Flare's own record format."""
    async with admin_client(settings.kafka_bootstrap) as admin:
        await ensure_topics(settings, admin)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for resource in workload.resources():
            await producer.send_and_wait(settings.topic("resources"),
                                         orjson.dumps(resource.to_record()),
                                         key=resource.id.encode())
    finally:
        await producer.stop()


@dataclass
class Produced:
    count: int
    seconds: float
    #: partition → (url, revision) of the last message written there
    last: dict[int, tuple[str, int]]


async def produce(bootstrap: str, topic: str, changes: Iterable[workload.Change],
                  window: int = 50_000, on_progress=None) -> Produced:
    """Write every change, keyed by URL with the default partitioner (as a direct producer
    would), in big batches; wait for all acknowledgements. ``changes`` may be a generator:
    only ``window`` unacknowledged sends are held, so millions fit in little memory."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024, compression_type=None)
    await producer.start()
    started = time.perf_counter()
    last: dict[int, tuple[str, int]] = {}
    count = 0

    async def settle(pending: list) -> int:
        results = await asyncio.gather(*(future for _, future in pending))
        for (change, _), metadata in zip(pending, results):
            last[metadata.partition] = (change.url, change.revision)
        done = len(pending)
        pending.clear()
        return done

    try:
        pending: list = []
        for change in changes:
            pending.append((change, await producer.send(topic, change.value, key=change.key)))
            if len(pending) >= window:
                count += await settle(pending)
                if on_progress is not None:
                    on_progress(count)
        count += await settle(pending)
    finally:
        await producer.stop()
    return Produced(count, time.perf_counter() - started, last)


async def wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                         timeout: float, on_progress=None) -> float:
    """Poll the group's committed offsets until they reach ``ends``; return when (monotonic)."""
    deadline = time.monotonic() + timeout
    total = sum(ends.values())
    async with admin_client(bootstrap) as admin:
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            done = {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic}
            count = sum(min(max(done.get(p, 0), 0), end) for p, end in ends.items())
            if on_progress is not None:
                on_progress(count, total)
            if count >= total:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} committed {count} of {total} on {topic} "
                                   f"within {timeout:.0f}s")
            await asyncio.sleep(0.1)


@dataclass
class Span:
    """What a processor wrote to one output topic, from the records' own timestamps."""

    records: int
    first_ms: int
    last_ms: int

    @property
    def seconds(self) -> float:
        return max(self.last_ms - self.first_ms, 1) / 1000

    def rate(self) -> float:
        """Records per second between the first and the last output record."""
        return (self.records - 1) / self.seconds


async def read_span(bootstrap: str, topic: str, timeout: float = 60.0) -> Span:
    """Read ``topic`` from the beginning to its current end; count records and take the
    first and last create timestamps (set by the processor's producer when it wrote them)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=10000,
                                fetch_max_bytes=32 * 1024 * 1024,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            raise RuntimeError(f"topic {topic} does not exist")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count, first, last = 0, None, None
        deadline = time.monotonic() + timeout
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                for m in messages:
                    count += 1
                    first = m.timestamp if first is None else min(first, m.timestamp)
                    last = m.timestamp if last is None else max(last, m.timestamp)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return Span(count, first or 0, last or 0)
    finally:
        await consumer.stop()


class _DescribeGroups(Request[DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups at v1–v2: aiokafka 0.14 asks Kafka 4 for v3 and then fails to
    decode the answer (the admin client's ``describe_consumer_groups``)."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class):
        return request_struct_class(self._groups)


async def group_state(admin, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group, e.g. ``("Stable", 2)``."""
    node = await admin.find_coordinator(group)
    answer = await admin._client.send(node, _DescribeGroups([group]))
    _, _, state, _, _, members = answer.groups[0]
    return state, len(members)
