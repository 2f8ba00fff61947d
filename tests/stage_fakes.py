"""In-memory stand-ins for the Kafka clients of a stage, for fault tests without a broker.

Only what streams/stage.py calls is here. The fake producer holds every record until the
test acknowledges it, in any order it likes, or fails it, or "crashes" (drops what it holds);
only acknowledged records reach the fake broker's logs, as with acks=all. The fake group
consumer hands out the source topic from committed offsets and lets the test run a
rebalance while the stage's loop is running, as aiokafka's coordinator does.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from aiokafka import TopicPartition

from streams.stage import partition_of


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int = 0


@dataclass(frozen=True)
class Metadata:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeBroker:
    partitions: int = 2
    logs: dict[tuple[str, int], list[Record]] = field(default_factory=lambda: defaultdict(list))
    committed: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    #: consumers waiting in getmany for a record (woken by append, as a broker's long poll)
    waiters: list[asyncio.Future] = field(default_factory=list)

    async def wait_for_records(self, timeout: float) -> None:
        """Return when a record is appended, or after ``timeout`` (a fetch's max wait)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def append(self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
               headers=()) -> Record:
        if partition is None:
            partition = partition_of(key, self.partitions)
        log = self.logs[(topic, partition)]
        record = Record(topic, partition, len(log), key, value, tuple(headers or ()),
                        int(time.time() * 1000))
        log.append(record)
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        return record

    def records(self, topic: str) -> list[Record]:
        return [r for (t, _), log in sorted(self.logs.items(), key=lambda i: i[0]) if t == topic
                for r in log]

    def table(self, changelog: str) -> dict[bytes, bytes]:
        """What a compacted changelog holds: the last value per key."""
        table: dict[bytes, bytes] = {}
        for record in self.records(changelog):
            if record.value is None:
                table.pop(record.key, None)
            else:
                table[record.key] = record.value
        return table


class Watched(asyncio.Future):
    """A send's future that says when someone waits for it (``asyncio.gather`` adds a
    done-callback): a test can wait until a commit is blocked on it, with no sleep."""

    waited = False

    def add_done_callback(self, fn, *, context=None) -> None:
        self.waited = True
        super().add_done_callback(fn, context=context)


@dataclass
class Held:
    future: asyncio.Future
    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: Any
    #: a batch's (key, value) records (``send_batch``); None for one record (``send``)
    batch: list[tuple[bytes | None, bytes | None]] | None = None


class FakeBatch:
    """aiokafka's BatchBuilder, as far as the stage uses it (it never fills up)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.closed = False

    def append(self, *, key, value, timestamp=None, headers=None):
        if self.closed:
            return None
        self.records.append((key, value))
        return len(self.records) - 1

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Acknowledges nothing until told (``ack``), unless ``auto`` says so for a topic."""

    def __init__(self, broker: FakeBroker, auto: Callable[[str], bool] = lambda topic: True):
        self.broker = broker
        self.auto = auto
        self.held: list[Held] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic, value, key=None, partition=None, headers=None,
                   timestamp_ms=None):
        held = Held(Watched(loop=asyncio.get_running_loop()), topic, partition, key, value,
                    headers)
        self.held.append(held)
        if self.auto(topic):
            self.ack(lambda h: h is held)
        return held.future

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic, *, partition):
        """One held entry for the whole batch (key None): acknowledged, its records reach
        the log together and the future says the first one's offset, as aiokafka's does."""
        held = Held(Watched(loop=asyncio.get_running_loop()), topic, partition, None, None,
                    None, batch=list(batch.records))
        self.held.append(held)
        if self.auto(topic):
            self.ack(lambda h: h is held)
        return held.future

    def ack(self, which: Callable[[Held], bool] = lambda held: True) -> int:
        """Acknowledge the held records ``which`` picks (they reach the broker's logs)."""
        chosen = [h for h in self.held if which(h)]
        for held in chosen:
            self.held.remove(held)
            records = [self.broker.append(held.topic, held.partition, key, value, ())
                       for key, value in held.batch] if held.batch is not None else [
                self.broker.append(held.topic, held.partition, held.key, held.value,
                                   held.headers)]
            record = records[0]
            if not held.future.done():
                held.future.set_result(Metadata(record.topic, record.partition, record.offset))
        return len(chosen)

    def fail(self, which: Callable[[Held], bool], exc: Exception) -> int:
        chosen = [h for h in self.held if which(h)]
        for held in chosen:
            self.held.remove(held)
            if not held.future.done():
                held.future.set_exception(exc)
        return len(chosen)

    def crash(self) -> None:
        """A SIGKILL: what was not acknowledged never reaches the broker."""
        for held in self.held:
            held.future.cancel()
        self.held.clear()


class FakeConsumer:
    """One member of the stage's group, owning the partitions the test gives it."""

    def __init__(self, broker: FakeBroker, group: str, topic: str, owned: list[int]) -> None:
        self.broker, self.group, self.topic = broker, group, topic
        self.owned = [TopicPartition(topic, p) for p in owned]
        self.positions: dict[TopicPartition, int] = {}
        self.listener: Any = None
        self.fail_commit: Exception | None = None
        self.stopped = False
        self.listener_errors: list[Exception] = []

    def subscribe(self, topics, listener) -> None:
        self.listener = listener

    async def start(self) -> None:
        await self._assign()

    async def stop(self) -> None:
        self.stopped = True

    async def _assign(self) -> None:
        self.positions = {tp: self.broker.committed.get((self.group, tp), 0) for tp in self.owned}
        await self._call(self.listener.on_partitions_assigned)

    async def _call(self, callback) -> None:
        """As aiokafka does: a listener's exception is logged and the group goes on."""
        try:
            await callback(set(self.owned))
        except Exception as exc:  # noqa: BLE001 - what aiokafka's coordinator does
            self.listener_errors.append(exc)

    async def rebalance(self, owned: list[int] | None = None) -> None:
        """Revoke everything, then assign ``owned`` (default: the same partitions)."""
        await self._call(self.listener.on_partitions_revoked)
        if owned is not None:
            self.owned = [TopicPartition(self.topic, p) for p in owned]
        await self._assign()

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.broker.partitions))

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None):
        batch = {}
        for tp in self.owned:
            log = self.broker.logs[(tp.topic, tp.partition)]
            records = log[self.positions.get(tp, 0):]
            if records:
                batch[tp] = records
                self.positions[tp] = records[-1].offset + 1
        if not batch:
            await self.broker.wait_for_records(timeout_ms / 1000)
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        for tp, offset in offsets.items():
            self.broker.committed[(self.group, tp)] = offset

    async def end_offsets(self, tps):
        return {tp: len(self.broker.logs[(tp.topic, tp.partition)]) for tp in tps}

    async def beginning_offsets(self, tps):
        return {tp: 0 for tp in tps}

    async def committed(self, tp):
        return self.broker.committed.get((self.group, tp))


class FakeReader:
    """The group-less consumer a stage reads its changelog with."""

    def __init__(self, broker: FakeBroker, fail: Callable[[], Exception | None] = lambda: None):
        self.broker = broker
        self.fail = fail
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def end_offsets(self, tps):
        error = self.fail()
        if error is not None:
            raise error
        return {tp: len(self.broker.logs[(tp.topic, tp.partition)]) for tp in tps}

    def assign(self, tps) -> None:
        self.positions = {tp: 0 for tp in tps}

    async def seek_to_beginning(self, *tps) -> None:
        for tp in tps:
            self.positions[tp] = 0

    def seek(self, tp, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *tps, timeout_ms: int = 0, max_records: int | None = None):
        batch = {}
        for tp in tps:
            records = self.broker.logs[(tp.topic, tp.partition)][self.positions[tp]:]
            if records:
                batch[tp] = records
                self.positions[tp] += len(records)
        return batch

    async def position(self, tp) -> int:
        return self.positions[tp]
