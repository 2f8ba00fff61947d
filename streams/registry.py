"""Registry commands, serialised through one Kafka partition (DESIGN.md, State and keys).

The API validates a body (pure, tables/), then :meth:`Registry.execute` sends a command to
the one partition of ``<prefix>.registry.commands`` and waits for its reply. Exactly one
process, the owner of that partition in the consumer group ``<app id>.registry``, decides
commands, so two concurrent POSTs of one endpoint, through one process or two, give
exactly one 201.

The owner decides a fetch of commands at a time (:meth:`Registry._decide`):
  1. it catches its view up with the end of the registry topics (whatever the last owner
     wrote);
  2. it decides every command against the view plus the decisions already made in this
     batch (tables/commands.py), in offset order;
  3. it produces the batch's records and tombstones (acks=all, each with the command id in
     a ``flare-command`` header) and waits for all their acknowledgements;
  4. it produces one reply per command to ``<prefix>.registry.replies`` (key: command id;
     ok/status/title/detail, the record, the topic and offset of the written record) and
     waits for their acknowledgements;
  5. it commits the commands' offsets.
A crash before step 5 redelivers the batch to the next owner, which answers the same
(creates find their object, deletes their tombstone's command id). The asker:
  a. registers a future under a new command id (its replies tail is already at the end of
     the replies topic, taken before this process sent any command);
  b. produces the command (acks=all) and waits for the reply with that id;
  c. waits until its own view has applied the reply's offset (read-your-writes), answers.
No reply within ``ASK_TIMEOUT`` seconds is a 503; the command then carries an ``expires``
time after which no owner decides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from app.config import Settings
from streams.registry_view import COMMAND_HEADER, FETCH_WAIT_MS, RegistryUnavailable, RegistryView
from tables.commands import COMMAND_VERSION, RESOURCES, SUBSCRIPTIONS, Batch, Outcome, decide
from tables.errors import FlareError

log = logging.getLogger("flare.registry")

ASK_TIMEOUT = 30.0
#: Commands decided in one batch at most.
MAX_BATCH = 500
#: Batches produced whose replies and commit are not done yet, at most.
MAX_IN_FLIGHT = 4
#: Seconds between two tries of a batch that failed for a reason not tied to a command.
RETRY_DELAY = 1.0


def _unavailable(detail: str) -> FlareError:
    return FlareError(503, "registry unavailable", detail)


class Registry(ConsumerRebalanceListener):
    """The asking side (every process) and the deciding stage (the partition's owner)."""

    def __init__(self, settings: Settings, view: RegistryView) -> None:
        self.settings = settings
        self.view = view
        self.commands_topic = settings.topic("registry.commands")
        self.replies_topic = settings.topic("registry.replies")
        self.group = f"{settings.app_id}.registry"
        self.producer: AIOKafkaProducer | None = None
        #: command id → the future its asker waits on
        self._waiting: dict[str, asyncio.Future] = {}
        self._replies: AIOKafkaConsumer | None = None
        self._decider: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()
        self.listening = False
        #: set once the decider joined its group (owner of the partition or not)
        self.joined = asyncio.Event()
        self.deciding = False
        #: the decisions the view has not read back yet (tables/commands.py); None: catch up
        self._batch: Batch | None = None
        #: topic → the offset of the last record this process wrote there as the owner
        self._last_written: dict[str, int] = {}
        #: batches whose acks, replies and commit are pending, oldest first
        self._finishing: deque[asyncio.Task] = deque()
        self._topics = {RESOURCES: view.resources_topic, SUBSCRIPTIONS: view.subscriptions_topic}

    # -- API side ------------------------------------------------------------------
    async def execute(self, command: dict[str, Any]) -> dict[str, Any]:
        """Have the owner decide ``command``; wait for its record here; return the reply."""
        if self.producer is None or not self.listening or not self.view.caught_up.is_set():
            raise _unavailable("the stream processor is still starting")
        deadline = time.monotonic() + ASK_TIMEOUT
        # Step a
        command_id = str(uuid.uuid4())
        command = {"v": COMMAND_VERSION, "id": command_id,
                   "expires": int((time.time() + ASK_TIMEOUT) * 1000), **command}
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = answer
        try:
            # Step b
            await asyncio.wait_for(
                self.producer.send_and_wait(self.commands_topic, orjson.dumps(command),
                                            key=command_id.encode(), partition=0), ASK_TIMEOUT)
            reply = await asyncio.wait_for(answer, max(deadline - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            raise _unavailable("no answer from the registry in time") from None
        except KafkaError as exc:
            raise _unavailable(f"Kafka did not acknowledge the command: {exc.__class__.__name__}") from None
        finally:
            self._waiting.pop(command_id, None)
        if not reply.get("ok"):
            raise FlareError(reply["status"], reply["title"], reply["detail"])
        # Step c
        try:
            await self.view.wait_for(reply["topic"], reply["offset"],
                                     timeout=max(deadline - time.monotonic(), 1.0))
        except RegistryUnavailable as exc:
            raise _unavailable(str(exc)) from None
        return reply

    async def _tail_replies(self) -> None:
        """Resolve the futures of this process's askers, by command id."""
        consumer = self._replies
        assert consumer is not None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away for a moment: askers time out meanwhile
                log.info("reading registry replies failed (%s); reading on", exc.__class__.__name__)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for messages in batches.values():
                for message in messages:
                    if message.key is None:
                        continue
                    answer = self._waiting.pop(message.key.decode(errors="replace"), None)
                    if answer is None or answer.done():
                        continue
                    try:
                        answer.set_result(orjson.loads(message.value))
                    except orjson.JSONDecodeError:  # not ours to read: its asker gets a 503
                        answer.set_result(_UNREADABLE)

    # -- the deciding stage --------------------------------------------------------
    async def _decide_loop(self) -> None:
        consumer = self._decider
        assert consumer is not None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_BATCH)
            except KafkaError as exc:  # the broker away for a moment: fetch again
                log.info("fetching registry commands failed (%s); fetching again",
                         exc.__class__.__name__)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for tp, messages in batches.items():
                async with self._lock:
                    if tp not in consumer.assignment():
                        continue  # revoked meanwhile: the next owner reads them again
                    if self._failed(tp):
                        await self._recover(tp)
                        break  # the fetched rest is read again from the committed offset
                    try:
                        await self._decide(tp, messages)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # catching up or producing failed
                        self._finishing.append(_failed_task(exc))
                        await self._recover(tp)
                        break

    async def _decide(self, tp: TopicPartition, messages: list) -> None:
        """Steps 1-3 of the module docstring for one fetched batch of commands; steps 3-5
        finish in a task (:meth:`_finish`), so the next batch is decided meanwhile."""
        assert self.producer is not None
        topics = self._topics
        # Step 1
        if self._batch is None:  # the first batch since this process owns the partition
            await self.view.catch_up()
            self._batch = Batch(self.view)
        batch = self._batch
        batch.settle({table: self.view.applied(topic) for table, topic in topics.items()})
        # Step 2
        now_ms = int(time.time() * 1000)
        decided: list[tuple[bytes, Outcome]] = []
        for message in messages:
            command = _command(message.value)
            if command is None:  # not a Flare command (e.g. written by an older version)
                continue
            try:
                outcome = decide(command, batch, now_ms)
            except Exception as exc:  # one bad command must not stop the registry
                log.warning("registry command %s failed: %r", command["id"], exc)
                outcome = Outcome(False, 500, "internal error",
                                  f"registry command failed: {exc.__class__.__name__}")
            decided.append((command["id"].encode(), outcome))
        entries = batch.take_unplaced()
        # Step 3: produced now, in decision order; acknowledged in _finish. Every registry
        # topic has one partition, given explicitly: that spares the producer the default
        # partitioner's pure-Python murmur2 of each key (about 40 µs here).
        written: list[tuple[int, asyncio.Future]] = []
        for i, (command_id, outcome) in enumerate(decided):
            if outcome.write:
                value = None if outcome.record is None else orjson.dumps(outcome.record)
                written.append((i, await self.producer.send(
                    topics[outcome.table], value, key=outcome.key.encode(), partition=0,
                    headers=[(COMMAND_HEADER, command_id)])))
        while len(self._finishing) >= MAX_IN_FLIGHT:
            await asyncio.wait([self._finishing[0]])
            if self._failed(tp):
                raise RuntimeError("an earlier registry batch failed")
        previous = self._finishing[-1] if self._finishing else None
        self._finishing.append(asyncio.create_task(
            self._finish(previous, tp, messages[-1].offset + 1, decided, written, entries)))

    async def _finish(self, previous: asyncio.Task | None, tp: TopicPartition, next_offset: int,
                      decided: list[tuple[bytes, Outcome]], written: list, entries: list) -> None:
        """Steps 3-5 of one batch, after those of the batch before (commits stay in order)."""
        assert self.producer is not None and self._decider is not None
        topics = self._topics
        if previous is not None:
            await previous  # a failed batch fails every later one: nothing commits past it
        # Step 3
        placed = [m.offset for m in await asyncio.gather(*(f for _, f in written))]
        Batch.place(entries, placed)
        offsets = dict(zip((i for i, _ in written), placed))
        for i, offset in offsets.items():
            topic = topics[decided[i][1].table]
            self._last_written[topic] = max(self._last_written.get(topic, -1), offset)
        # Step 4
        replies = []
        for i, (command_id, outcome) in enumerate(decided):
            topic = topics.get(outcome.table)
            # A command decided before (redelivered) waits for what this owner wrote so far.
            offset = offsets.get(i, max(self.view.applied(topic), self._last_written.get(topic, -1))
                                 if topic else -1)
            reply = {"v": 1, "ok": outcome.ok, "status": outcome.status, "title": outcome.title,
                     "detail": outcome.detail, "record": outcome.record, "topic": topic,
                     "offset": offset}
            replies.append(await self.producer.send(self.replies_topic, orjson.dumps(reply),
                                                    key=command_id, partition=0))
        await asyncio.gather(*replies)
        # Step 5
        await self._decider.commit({tp: next_offset})

    def _failed(self, tp: TopicPartition) -> bool:
        while self._finishing and self._finishing[0].done():
            task = self._finishing.popleft()
            if task.cancelled() or task.exception() is not None:
                self._finishing.appendleft(task)
                return True
        return False

    async def _recover(self, tp: TopicPartition) -> None:
        """A batch failed for a reason not tied to one command (broker away, commit refused):
        decide again from the last committed offset; answers are the same (idempotent)."""
        error = await self._drain()
        log.warning("registry batch failed (%s); deciding again from the last commit", error)
        self._batch = None  # decisions that may not be written: read the view back instead
        await asyncio.sleep(RETRY_DELAY)
        with contextlib.suppress(Exception):
            committed = await self._decider.committed(tp)
            self._decider.seek(tp, committed if committed is not None else 0)

    async def _drain(self) -> str | None:
        """Wait for every batch in flight; the first error, if any."""
        error = None
        while self._finishing:
            task = self._finishing.popleft()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            if error is None and (task.cancelled() or task.exception() is not None):
                error = "cancelled" if task.cancelled() else repr(task.exception())
        return error

    # -- rebalances ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked) -> None:
        # Batches being decided finish (and commit) before the next owner starts.
        async with self._lock:
            error = await self._drain()
            if error is not None:
                log.info("a registry batch failed before the partition moved (%s); the next "
                         "owner decides it again", error)
            if self.deciding:
                log.info("this process no longer decides registry commands")
            self.deciding = False

    async def on_partitions_assigned(self, assigned) -> None:
        self._batch = None  # catch the view up before the first batch
        self.deciding = any(tp.topic == self.commands_topic for tp in assigned)
        if self.deciding:
            log.info("this process decides registry commands now")
        self.joined.set()

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if not self.listening:
            return "starting the registry"
        if not self.joined.is_set():
            return "joining the registry group"
        return None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Tail the replies from their current end, then join the deciding group."""
        bootstrap = self.settings.kafka_bootstrap
        self._replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, auto_offset_reset="latest",
                                         fetch_max_wait_ms=FETCH_WAIT_MS)
        await self._replies.start()
        tp = TopicPartition(self.replies_topic, 0)
        self._replies.assign([tp])
        end = (await self._replies.end_offsets([tp]))[tp]
        self._replies.seek(tp, end)
        self._tasks.append(asyncio.create_task(self._tail_replies(), name="flare-registry-replies"))
        self.listening = True
        timeout_ms = int(self.settings.session_timeout * 1000)
        self._decider = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=timeout_ms, heartbeat_interval_ms=max(500, timeout_ms // 5),
            rebalance_timeout_ms=max(timeout_ms * 2, 10_000), max_poll_records=MAX_BATCH,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        self._decider.subscribe([self.commands_topic], listener=self)
        await self._decider.start()
        self._tasks.append(asyncio.create_task(self._decide_loop(), name="flare-registry-decider"))

    async def stop(self) -> None:
        self.listening = False
        # A batch being decided finishes first (its replies and commit are cheap).
        locked = False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), timeout=5)
            locked = True
            await asyncio.wait_for(self._drain(), timeout=5)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if locked:
            self._lock.release()  # leaving the group may call on_partitions_revoked
        for consumer in (self._decider, self._replies):
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        for answer in self._waiting.values():
            if not answer.done():
                answer.cancel()


def _failed_task(exc: BaseException) -> asyncio.Future:
    """A finished future holding ``exc``: a batch that failed before its task was made."""
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


_UNREADABLE = {"ok": False, "status": 503, "title": "registry unavailable",
               "detail": "the registry's reply was unreadable"}


def _command(value: bytes | None) -> dict[str, Any] | None:
    try:
        command = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    if (not isinstance(command, dict) or command.get("v") != COMMAND_VERSION
            or not isinstance(command.get("id"), str)):
        return None
    return command
