"""A keyed stage with its own table: one consumer group, batches in, commits after acks.

The changes stage and the dispatcher are both built on this (streams/changes.py,
streams/dispatcher.py). Why not Faust agents and tables (docs/architecture.md): Faust's
per-message machinery capped an agent at about 7,000 events/s here, and faust-streaming
0.15.3 was seen committing past messages it never handed to the agent after a SIGKILL.
Here the work per message is shared across a batch and the commit is ours:

- one aiokafka consumer in the stage's own group reads batches of the source topic; the
  stage decides each message with pure functions, writes its table (a dict per owned
  partition) and produces the records that follow without waiting for each;
- a message whose handling fails — parsing, deciding, serialising, a record too large —
  is parked with its reason (:meth:`Stage.park`) and the partition goes on (DESIGN.md
  invariant 6). Every record is checked against the record limit (``check_size``) before anything
  of the message is written, so a message is handled whole or parked whole;
- the commit, about once a second beside the loop, before giving partitions up, and at
  stop, runs in this order (each step waits for the one before):

    1. wait for the broker's acks=all acknowledgement of every record produced for the
       messages processed so far (offers, outcomes, rejected copies);
    2. write each changed table key's latest record to the changelog (in aiokafka
       batches, a future per batch rather than per record), and wait for those acks too:
       the changelog (what a restart rebuilds the table from) is never ahead of what the
       table's changes produced downstream, whatever order the broker acknowledges
       partitions in;
    3. commit the source offsets of those messages.

  A committed message's effects are therefore always in Kafka, and a crash replays the
  rest; stages make replays change nothing (records keep the source offset that wrote
  them);
- a failure not tied to one message (the producer gave up, the broker went away while
  recovering a table) stops the loop: the stage closes its clients (leaving the group, so
  the partitions go to others at once), waits with a backoff and starts again from the
  last commit. ``/readyz`` says why meanwhile;
- the table lives in a compacted changelog topic, partitioned like the source, and in a
  local store per partition (streams/store.py: RocksDB on disk, holding the changelog up
  to a checkpoint that each commit moves, after step 2). A partition this process is
  given reads only the changelog after its store's checkpoint (all of it when the store
  is missing, unreadable or too old); a partition given back unchanged across a
  rebalance (the changelog ends where this process last wrote it, and the last commit
  succeeded) reads nothing;
- the group's assignor (streams/ownership.py) tells every member which process owns each
  partition, so the API can ask the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (CorruptRecordException, KafkaError, MessageSizeTooLargeError,
                             RecordListTooLargeError)

from app.config import Settings
from streams import store
from streams.ownership import OwnershipAssignor
from streams.store import (DiskTable, MemoryTable, StoreOptions, Stores, process_dir,
                           right_sized)
from tables.murmur2 import default_partitioner, murmur2

#: Seconds between commits (each waits for the acknowledgement of what was produced).
COMMIT_INTERVAL = 1.0
MAX_BATCH = 2000
#: Messages (or buffered records) handled between two yields to the event loop: a whole
#: batch at once would hold up the API and the requests in flight for tens of ms.
YIELD_EVERY = 200
FETCH_BYTES = 4 * 1024 * 1024
#: Records produced or buffered and not yet committed past which the next commit starts
#: at once; past three times this the loop waits for the running one. Memory stays bounded
#: however large the backlog (a million-document backlog held 2.8 GB before), and the loop
#: goes on while a commit runs.
MAX_UNCOMMITTED = 20_000
#: Room kept below ``Settings.max_record_bytes`` (what the producers and Flare's topics
#: carry) for the framing aiokafka counts around a record's key, value and headers.
RECORD_FRAMING = 512
#: Backoff of a stage that restarts itself: first wait, and cap (seconds).
RESTART_INITIAL, RESTART_MAX = 1.0, 30.0
#: How often a rebalance callback tries to read a changelog before the stage restarts,
#: and the wait before the n-th retry (n × this, seconds).
RECOVER_TRIES, RECOVER_BACKOFF = 3, 1.0

#: Errors the broker gives for one record (not for the connection): the message that
#: produced the record is parked when it is read again.
RECORD_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, CorruptRecordException)

#: A source message: (partition, offset).
Origin = tuple[int, int]
#: The message the running task is handling: what it writes and produces is its doing.
#: A context variable, not an attribute: the dispatcher's sending tasks write while the
#: loop is in the middle of a message, and their writes are not that message's.
_ORIGIN: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("origin", default=None)

#: A partition's table: key → its record as JSON (streams/store.py). Bytes, not dicts:
#: the garbage collector does not track bytes (with tens of thousands of dict records each
#: full collection took 50-65 ms of the event loop), and the changelog and RocksDB need
#: the bytes anyway.
Table = DiskTable | MemoryTable


@functools.lru_cache(maxsize=None)
def store_options(cache_bytes: int, write_buffer_bytes: int) -> StoreOptions:
    """One set of RocksDB caches per process, whatever the number of stages and stores."""
    return StoreOptions(cache_bytes, write_buffer_bytes)


def decode(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)


@functools.lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key, as producers do.
    Cached: murmur2 is pure Python here, and the same documents change again and again."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def header(message: Any, name: str) -> bytes | None:
    """The value of a record's header, or None."""
    for key, value in message.headers or ():
        if key == name:
            return value
    return None


class Parked(Exception):
    """One message cannot be handled; ``reason`` says why. Raised by :meth:`Stage.process`
    before anything of the message was written; the stage parks the message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StageBroken(Exception):
    """A failure not tied to one message: the stage restarts."""


def record_limit(settings: Settings) -> int:
    """The most bytes of key, value and headers a record a stage produces may have.
    Flare's topics and producers carry ``settings.max_record_bytes`` (streams/topics.py);
    a message whose records would be larger is parked instead, so the broker never
    refuses a record of a message already half handled."""
    return settings.max_record_bytes - RECORD_FRAMING


def check_size(limit: int, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes]] | None = None, what: str = "record") -> None:
    """Raise :class:`Parked` when a record would be larger than ``limit``."""
    size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
    if size > limit:
        raise Parked(f"{what} of {size} bytes is larger than the {limit} bytes a record "
                     "may have (max_body_bytes and what wraps it)")


class Stage(ConsumerRebalanceListener):
    """Subclasses implement :meth:`process` and :meth:`park` (and may hook
    :meth:`on_tables` and :meth:`on_revoke`)."""

    #: for log lines and /readyz
    label = "stage"
    #: Write each changed key's latest record to the changelog once per commit (step 2 of
    #: the module docstring) instead of at every change. The changelog is compacted, so
    #: only the latest record of a key counts.
    buffer_changelog = True

    def __init__(self, settings: Settings, source: str, group: str, changelog: str) -> None:
        self.settings = settings
        self.source = source
        self.group = group
        self.changelog = changelog
        self.log = logging.getLogger(f"flare.{self.label}")
        self.assignor = OwnershipAssignor(source, settings.canonical_url)
        #: partition → its table: the partitions this process owns
        self.tables: dict[int, Table] = {}
        self.stores = Stores(
            settings.table_store,
            process_dir(settings.data_dir, settings.app_id, settings.canonical_url),
            changelog,
            None if settings.table_store == "memory" else
            store_options(settings.store_cache_bytes, settings.store_write_buffer_bytes))
        #: changelog records read to recover tables since start (a restart with its
        #: stores kept reads only the tail)
        self.changelog_read = 0
        #: the source topic's partition count (read from the broker once assigned)
        self.partitions = settings.partitions
        self.ready = asyncio.Event()
        self.producer: Any = None
        self._consumer: Any = None
        #: times the stage restarted itself after a failure not tied to a message
        self.restarts = 0
        #: messages parked (handled no further) since start
        self.parked = 0
        #: partition assignments this stage has taken since start
        self.rebalances = 0
        #: partition → the next source offset to process; offsets below it were processed
        #: (a batch fetched before a rebalance and fetched again after it is skipped)
        self.next_offset: dict[int, int] = {}
        #: partition → the changelog offset after the last record this process wrote or read
        self._changelog_next: dict[int, int] = {}
        #: records produced and not yet acknowledged, with the message that produced them
        self._pending: list[tuple[asyncio.Future, Origin | None]] = []
        #: buffered changelog records, (partition, key) → (value (None: delete), the
        #: message that wrote it last)
        self._dirty: dict[tuple[int, bytes], tuple[bytes | None, Origin | None]] = {}
        #: messages whose records the broker refused (RECORD_ERRORS) → why: parked when
        #: read again after the restart that follows (kept across restarts)
        self.poisoned: dict[Origin, str] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._committing: asyncio.Task | None = None
        self._stopping = False
        #: why the stage is restarting (None: running)
        self._failed: BaseException | None = None
        #: set by a callback that cannot go on (the loop raises it: the stage restarts)
        self._broken: BaseException | None = None

    # -- what a stage does -------------------------------------------------------------
    async def process(self, message: Any, table: Table) -> None:
        """Handle one message. Raise :class:`Parked` (or anything) before writing to
        park it; once it writes or produces, it must finish."""
        raise NotImplementedError

    async def park(self, message: Any, reason: str) -> None:
        """Keep a message that cannot be handled, with its reason."""
        raise NotImplementedError

    async def on_tables(self, assigned: list[TopicPartition]) -> None:
        """Called once the tables of a new assignment are ready, before processing starts
        (``assigned``: the source partitions now owned)."""

    async def on_revoke(self) -> None:
        """Called when every partition is about to be given up, before the last commit."""

    async def before_batch(self) -> None:
        """Called before each batch is processed (with the stage's lock held)."""

    # -- clients (fault tests replace these) -------------------------------------------
    def new_producer(self) -> Any:
        return AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True,
                                linger_ms=self.settings.stage_linger_ms,
                                max_batch_size=256 * 1024, partitioner=default_partitioner,
                                max_request_size=self.settings.max_record_bytes)

    def new_consumer(self) -> Any:
        timeout_ms = int(self.settings.session_timeout * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(self.assignor,),
            session_timeout_ms=timeout_ms, heartbeat_interval_ms=max(500, timeout_ms // 5),
            rebalance_timeout_ms=max(timeout_ms * 2, 10_000), max_poll_records=MAX_BATCH,
            max_partition_fetch_bytes=FETCH_BYTES,
        )

    def new_reader(self) -> Any:
        """A group-less consumer that reads changelogs."""
        return AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=FETCH_BYTES)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self._open()
        self._task = asyncio.create_task(self._supervise(), name=f"flare-{self.label}")

    async def _open(self) -> None:
        self.producer = self.new_producer()
        await self.producer.start()
        self._consumer = self.new_consumer()
        self._consumer.subscribe([self.source], listener=self)
        await self._consumer.start()

    async def _close(self) -> None:
        """Drop the clients without committing: the partitions go to the group."""
        self.ready.clear()
        if self._committing is not None:
            self._committing.cancel()
            with contextlib.suppress(BaseException):
                await self._committing
            self._committing = None
        for client in (self._consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self.producer = None
        # What was not committed is read again, so nothing of it may be kept (a store
        # keeps only what its checkpoint covers).
        self._close_tables(self.tables)
        self.tables, self._changelog_next, self.next_offset = {}, {}, {}
        self._pending, self._dirty, self._positions = [], {}, {}
        self._broken = None

    async def _supervise(self) -> None:
        """Run the loop; after a failure not tied to a message, start again with backoff."""
        delay = RESTART_INITIAL
        while not self._stopping:
            started = time.monotonic()
            try:
                if self._consumer is None:
                    await self._open()
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                self._failed = exc
                self.restarts += 1
                if time.monotonic() - started > 10 * RESTART_MAX:
                    delay = RESTART_INITIAL  # it had run well for a while
                self.log.error("the %s stage failed (%r); restarting in %.0fs", self.label,
                               exc, delay)
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_MAX)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None and self._broken is None:
            with contextlib.suppress(Exception):
                async with self._lock:
                    await self.commit()
        for client in (self._consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._close_tables(self.tables)  # kept in ``tables``: a memory table stays readable

    def _close_tables(self, tables: dict[int, Table]) -> None:
        for table in tables.values():
            try:
                table.close()
            except Exception as exc:  # the next start rebuilds what it cannot read
                self.log.warning("closing a %s store failed: %r", self.label, exc)

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if self._failed is not None:
            return f"the {self.label} stage is restarting after a failure: {self._failed!r}"
        if not self.ready.is_set():
            return f"joining the {self.label} group and reading its table"
        return None

    # -- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        committed_at = time.monotonic()
        while not self._stopping:
            running = self._committing
            if (running is not None and not running.done()
                    and self._uncommitted() > 3 * MAX_UNCOMMITTED):
                # Backpressure: reading a backlog faster than the commit writes its
                # changelog would hold every record since the last commit in memory.
                await asyncio.wait({running})
            batch = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            async with self._lock:
                if self._broken is not None:
                    raise StageBroken(f"{self._broken!r}") from self._broken
                await self.before_batch()
                # aiokafka hands out only records of the current assignment; a batch
                # fetched before a rebalance may still be handed to us after it, and the
                # same records fetched again: ``next_offset`` skips what was processed.
                handled = 0
                for tp, messages in batch.items():
                    table = self.tables.get(tp.partition)
                    if table is None:  # not ours any more
                        continue
                    done = self.next_offset.get(tp.partition, -1)
                    for message in messages:
                        if message.offset < done:
                            continue
                        await self._handle(message, table)
                        self.next_offset[tp.partition] = message.offset + 1
                        self._positions[tp] = message.offset + 1
                        handled += 1
                        if handled % YIELD_EVERY == 0:
                            await asyncio.sleep(0)
                due = (time.monotonic() - committed_at >= COMMIT_INTERVAL
                       or self._uncommitted() > MAX_UNCOMMITTED)
                if due and (self._committing is None or self._committing.done()):
                    if self._committing is not None:
                        self._committing.result()  # a failed commit restarts the stage
                    # The loop goes on while the acks come back (no stall per commit).
                    self._committing = asyncio.create_task(self._commit(*self._take()))
                    committed_at = time.monotonic()

    def _uncommitted(self) -> int:
        """Records produced or buffered since the running commit took its share."""
        return len(self._dirty) + len(self._pending)

    async def _handle(self, message: Any, table: Table) -> None:
        """Process one message; park it when that fails (invariant 6)."""
        origin = (message.partition, message.offset)
        if origin in self.poisoned:
            await self._park(message, self.poisoned.pop(origin))
            return
        token = _ORIGIN.set(origin)
        try:
            try:
                await self.process(message, table)
            except Parked as exc:
                await self._park(message, exc.reason)
            except MessageSizeTooLargeError as exc:
                await self._park(message, f"a record of it is too large: {exc}"[:500])
            except (StageBroken, asyncio.CancelledError):
                raise
            except KafkaError as exc:  # the broker, not the message: restart, read it again
                raise StageBroken(f"producing for {message.topic}[{message.partition}]@"
                                  f"{message.offset} failed: {exc!r}") from exc
            except Exception as exc:  # a bug must park the message, not stop the partition
                self.log.exception("unexpected error on %s[%s]@%s", message.topic,
                                   message.partition, message.offset)
                await self._park(message, f"internal error: {exc.__class__.__name__}: {exc}"[:500])
        finally:
            _ORIGIN.reset(token)

    async def _park(self, message: Any, reason: str) -> None:
        self.parked += 1
        await self.park(message, reason[:1000])  # reasons may echo a long value

    # -- writes ------------------------------------------------------------------------
    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or, with None, delete) one key of the table (its record as JSON); its
        changelog record follows (buffered: at the next commit)."""
        table = self.tables.get(partition)
        if table is None:
            return  # the partition went to another process; it decides from now on
        if value is not None:
            value = right_sized(value)  # held until the commit, or for good in memory
        table.put(key, value)
        if self.buffer_changelog:
            self._dirty[(partition, key)] = (value, _ORIGIN.get())
        else:
            self._pending.append((await self._send_changelog(partition, key, value), _ORIGIN.get()))

    async def _send_changelog(self, partition: int, key: bytes,
                              value: bytes | None) -> asyncio.Future:
        assert self.producer is not None
        sent = await self.producer.send(self.changelog, value, key=key, partition=partition)
        sent.add_done_callback(self._changelog_written)
        return sent

    async def produce(self, topic: str, value: bytes, key: bytes | None = None,
                      partition: int | None = None,
                      headers: list[tuple[str, bytes]] | None = None,
                      timestamp_ms: int | None = None) -> None:
        """Produce a record the next commit waits for."""
        assert self.producer is not None
        sent = await self.producer.send(topic, value, key=key, partition=partition,
                                        headers=headers, timestamp_ms=timestamp_ms)
        self._pending.append((sent, _ORIGIN.get()))

    def _changelog_written(self, sent: asyncio.Future) -> None:
        if not sent.cancelled() and sent.exception() is None:
            metadata = sent.result()
            self._changelog_next[metadata.partition] = max(
                self._changelog_next.get(metadata.partition, 0), metadata.offset + 1)

    async def commit(self) -> None:
        """Wait for every record produced so far, then commit what produced them (after
        any commit still running)."""
        if self._committing is not None:
            running, self._committing = self._committing, None
            await running
        await self._commit(*self._take())

    def _take(self) -> tuple[dict[TopicPartition, int], dict, list, dict[int, Table]]:
        """What the next commit covers: the positions processed so far, the records
        produced (or buffered) for them, and the tables whose writes it flushes."""
        positions, self._positions = self._positions, {}
        dirty, self._dirty = self._dirty, {}
        pending, self._pending = self._pending, []
        tables = dict(self.tables)
        for table in tables.values():
            table.take()
        return positions, dirty, pending, tables

    async def _commit(self, positions: dict[TopicPartition, int], dirty: dict,
                      pending: list, tables: dict[int, Table]) -> None:
        """Steps 1-3 of the module docstring. A producer failure raises: the records of
        these positions may be missing, so nothing is committed and the stage restarts."""
        # Step 1
        await self._acknowledged(pending)
        # Step 2
        await self._written(await self._write_changelog(dirty))
        # The stores now hold the changelog up to where it is acknowledged.
        for partition, table in tables.items():
            if self.tables.get(partition) is table and partition in self._changelog_next:
                table.flush(self._changelog_next[partition])
        # Step 3
        if positions and self._consumer is not None:
            owned = self._consumer.assignment()
            positions = {tp: offset for tp, offset in positions.items() if tp in owned}
            if positions:
                try:
                    await self._consumer.commit(positions)
                except KafkaError as exc:
                    # A rebalance in between: the new owner reads these messages again,
                    # and they change nothing there (the changelog has their effects).
                    self.log.info("commit of %s offsets failed: %r", self.source, exc)

    async def _write_changelog(self, dirty: dict) -> list[tuple[asyncio.Future, int, list]]:
        """Step 2's records in aiokafka batches, one partition's keys in order: a future
        per batch (up to the producer's ``max_batch_size``), not a send and a future per
        record, which cost a tenth of the stage's time over a backlog of new documents."""
        assert self.producer is not None
        filling: dict[int, tuple[Any, list]] = {}
        sent = []
        for n, ((partition, key), (value, origin)) in enumerate(dirty.items(), 1):
            current = filling.get(partition)
            if current is None or current[0].append(key=key, value=value, timestamp=None) is None:
                if current is not None:  # full: send it, start the next
                    sent.append(await self._send_batch(partition, *current))
                builder = self.producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)  # the first always fits
                current = filling[partition] = (builder, [])
            current[1].append((key, value, origin))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for partition, current in filling.items():
            sent.append(await self._send_batch(partition, *current))
        return sent

    async def _send_batch(self, partition: int, builder: Any,
                          records: list) -> tuple[asyncio.Future, int, list]:
        assert self.producer is not None
        builder.close()
        sent = await self.producer.send_batch(builder, self.changelog, partition=partition)
        count = len(records)

        def written(done: asyncio.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                after = done.result().offset + count  # the batch's base offset + its records
                self._changelog_next[partition] = max(
                    self._changelog_next.get(partition, 0), after)

        sent.add_done_callback(written)
        return sent, partition, records

    async def _written(self, batches: list[tuple[asyncio.Future, int, list]]) -> None:
        """Wait for every batch; if any failed, raise. A batch the broker refused as such
        (RECORD_ERRORS) is sent again a record at a time, to learn which record it was and
        mark its message (``_acknowledged``); when each fits alone, nothing failed."""
        if not batches:
            return
        results = await asyncio.gather(*(sent for sent, _, _ in batches), return_exceptions=True)
        failed = None
        for result, (_, partition, records) in zip(results, batches):
            if not isinstance(result, BaseException):
                continue
            if not isinstance(result, RECORD_ERRORS):
                failed = failed or result
                continue
            alone = [(await self._send_changelog(partition, key, value), origin)
                     for key, value, origin in records]
            try:
                await self._acknowledged(alone)
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    async def _acknowledged(self, sent: list) -> None:
        """Wait for every record; if any failed, raise. A record the broker refused as
        such (RECORD_ERRORS) marks the message that produced it, to be parked when the
        restart reads it again."""
        if not sent:
            return
        results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        failed = None
        for result, (_, origin) in zip(results, sent):
            if isinstance(result, BaseException):
                failed = failed or result
                if isinstance(result, RECORD_ERRORS) and origin is not None:
                    self.poisoned[origin] = f"Kafka refused a record of it: {result!r}"[:500]
        if failed is not None:
            raise failed

    # -- rebalances (aiokafka awaits these before fetching again) ----------------------
    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            self.ready.clear()
            try:
                await self.on_revoke()
                await self.commit()
            except Exception as exc:
                # What the tables hold may not all be in the changelog: keep none of them,
                # and restart (the producer failed, or the broker went away).
                self.log.warning("could not commit before the rebalance: %r", exc)
                self._changelog_next = {}
                self._broken = exc

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self._lock:
            self.rebalances += 1
            mine = sorted(tp.partition for tp in assigned if tp.topic == self.source)
            assert self._consumer is not None
            self.partitions = len(self._consumer.partitions_for_topic(self.source)
                                  or range(self.partitions))
            for attempt in range(1, RECOVER_TRIES + 1):
                try:
                    kept = await self._recover(mine)
                    break
                except Exception as exc:
                    self.log.warning("reading the %s changelog failed (try %d of %d): %r",
                                     self.label, attempt, RECOVER_TRIES, exc)
                    if attempt == RECOVER_TRIES:
                        self._close_tables(self.tables)
                        self.tables, self._changelog_next = {}, {}
                        self._broken = exc  # the loop raises it: the stage restarts
                        return
                    await asyncio.sleep(attempt * RECOVER_BACKOFF)
            self.next_offset = {p: offset for p, offset in self.next_offset.items() if p in mine}
            self.log.info("%s partitions %s (%d kept, %d recovered; %d changelog records "
                          "read since start)", self.source, mine, kept, len(mine) - kept,
                          self.changelog_read)
            try:
                await self.on_tables([TopicPartition(self.source, p) for p in mine])
            except Exception as exc:
                self.log.warning("the %s stage could not take its partitions: %r", self.label, exc)
                self._broken = exc
                return
            self._failed = None
            self.ready.set()

    async def _recover(self, partitions: list[int]) -> int:
        """Make the table of each newly owned partition hold its whole changelog: a table
        held since this process wrote the changelog's end is kept; a store reads the
        changelog after its checkpoint; anything else is rebuilt from the start. Return
        how many tables were kept as they were."""
        tps = [TopicPartition(self.changelog, p) for p in partitions]
        reader = self.new_reader()
        await reader.start()
        try:
            ends = await reader.end_offsets(tps) if tps else {}
            held, self.tables = self.tables, {}
            tables: dict[int, Table] = {}
            starts: dict[TopicPartition, int] = {}
            kept = 0
            try:
                for tp in tps:
                    table = held.pop(tp.partition, None)
                    if table is not None and self._changelog_next.get(tp.partition, 0) == ends[tp]:
                        tables[tp.partition] = table
                        kept += 1
                        continue
                    if table is not None:
                        table.close()
                    # Processed positions belong to the table that is dropped.
                    self.next_offset.pop(tp.partition, None)
                    table = tables[tp.partition] = self.stores.open(tp.partition)
                    start = self._checkpoint(table, tp, ends[tp])
                    if start < ends[tp]:
                        starts[tp] = start
                self._close_tables(held)  # partitions that went to others: kept on disk
                await self._read_changelog(reader, tables, starts, ends)
            except BaseException:
                self._close_tables(tables)
                raise
            self.tables = tables
            self._changelog_next = {tp.partition: ends[tp] for tp in tps}
            return kept
        finally:
            await reader.stop()

    def _checkpoint(self, table: Table, tp: TopicPartition, end: int) -> int:
        """Where to read ``tp`` from for ``table``: its checkpoint when the store can be
        trusted, else 0 (the store wiped)."""
        found = table.checkpoint()
        if found is None:  # a new store, or one whose first load did not finish
            table.wipe()
            return 0
        offset, written_at = found
        why = None
        if offset > end:
            why = f"its checkpoint {offset} is past the changelog's end {end}"
        elif time.time() - written_at > self.settings.store_max_age:
            why = "it is older than store_max_age"
        if why is None:
            return offset
        self.log.info("rebuilding the %s store of %s from the changelog: %s",
                      self.label, tp, why)
        table.wipe()
        return 0

    async def _read_changelog(self, reader: Any, tables: dict[int, Table],
                              starts: dict[TopicPartition, int],
                              ends: dict[TopicPartition, int]) -> None:
        """Read each changelog partition from its start to its end into its table."""
        if not starts:
            return
        reader.assign(list(starts))
        for tp, offset in starts.items():
            reader.seek(tp, offset)
        remaining = set(starts)
        while remaining:
            fetched = await reader.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, records in fetched.items():
                tables[tp.partition].load((record.key, record.value) for record in records)
                self.changelog_read += len(records)
            for tp in list(remaining):
                if await reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        for tp in starts:
            tables[tp.partition].flush(ends[tp])

    async def scan(self) -> AsyncIterator[tuple[int, list[tuple[bytes, bytes]]]]:
        """Every record of the owned tables as (partition, chunk of records), yielding to
        the event loop between chunks; a table given up meanwhile ends its part only (it is
        looked at before each chunk is read: a given-up store is closed)."""
        for partition, table in list(self.tables.items()):
            chunks = table.chunks(store.SCAN_CHUNK)
            while self.tables.get(partition) is table:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                yield partition, chunk
                await asyncio.sleep(0)

    # -- reads for the API -------------------------------------------------------------
    def lag(self) -> dict[int, int]:
        """partition → messages of the source not yet processed (for /metrics): the
        broker's high watermark as last fetched, less what this stage processed."""
        consumer, lag = self._consumer, {}
        if consumer is None:
            return lag
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            done = self.next_offset.get(tp.partition)
            if end is not None and done is not None:
                lag[tp.partition] = max(0, end - done)
        return lag

    def failure(self) -> str | None:
        """Why the stage is restarting, or None."""
        return None if self._failed is None else repr(self._failed)

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
