"""A keyed stage with its own table: one consumer group, batches in, commits after acks.

The changes stage and the dispatcher are both built on this (streams/changes.py,
streams/dispatcher.py). Why not Faust agents and tables (DESIGN.md, "Faust pitfalls"):
Faust's per-message machinery caps an agent at about 7,000 events/s here even doing
nothing, and faust-streaming 0.15.3 was seen committing past messages it never handed to
the agent after a SIGKILL restart, which lost changes (DESIGN.md invariant 1). Here the
work per message is shared across a batch and the commit is ours:

- one aiokafka consumer in the stage's own group reads batches of the source topic; the
  stage decides each message with pure functions and writes its table (a dict per
  partition) and the records that follow, produced without waiting for each;
- about once a second (beside the loop, which goes on), before giving partitions up and
  at stop, it waits for the broker's acks=all acknowledgement of everything produced for
  the messages processed so far, and only then commits their offsets. A committed message's effects are therefore
  always in Kafka (table changelog and downstream topics), and a crash replays the rest;
  stages make replays change nothing (revisions only move forward);
- the table lives in a compacted changelog topic, partitioned like the source, rebuilt
  for each partition this process is given, and kept across a rebalance that gives the
  partition back unchanged (the changelog ends where this process last wrote it);
- the group's assignor (streams/ownership.py) tells every member which process owns each
  partition, so the API can ask the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from app.config import Settings
from streams.ownership import OwnershipAssignor

#: Seconds between commits (each waits for the acknowledgement of what was produced).
COMMIT_INTERVAL = 1.0
MAX_BATCH = 2000
#: Messages (or buffered records) handled between two yields to the event loop: a whole
#: batch at once would hold up the API and the requests in flight for tens of ms.
YIELD_EVERY = 200
FETCH_BYTES = 4 * 1024 * 1024

#: key → its record as JSON. Bytes, not dicts: the garbage collector does not track bytes,
#: and with tens of thousands of dict records each full collection took 50-65 ms of the
#: event loop (seen in the latency benchmark's p99); the changelog needs the bytes anyway.
Table = dict[bytes, bytes]


def decode(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)


@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key, as producers do.
    Cached: murmur2 is pure Python here, and the same documents change again and again."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Stage(ConsumerRebalanceListener):
    """Subclasses implement :meth:`process` (and may hook :meth:`on_tables`)."""

    #: for log lines and /readyz
    label = "stage"
    #: Write each changed key's latest record to the changelog once per commit instead of
    #: at every change. The changelog is compacted, so only the latest record of a key
    #: counts, and the commit writes them before it waits for acks and commits offsets, so
    #: what a committed offset produced is still always in Kafka.
    buffer_changelog = False

    def __init__(self, settings: Settings, source: str, group: str, changelog: str) -> None:
        self.settings = settings
        self.source = source
        self.group = group
        self.changelog = changelog
        self.log = logging.getLogger(f"flare.{self.label}")
        self.assignor = OwnershipAssignor(source, settings.canonical_url)
        #: partition → {key → record as JSON}: the partitions this process owns
        self.tables: dict[int, Table] = {}
        #: the source topic's partition count (read from the broker once assigned)
        self.partitions = settings.partitions
        #: bumped by every rebalance: work started before one must not write after it
        self.generation = 0
        self.ready = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        #: partition → the changelog offset after the last record this process wrote or read
        self._changelog_next: dict[int, int] = {}
        self._pending: list[asyncio.Future] = []
        #: buffered changelog records, (partition, key) → value (None: delete)
        self._dirty: dict[tuple[int, bytes], bytes | None] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._committing: asyncio.Task | None = None
        self._stopping = False
        self._failed: BaseException | None = None

    # -- what a stage does -------------------------------------------------------------
    async def process(self, message: Any, table: Table) -> None:
        raise NotImplementedError

    async def on_tables(self, assigned: list[TopicPartition]) -> None:
        """Called once the tables of a new assignment are ready, before processing starts
        (``assigned``: the source partitions now owned)."""

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        bootstrap = self.settings.kafka_bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=5,
                                         max_batch_size=256 * 1024,
                                         max_request_size=self.settings.max_record_bytes)
        await self.producer.start()
        timeout_ms = int(self.settings.session_timeout * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(self.assignor,),
            session_timeout_ms=timeout_ms, heartbeat_interval_ms=max(500, timeout_ms // 5),
            rebalance_timeout_ms=max(timeout_ms * 2, 10_000), max_poll_records=MAX_BATCH,
            max_partition_fetch_bytes=FETCH_BYTES,
        )
        self._consumer.subscribe([self.source], listener=self)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"flare-{self.label}")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                async with self._lock:
                    await self.commit()
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if self._failed is not None:
            return f"the {self.label} stage failed: {self._failed!r}"
        if not self.ready.is_set():
            return f"joining the {self.label} group and reading its table"
        return None

    # -- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        committed_at = time.monotonic()
        try:
            while not self._stopping:
                generation = self.generation
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
                async with self._lock:
                    if generation != self.generation:
                        continue  # fetched before a rebalance: the new positions re-read it
                    handled = 0
                    for tp, messages in batch.items():
                        table = self.tables.get(tp.partition)
                        if table is None:  # not ours any more
                            continue
                        for message in messages:
                            await self.process(message, table)
                            handled += 1
                            if handled % YIELD_EVERY == 0:
                                await asyncio.sleep(0)
                        self._positions[tp] = messages[-1].offset + 1
                    if (time.monotonic() - committed_at >= COMMIT_INTERVAL
                            and (self._committing is None or self._committing.done())):
                        if self._committing is not None:
                            self._committing.result()  # a failed commit stops the stage
                        # The loop goes on while the acks come back (no stall per commit).
                        self._committing = asyncio.create_task(self._commit(*self._take()))
                        committed_at = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The producer gave up or the consumer broke: stop consuming, say so on /readyz.
            # Nothing is committed past what was acknowledged; a restart replays the rest.
            self._failed = exc
            self.log.exception("the %s stage stopped", self.label)

    # -- writes ------------------------------------------------------------------------
    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or, with None, delete) one key of the table (its record as JSON) and
        produce its changelog record."""
        table = self.tables.get(partition)
        if table is None:
            return  # the partition went to another process; it decides from now on
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
        if self.buffer_changelog:
            self._dirty[(partition, key)] = value
        else:
            self._pending.append(await self._send_changelog(partition, key, value))

    async def _send_changelog(self, partition: int, key: bytes,
                              value: bytes | None) -> asyncio.Future:
        assert self.producer is not None
        sent = await self.producer.send(self.changelog, value, key=key, partition=partition)
        sent.add_done_callback(self._changelog_written)
        return sent

    async def produce(self, topic: str, value: bytes, key: bytes | None = None,
                      partition: int | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce a record the next commit waits for."""
        assert self.producer is not None
        self._pending.append(await self.producer.send(topic, value, key=key, partition=partition,
                                                      headers=headers))

    def _changelog_written(self, sent: asyncio.Future) -> None:
        if not sent.cancelled() and sent.exception() is None:
            metadata = sent.result()
            self._changelog_next[metadata.partition] = metadata.offset + 1

    async def commit(self) -> None:
        """Wait for every record produced so far, then commit what produced them (after
        any commit still running)."""
        if self._committing is not None:
            running, self._committing = self._committing, None
            await running
        await self._commit(*self._take())

    def _take(self) -> tuple[dict[TopicPartition, int], dict, list[asyncio.Future]]:
        """What the next commit covers: the positions processed so far, and the records
        produced (or buffered) for them."""
        positions, self._positions = self._positions, {}
        dirty, self._dirty = self._dirty, {}
        pending, self._pending = self._pending, []
        return positions, dirty, pending

    async def _commit(self, positions: dict[TopicPartition, int], dirty: dict,
                      pending: list[asyncio.Future]) -> None:
        for n, ((partition, key), value) in enumerate(dirty.items(), 1):
            pending.append(await self._send_changelog(partition, key, value))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if pending:
            await asyncio.gather(*pending)  # raises if the producer gave up on one
        if positions and self._consumer is not None:
            owned = self._consumer.assignment()
            positions = {tp: offset for tp, offset in positions.items() if tp in owned}
            if positions:
                try:
                    await self._consumer.commit(positions)
                except KafkaError as exc:  # a rebalance in between: the new owner re-reads
                    self.log.warning("commit of %s offsets failed: %r", self.source, exc)

    # -- rebalances (aiokafka awaits these before fetching again) ----------------------
    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            self.generation += 1
            self.ready.clear()
            try:
                await self.commit()
            except Exception as exc:
                self.log.warning("could not commit before the rebalance: %r", exc)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self._lock:
            self.generation += 1
            mine = sorted(tp.partition for tp in assigned if tp.topic == self.source)
            assert self._consumer is not None
            self.partitions = len(self._consumer.partitions_for_topic(self.source)
                                  or range(self.partitions))
            kept = await self._recover(mine)
            self.log.info("%s partitions %s (%d kept, %d read from the changelog)",
                          self.source, mine, kept, len(mine) - kept)
            await self.on_tables([TopicPartition(self.source, p) for p in mine])
            self.ready.set()

    async def _recover(self, partitions: list[int]) -> int:
        """Rebuild the table of each newly owned partition from its changelog; return how
        many were kept as they were."""
        tps = [TopicPartition(self.changelog, p) for p in partitions]
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                  enable_auto_commit=False, group_id=None,
                                  max_partition_fetch_bytes=FETCH_BYTES)
        await reader.start()
        try:
            ends = await reader.end_offsets(tps) if tps else {}
            stale = []
            tables: dict[int, Table] = {}
            for tp in tps:
                held = self.tables.get(tp.partition)
                if held is not None and self._changelog_next.get(tp.partition, 0) == ends[tp]:
                    tables[tp.partition] = held
                else:
                    tables[tp.partition] = {}
                    stale.append(tp)
            if stale:
                reader.assign(stale)
                await reader.seek_to_beginning(*stale)
                remaining = {tp for tp in stale if ends[tp] > 0}
                while remaining:
                    fetched = await reader.getmany(*remaining, timeout_ms=500, max_records=10_000)
                    for tp, records in fetched.items():
                        table = tables[tp.partition]
                        for record in records:
                            if record.value is None:
                                table.pop(record.key, None)
                            else:
                                table[record.key] = record.value
                    for tp in list(remaining):
                        if await reader.position(tp) >= ends[tp]:
                            remaining.discard(tp)
            self.tables = tables
            self._changelog_next = {tp.partition: ends[tp] for tp in tps}
            return len(tps) - len(stale)
        finally:
            await reader.stop()

    # -- reads for the API -------------------------------------------------------------
    def partition(self, key: bytes) -> int:
        return partition_of(key, self.partitions)

    def owner_url(self, key: bytes) -> str | None:
        """The canonical URL of the Flare process that holds this key's partition."""
        return self.assignor.owners.get(self.partition(key))

    def members(self) -> set[str]:
        """The canonical URLs of every process in the group (after the last rebalance)."""
        return set(self.assignor.owners.values())

    def get(self, key: bytes) -> dict[str, Any] | None:
        """The record of a key, decoded, if this process holds its partition."""
        table = self.tables.get(self.partition(key))
        return None if table is None else decode(table.get(key))
