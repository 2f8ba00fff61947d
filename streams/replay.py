"""``flare replay``: rebuild the tables from the topics into an app id, and offer
subscribers what they are missing (SPEC §10, DESIGN.md invariant 5).

Steps (each waits for the one before):

  1. check that no process of the target app id runs (its consumer groups have no
     members), read the registry to its end, and snapshot the end offsets of
     ``<prefix>.documents`` and ``<prefix>.deliveries``;
  2. read ``<prefix>.documents`` from the beginning to the snapshot, deciding each message
     as the changes stage does → the documents table;
  3. read ``<prefix>.deliveries`` from the beginning to the snapshot, applying each event as
     the dispatcher does, without sending → the deliveries table;
  4. compare: what each subscription is missing (tables/replay.py);
  5. unless a dry run: write both tables to ``<app id>-documents-changelog`` and
     ``<app id>-deliveries-changelog`` (created if missing; keys the changelog has and the
     table has not get a tombstone), wait for the acks, then commit the groups
     ``<app id>.changes`` and ``<app id>.deliveries`` at the snapshot, so ``flare start``
     with that app id goes on from there;
  6. unless a dry run: produce an offer and a redrive for each missing document to
     ``<prefix>.deliveries`` (each under its own key, in the base key's partition:
     tables/events.py), acks=all. The running dispatcher (of any app id on these
     topics) sends them; its rules skip whatever a subscriber already has.

Nothing is sent to a subscriber from here: sending stays the dispatcher's job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import (DescribeGroupsRequest_v0, DescribeGroupsRequest_v1,
                                     DescribeGroupsRequest_v2)
from aiokafka.protocol.api import Request

from app.config import Settings
from streams.registry_view import REGISTRY_HEADER, RegistryView
from streams.stage import FETCH_BYTES, header, partition_of
from streams.store import right_sized
from streams.topics import ensure_topics
from tables.documents import REPAIR_HEADER
from tables.events import base_key
from tables.replay import Missing, missing, offers_for, replay_change, replay_event

#: progress(task, done, total): ``task`` names a topic or a step; called as records go.
Progress = Callable[[str, int, int], None]


class ReplayError(RuntimeError):
    """Replay cannot run (a process of the app id runs, a topic is missing)."""


@dataclass
class Summary:
    app_id: str
    dry_run: bool
    #: topic → records read
    read: dict[str, int] = field(default_factory=dict)
    documents_live: int = 0
    documents_deleted: int = 0
    deliveries: int = 0
    missing: list[Missing] = field(default_factory=list)
    #: subscription id → resource id (every subscription, also those missing nothing)
    subscriptions: dict[str, str] = field(default_factory=dict)
    changelog_records: int = 0
    offers: int = 0
    seconds: float = 0.0

    def by_subscription(self) -> dict[str, dict[str, int]]:
        counts = {sid: {"create": 0, "update": 0, "delete": 0} for sid in self.subscriptions}
        for gap in self.missing:
            counts.setdefault(gap.subscription_id, {"create": 0, "update": 0, "delete": 0})
            counts[gap.subscription_id][gap.action] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "appId": self.app_id, "dryRun": self.dry_run, "read": self.read,
            "documents": {"live": self.documents_live, "deleted": self.documents_deleted},
            "deliveries": self.deliveries, "missing": len(self.missing),
            "subscriptions": {
                sid: {"resource": self.subscriptions.get(sid), **counts,
                      "documents": [g.url for g in self.missing if g.subscription_id == sid]}
                for sid, counts in self.by_subscription().items()},
            "changelogRecords": self.changelog_records, "offers": self.offers,
            "seconds": round(self.seconds, 3),
        }


async def replay(settings: Settings, app_id: str, dry_run: bool,
                 progress: Progress = lambda task, done, total: None) -> Summary:
    """Steps 1-6 of the module docstring; ``settings`` names the broker and the topics."""
    started = time.monotonic()
    target = dataclasses.replace(settings, app_id=app_id)
    summary = Summary(app_id, dry_run)
    documents_topic, deliveries_topic = settings.topic("documents"), settings.topic("deliveries")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    view = RegistryView(settings)
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                              enable_auto_commit=False, max_partition_fetch_bytes=FETCH_BYTES,
                              fetch_max_bytes=FETCH_BYTES * 4)
    try:
        # Step 1
        existing = set(await admin.list_topics())
        for topic in (documents_topic, deliveries_topic):
            if topic not in existing:
                raise ReplayError(f"topic {topic} does not exist: nothing to replay "
                                  f"(is the topic prefix {settings.topic_prefix!r} right?)")
        await _check_stopped(admin, [app_id, f"{app_id}.changes", f"{app_id}.deliveries"])
        await view.start()
        summary.subscriptions = {s.id: s.resource_id for s in view.subscriptions.values()}
        mark = view.mark()
        await reader.start()
        doc_ends = await _ends(reader, documents_topic)
        delivery_ends = await _ends(reader, deliveries_topic)
        # Step 2
        index = view.resource_index()
        documents: dict[int, dict[bytes, dict]] = {p: {} for p in doc_ends}

        def on_document(record: Any) -> None:
            table = documents[record.partition]
            stored = table.get(record.key)
            new = replay_change(stored, record.key, record.value, record.timestamp,
                                record.offset, index, header(record, REPAIR_HEADER))
            if new is not None:
                table[record.key] = new

        summary.read[documents_topic] = await _read(reader, documents_topic, doc_ends,
                                                    on_document, progress)
        # Step 3
        subscribed = set(view.subscriptions)
        deliveries: dict[int, dict[bytes, dict]] = {p: {} for p in delivery_ends}

        def on_event(record: Any) -> None:
            if record.key is None or record.value is None:  # a tombstone
                return
            table = deliveries[record.partition]
            key = base_key(record.key)  # outcomes and redrives have keys of their own
            sid = key.split(b"|", 1)[0].decode(errors="replace")
            new = replay_event(table.get(key), record.value, record.timestamp / 1000,
                               sid in subscribed)
            if new is None:
                table.pop(key, None)
            else:
                table[key] = new

        summary.read[deliveries_topic] = await _read(reader, deliveries_topic, delivery_ends,
                                                     on_event, progress)
        # Step 4
        flat_documents = {key.decode(): record for table in documents.values()
                          for key, record in table.items()}
        flat_deliveries = {key: record for table in deliveries.values()
                           for key, record in table.items()}
        summary.documents_deleted = sum(1 for r in flat_documents.values() if r.get("deleted"))
        summary.documents_live = len(flat_documents) - summary.documents_deleted
        summary.deliveries = len(flat_deliveries)
        summary.missing = missing(flat_documents, flat_deliveries, view.subscriptions.values())
        if dry_run:
            return summary
        # Step 5
        await ensure_topics(target, admin)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5,
                                    max_batch_size=256 * 1024,
                                    max_request_size=settings.max_record_bytes)
        await producer.start()
        try:
            for name, tables in ((f"{app_id}-documents-changelog", documents),
                                 (f"{app_id}-deliveries-changelog", deliveries)):
                summary.changelog_records += await _write_changelog(
                    reader, producer, name, tables, progress)
            await _commit(settings, f"{app_id}.changes", documents_topic, doc_ends)
            await _commit(settings, f"{app_id}.deliveries", deliveries_topic, delivery_ends)
            # Step 6
            records = offers_for(summary.missing)
            headers = [(REGISTRY_HEADER, mark)]
            sent = []
            partitions = len(delivery_ends)
            for n, (key, value, base) in enumerate(records, 1):
                sent.append(await producer.send(deliveries_topic, value, key=key,
                                                partition=partition_of(base, partitions),
                                                headers=headers))
                if n % 1000 == 0 or n == len(records):
                    progress("offers", n, len(records))
            await asyncio.gather(*sent)
            summary.offers = len(records) // 2
        finally:
            await producer.stop()
        return summary
    finally:
        summary.seconds = time.monotonic() - started
        await reader.stop()
        await view.stop()
        await admin.close()


class _DescribeGroups(Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1
                              | DescribeGroupsRequest_v2]):
    """DescribeGroups up to v2: aiokafka 0.14 reads a v3 answer (what Kafka 4 gives its
    ``describe_consumer_groups``) with the v2 schema and fails ("Buffer underrun")."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(self._groups)


async def _check_stopped(admin: AIOKafkaAdminClient, groups: list[str]) -> None:
    """Step 1: the tables of a running app id are its processes' to write."""
    for group_id in groups:
        node = await admin.find_coordinator(group_id)
        response = await admin._send_request(_DescribeGroups([group_id]), node)
        for group in response.to_object()["groups"]:
            if group["members"]:
                raise ReplayError(
                    f"consumer group {group['group']} has {len(group['members'])} member(s): "
                    "a Flare process of this app id is running. Stop it, or replay into a "
                    "new app id (--app-id)")


async def _ends(reader: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    """partition → the offset after its last record (a topic just created may take a
    moment to appear in the metadata)."""
    partitions = reader.partitions_for_topic(topic)
    for _ in range(50):
        if partitions:
            break
        await reader._client.force_metadata_update()
        partitions = reader.partitions_for_topic(topic)
        if not partitions:
            await asyncio.sleep(0.1)
    if not partitions:
        raise ReplayError(f"topic {topic} has no partitions in the broker's metadata")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    ends = await reader.end_offsets(tps)
    return {tp.partition: offset for tp, offset in ends.items()}


async def _read(reader: AIOKafkaConsumer, topic: str, ends: dict[int, int],
                apply: Callable[[Any], None], progress: Progress) -> int:
    """Every record of ``topic`` from the beginning up to ``ends`` (the snapshot)."""
    tps = [TopicPartition(topic, p) for p in ends]
    starts = await reader.beginning_offsets(tps)
    total = sum(max(0, ends[tp.partition] - starts[tp]) for tp in tps)
    progress(topic, 0, total)
    remaining = {tp for tp in tps if ends[tp.partition] > starts[tp]}
    reader.assign(list(remaining))
    if remaining:
        await reader.seek_to_beginning(*remaining)
    done = 0
    while remaining:
        fetched = await reader.getmany(*remaining, timeout_ms=500, max_records=10_000)
        for tp, records in fetched.items():
            end = ends[tp.partition]
            for record in records:
                if record.offset < end:
                    apply(record)
                    done += 1
        for tp in list(remaining):
            if await reader.position(tp) >= ends[tp.partition]:
                remaining.discard(tp)
        progress(topic, done, total)
        await asyncio.sleep(0)
    reader.assign([])
    return done


async def _write_changelog(reader: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str,
                           tables: dict[int, dict[bytes, dict]], progress: Progress) -> int:
    """Make the changelog say what the tables say: a record per key whose value differs,
    a tombstone per key the changelog has and the table has not (same app id, stopped)."""
    ends = await _ends(reader, topic)
    held: dict[int, dict[bytes, bytes]] = {p: {} for p in ends}

    def keep(record: Any) -> None:
        if record.value is None:
            held[record.partition].pop(record.key, None)
        else:
            held[record.partition][record.key] = record.value

    await _read(reader, topic, ends, keep, lambda *_: None)
    writes: list[tuple[int, bytes, bytes | None]] = []
    for partition, table in tables.items():
        old = held.get(partition, {})
        for key, record in table.items():
            value = orjson.dumps(record)
            if old.get(key) != value:  # held until all are sent: right-sized (store.py)
                writes.append((partition, key, right_sized(value)))
        writes.extend((partition, key, None) for key in old if key not in table)
    sent = []
    for n, (partition, key, value) in enumerate(writes, 1):
        sent.append(await producer.send(topic, value, key=key, partition=partition))
        if n % 1000 == 0 or n == len(writes):
            progress(topic, n, len(writes))
    if not writes:
        progress(topic, 0, 0)
    await asyncio.gather(*sent)
    return len(writes)


async def _commit(settings: Settings, group: str, topic: str, ends: dict[int, int]) -> None:
    """Commit ``group``'s offsets of ``topic`` at the snapshot (its members are stopped)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in ends])
        await consumer.commit({TopicPartition(topic, p): end for p, end in ends.items()})
    finally:
        await consumer.stop()
