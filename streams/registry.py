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
                                            key=command_id.encode()), ASK_TIMEOUT)
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
                    if answer is not None and not answer.done():
                        answer.set_result(orjson.loads(message.value))

    # -- the deciding stage --------------------------------------------------------
    async def _decide_loop(self) -> None:
        consumer = self._decider
        assert consumer is not None
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_BATCH)
            for tp, messages in batches.items():
                async with self._lock:
                    if tp not in consumer.assignment():
                        continue  # revoked meanwhile: the next owner reads them again
                    try:
                        await self._decide(tp, messages)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        # Not tied to one command (broker away, commit refused): decide the
                        # batch again from its first command; answers are the same.
                        log.warning("registry batch of %d commands failed (%s: %s); retrying",
                                    len(messages), exc.__class__.__name__, exc)
                        with contextlib.suppress(Exception):
                            consumer.seek(tp, messages[0].offset)
                        await asyncio.sleep(RETRY_DELAY)

    async def _decide(self, tp: TopicPartition, messages: list) -> None:
        """Steps 1-5 of the module docstring for one fetched batch of commands."""
        assert self.producer is not None and self._decider is not None
        # Step 1
        await self.view.catch_up()
        # Step 2
        batch = Batch(self.view)
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
        # Step 3
        topics = {RESOURCES: self.view.resources_topic,
                  SUBSCRIPTIONS: self.view.subscriptions_topic}
        written: list[tuple[int, asyncio.Future]] = []
        for i, (command_id, outcome) in enumerate(decided):
            if outcome.write:
                topic = topics[outcome.table]
                value = None if outcome.record is None else orjson.dumps(outcome.record)
                written.append((i, await self.producer.send(
                    topic, value, key=outcome.key.encode(), headers=[(COMMAND_HEADER, command_id)])))
        offsets = dict(zip((i for i, _ in written),
                           (m.offset for m in await asyncio.gather(*(f for _, f in written)))))
        # Step 4
        replies = []
        for i, (command_id, outcome) in enumerate(decided):
            topic = topics.get(outcome.table)
            offset = offsets.get(i, self.view.applied(topic) if topic else -1)
            reply = {"v": 1, "ok": outcome.ok, "status": outcome.status, "title": outcome.title,
                     "detail": outcome.detail, "record": outcome.record, "topic": topic,
                     "offset": offset}
            replies.append(await self.producer.send(self.replies_topic, orjson.dumps(reply),
                                                    key=command_id))
        await asyncio.gather(*replies)
        # Step 5
        await self._decider.commit({tp: messages[-1].offset + 1})

    # -- rebalances ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked) -> None:
        # A batch being decided finishes (and commits) before the next owner starts.
        async with self._lock:
            if self.deciding:
                log.info("registry: this process no longer decides commands")
            self.deciding = False

    async def on_partitions_assigned(self, assigned) -> None:
        self.deciding = any(tp.topic == self.commands_topic for tp in assigned)
        if self.deciding:
            log.info("registry: this process decides commands now")
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
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), timeout=5)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in (self._decider, self._replies):
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        if self._lock.locked():
            self._lock.release()
        for answer in self._waiting.values():
            if not answer.done():
                answer.cancel()


def _command(value: bytes | None) -> dict[str, Any] | None:
    try:
        command = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    if (not isinstance(command, dict) or command.get("v") != COMMAND_VERSION
            or not isinstance(command.get("id"), str)):
        return None
    return command
