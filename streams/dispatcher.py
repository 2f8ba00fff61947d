"""Fan-out and the dispatcher: ``<prefix>.deliveries`` → deliveries table → HTTP (SPEC §9).

Every event on the deliveries topic belongs to the base key ``<subscription id>|<document
URL>`` and is produced to that key's partition, so one key's events stay in one
partition, in order. The topic is compacted, so the events a replay needs together have
keys of their own (tables/events.py: ``<subscription id>.outcome|<document URL>`` and so
on); the dispatcher keeps its table by the base key. Three kinds of events:

- ``offer``: a change of the document for this subscriber (from the changes stage);
- ``redrive``: send a dead delivery again (from the API);
- ``outcome``: a change was delivered or discarded. The sending task has recorded it in
  the table already; the event is there for a replay under a new app id (DESIGN.md
  invariant 5), which rebuilds the table from the topic and must know what subscribers
  already have. The owner applies one only when it moves the record forward.

The dispatcher is a batch stage (streams/stage.py: its own consumer group
``<app id>.deliveries``, its table in ``<app id>-deliveries-changelog``), and it decides
with the pure functions of tables/delivery.py. For one key (DESIGN.md invariants 2-3):
  1. an event is applied to the key's state, which is stored;
  2. when a change is due and no request of this key is in flight, a task sends it;
  3. the task records the outcome in the table itself: the record moves only after a
     success or a discard (invariant 2), and what is due next (a coalesced newer
     revision, §9.4, or a retry) goes out from there.
Retries and deliveries pending after a restart are found by a scan of an index of the keys
that wait (rebuilt from the table after each rebalance): pending retries are table state,
not timers in memory. Different keys never wait on each other (invariant 4); the number of
requests in flight is bounded by a fixed pool of sending tasks.

Replays (after a crash the consumer resumes at the last commit, and the table is often ahead
of it) must change nothing: offers older than what a key holds or waits for change nothing,
and nothing of a partition is sent until its replay has reached the end the partition had
when it was assigned, so a put replayed after a delete is settled by that delete first.

Rebalances (DESIGN.md invariant 7): when partitions are revoked, nothing new is sent, the
queued requests are dropped, and the stage waits (up to ``delivery_timeout`` and a little
more) for the requests in flight, whose outcomes are recorded and committed before the
partitions go. So the next owner starts from a table that knows what was delivered, and a
request of the old owner never reaches a subscriber after one of the new owner's. A
request still in flight after that wait is cancelled and its outcome not recorded: the
new owner sends again (at-least-once; receivers dedupe on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import orjson
from aiokafka import TopicPartition

from app.config import Settings
from streams import metrics
from streams.registry_view import REGISTRY_HEADER, RegistryUnavailable, RegistryView
from streams.sender import Sender, signed_headers
from streams.stage import Parked, Stage, StageBroken, Table, decode, header
from tables.delivery import (DEAD, PENDING, DeliveryState, PendingChange, due, next_action,
                             on_outcome, record_kind, webhook_id)
from tables.documents import Applied, Change
from tables.due import DueIndex
from tables.events import (OUTCOME, REDRIVE, REDRIVE_KEY, SUFFIXES, UnknownEvent, apply_event,
                           base_key, event_key, fan_out, outcome_value)
from tables.outcome import Outcome, classify
from tables.request import UnsafeFill, build_request

SCAN_INTERVAL = 0.25
#: Beyond ``delivery_timeout``, how long a revoke waits for requests in flight (seconds).
REVOKE_GRACE = 2.0


def delivery_key(subscription_id: str, document_url: str) -> bytes:
    return f"{subscription_id}|{document_url}".encode()


def split_key(key: bytes) -> tuple[str, str]:
    subscription_id, _, url = key.decode().partition("|")
    return subscription_id, url


def deliveries_group(settings: Settings) -> str:
    return f"{settings.app_id}.deliveries"


def deliveries_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-deliveries-changelog"


def state_of(value: bytes | None) -> DeliveryState:
    """The state a table value (a record as JSON) holds."""
    return DeliveryState() if value is None else DeliveryState.from_record(orjson.loads(value))


class Dispatcher(Stage):
    label = "dispatcher"

    def __init__(self, settings: Settings, view: RegistryView) -> None:
        super().__init__(settings, settings.topic("deliveries"), deliveries_group(settings),
                         deliveries_changelog(settings))
        self.view = view
        #: keys with a request in flight (memory only: a crash ends them)
        self.inflight: set[bytes] = set()
        #: keys with a change waiting and no request in flight → when it is due (an index
        #: over the owned tables; a request in flight indexes its key again when it ends)
        self.waiting = DueIndex()
        #: partition → the source offset its replay must reach before anything is sent
        self._catching_up: dict[int, int] = {}
        self._sender: Sender | None = None
        #: requests to send; ``delivery_concurrency`` workers take them one at a time
        self._queue: asyncio.Queue = asyncio.Queue()
        self._workers: list[asyncio.Task] = []
        self._scanner: asyncio.Task | None = None
        #: bumped when partitions are revoked: a job of an older epoch sends nothing and
        #: records nothing
        self._epoch = 0
        #: set between a revoke and the next assignment: nothing new is sent
        self._frozen = False
        #: requests being sent now, and an event set whenever there are none
        self._sending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.rejected_topic = settings.topic("deliveries.rejected")
        #: how many of the view's deleted subscriptions were dropped already
        self._deleted_seen = 0
        #: owned records by record_kind (idle, pending, dead)
        self._kinds = [0, 0, 0]

    # -- counts of the owned records by kind, kept as they are written (for /metrics) ---
    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        table = self.tables.get(partition)
        if table is not None:
            self._kinds[record_kind(table.get(key))] -= 1
            self._kinds[record_kind(value)] += 1
        await super().write(partition, key, value)

    def counts(self) -> tuple[int, int]:
        """(pending, dead) records in the owned tables."""
        return self._kinds[PENDING], self._kinds[DEAD]

    # -- fan-out (asked by the changes stage for each accepted change) ------------------
    def offers(self, change: Change, applied: Applied,
               offset: int | None = None) -> list[tuple[bytes, bytes, int]]:
        """One offer per subscription of the document's resource (SPEC §9.1), as
        (deliveries key, value, partition: the base key's); the changes stage produces
        them with its batch. ``offset``: the change's on the documents topic."""
        subscriptions = self.view.subscriptions_of(change.resource_id)
        if not subscriptions:
            return []
        offered = fan_out(change, applied, offset)  # may raise: the caller parks
        if offered is None:  # a delete of nothing: nobody can hold a record of it
            return []
        suffix, value = offered
        keys = [delivery_key(subscription.id, change.url) for subscription in subscriptions]
        return [(event_key(key, suffix), value, self.partition(key)) for key in keys]

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._sender = Sender.from_settings(self.settings)
        self._start_workers()
        await super().start()
        self._scanner = asyncio.create_task(self._scan_forever(), name="flare-dispatcher-scan")

    async def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scanner
        for task in self._workers:
            task.cancel()
        await super().stop()
        if self._sender is not None:
            await self._sender.close()

    def _start_workers(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"flare-sender-{n}")
                         for n in range(self.settings.delivery_concurrency)]

    # -- events ------------------------------------------------------------------------
    async def process(self, message: Any, table: Table) -> None:
        key, partition = message.key, message.partition
        try:
            if message.value is None:  # a tombstone (a deleted subscription's keys)
                return
            mark = header(message, REGISTRY_HEADER)
            if mark is not None and not self.view.reached(mark):
                # The offer was made against a registry this view has not read yet: an
                # unknown subscription here would be one created just now, not a deleted one.
                try:
                    await self.view.reach(mark)
                except RegistryUnavailable as exc:
                    raise StageBroken(f"the registry view did not reach {mark!r}") from exc
            try:
                event = orjson.loads(message.value)
                if key is None or not isinstance(event, dict):
                    raise ValueError("expected a keyed JSON object")
            except ValueError as exc:
                raise Parked(f"not a delivery event: {exc}") from None
            await self._apply(partition, table, key, base_key(key), event)
        finally:
            end = self._catching_up.get(partition)
            if end is not None and message.offset + 1 >= end:
                del self._catching_up[partition]

    async def park(self, message: Any, reason: str) -> None:
        self.log.warning("parked delivery event %s[%s]@%s: %s", message.topic,
                         message.partition, message.offset, reason)
        await self.produce(self.rejected_topic, message.value or b"", key=message.key,
                           headers=[("flare-reason", reason.encode())])

    async def _apply(self, partition: int, table: Table, event_key_: bytes, key: bytes,
                     event: dict[str, Any]) -> None:
        subscription_id, url = split_key(key)
        if subscription_id not in self.view.subscriptions:
            if key not in table:  # a straggler (an offer racing the delete): its tombstone
                await self.produce(self.source, None, key=event_key_, partition=partition)
            await self._forget(partition, table, key)
            return
        now = time.time()
        retry = self.view.subscriptions[subscription_id].delivery.retry
        try:
            state = apply_event(decode(table.get(key)), event, now, retry, random.random())
        except UnknownEvent as exc:
            self.log.warning("%s for %r", exc, key)
            return
        if state is not None:  # None: e.g. an outcome the owner recorded already
            await self._settle(partition, table, key, state, now)

    async def before_batch(self) -> None:
        """SPEC §7: a deleted subscription's records are dropped (not only when their next
        event comes, which for a dead delivery is never)."""
        deleted = self.view.deleted_subscriptions
        if self._deleted_seen >= len(deleted):
            return
        gone = [f"{sid}|".encode() for sid in deleted[self._deleted_seen:]]
        self._deleted_seen = len(deleted)
        for partition, table in list(self.tables.items()):
            for prefix in gone:
                for key, _ in table.with_prefix(prefix):
                    await self._forget(partition, table, key)

    async def _forget(self, partition: int, table: Table, key: bytes) -> None:
        """The subscription is gone: its deliveries stop, and its records go, from the
        table and (tombstones) from the compacted deliveries topic."""
        if table.get(key) is not None:
            await self.write(partition, key, None)
            for suffix in (b"", *SUFFIXES):
                await self.produce(self.source, None, key=event_key(key, suffix),
                                   partition=partition)
        self.waiting.discard(key)

    async def _settle(self, partition: int, table: Table, key: bytes, state: DeliveryState,
                      now: float) -> None:
        """Store the state; send what is due unless a request of this key is in flight."""
        action = None
        if key not in self.inflight and self._sendable(partition):
            state, action = next_action(state, now)
            if action is not None:
                self.inflight.add(key)  # now, before any await: one request per key
        value = orjson.dumps(state.to_record())
        # Replayed events mostly change nothing: writing the same record again would only
        # add changelog traffic.
        if table.get(key) != value:
            await self.write(partition, key, value)
        if action is not None and state.pending is not None:
            self.waiting.discard(key)
            self._start(partition, table, key, state.pending, action)
        elif state.pending is not None and not state.dead:
            self.waiting.set(key, state.next_attempt_at)
        else:
            self.waiting.discard(key)

    # -- sending -----------------------------------------------------------------------
    def _sendable(self, partition: int) -> bool:
        """Whether requests of this partition may start now."""
        return not self._frozen and partition not in self._catching_up

    def _start(self, partition: int, table: Table, key: bytes, change: PendingChange,
               action: str) -> None:
        self._queue.put_nowait((self._epoch, partition, table, key, change, action))

    async def _work(self) -> None:
        """One of the senders: a fixed pool bounds the requests in flight, and a burst
        (one change to 10,000 subscribers) queues jobs instead of starting 10,000 tasks."""
        while True:
            epoch, *job = await self._queue.get()
            if epoch != self._epoch:  # queued before a revoke: the new owner sends it
                self.inflight.discard(job[2])
                continue
            self._sending += 1
            self._idle.clear()
            try:
                await self._deliver(epoch, *job)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("delivery of %r failed", job[2])
            finally:
                self._sending -= 1
                if self._sending == 0:
                    self._idle.set()

    async def _deliver(self, epoch: int, partition: int, table: Table, key: bytes,
                       change: PendingChange, action: str) -> None:
        """Prepare, send, and record the outcome in the table."""
        released = False
        try:
            outcome, status = await self._send(key, change, action)
            metrics.delivery_attempted(outcome.value, change.updated_at)
            # Recorded only in the table the request was sent from, before the partitions
            # it belongs to are given up (on_revoke waits for this).
            if epoch != self._epoch or self.tables.get(partition) is not table:
                return  # the partition moved or was rebuilt: its owner sends again
            subscription = self.view.subscriptions.get(split_key(key)[0])
            if subscription is None:
                await self._forget(partition, table, key)
                return
            now = time.time()
            state = on_outcome(state_of(table.get(key)), outcome, now,
                               subscription.delivery.retry, random.random(), sent=change,
                               status=status)
            if state.dead:  # §9.6: one line when a delivery gives up (not per attempt)
                self.log.info("delivery %s parked as dead after %d attempts (last status %s)",
                              key.decode(errors="replace"), state.attempt, status)
            self.inflight.discard(key)  # before settling: it may send the next change
            released = True
            await self._settle(partition, table, key, state, now)
            if outcome is not Outcome.RETRY:  # for a replay: see the module docstring
                await self.produce(self.source, outcome_value(outcome, status, change),
                                   key=event_key(key, OUTCOME), partition=partition)
        finally:
            if not released:
                self.inflight.discard(key)

    async def _send(self, key: bytes, change: PendingChange,
                    action: str) -> tuple[Outcome, int | None]:
        subscription_id, url = split_key(key)
        try:
            subscription = self.view.subscriptions.get(subscription_id)
            resource = subscription and self.view.resources.get(subscription.resource_id)
            if subscription is None or resource is None:
                return Outcome.RETRY, None  # deleted meanwhile: the outcome forgets the key
            request = build_request(subscription, resource, url, action, change.revision,
                                    change.document, change.updated_at)
            headers = signed_headers(request,
                                     webhook_id(subscription_id, url, change.revision, action),
                                     int(time.time()), subscription.secret)
            assert self._sender is not None
            sent = await self._sender.send(request, headers)
            return (classify(sent.status, subscription.delivery.success,
                             subscription.delivery.discard), sent.status)
        except UnsafeFill as exc:  # can never be sent safely: given up (SPEC §11a, README)
            self.log.warning("delivery of %r discarded: %s", key, exc)
            return Outcome.DISCARDED, None
        except Exception:
            self.log.exception("delivery of %r failed before sending", key)
            return Outcome.RETRY, None

    # -- the scan: retries and what waited across a restart ----------------------------
    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(SCAN_INTERVAL)
            try:
                await self._scan()
            except Exception:
                self.log.exception("delivery scan failed")

    async def _scan(self) -> None:
        if not self.ready.is_set() or self._frozen:
            return
        now = time.time()
        held = []
        for key in self.waiting.pop_due(now):
            if key in self.inflight:
                continue  # its outcome indexes it again
            partition = self.partition(key)
            table = self.tables.get(partition)
            if table is None:
                continue
            if partition in self._catching_up:
                held.append(key)
                continue
            state = state_of(table.get(key))
            if not due(state, now):
                if state.pending is not None and not state.dead:
                    self.waiting.set(key, state.next_attempt_at)
                continue
            await self._settle(partition, table, key, state, now)
        for key in held:  # looked at again on the next scan
            self.waiting.set(key, now)

    async def on_revoke(self) -> None:
        """Every partition is about to go: send nothing new, drop what is queued, and let
        the requests in flight record their outcomes (module docstring, Rebalances)."""
        self._frozen = True
        self._drop_queued()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(),
                                   self.settings.delivery_timeout + REVOKE_GRACE)
        if not self._idle.is_set():
            self.log.warning("%d requests still in flight at a rebalance: cancelled, the "
                             "next owner sends them again", self._sending)
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._sending = 0
            self._idle.set()
            self._start_workers()
        self._epoch += 1  # nothing of the old assignment records from now on
        self.inflight.clear()
        self.waiting = DueIndex()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            _, _, _, key, *_ = self._queue.get_nowait()
            self.inflight.discard(key)

    async def _close(self) -> None:
        """A restart: nothing of the old clients' assignment is sent or recorded."""
        self._frozen = True
        self._drop_queued()
        self._epoch += 1
        self.inflight.clear()
        self.waiting = DueIndex()
        self._kinds = [0, 0, 0]
        await super()._close()

    async def on_tables(self, assigned: list[TopicPartition]) -> None:
        """A new assignment: index the waiting keys, and hold each partition's sends until
        its replay reaches the end it has now."""
        # Classified on the stored JSON (record_kind): most records wait for nothing, and
        # decoding a million of them would take seconds.
        kinds, waiting = [0, 0, 0], []
        for table in self.tables.values():
            for key, value in table.items():
                kind = record_kind(value)
                kinds[kind] += 1
                if kind == PENDING:
                    waiting.append((key, orjson.loads(value)["next_attempt_at"]))
        self.waiting = DueIndex(waiting)
        self._kinds = kinds
        self._catching_up = {}
        if assigned and self._consumer is not None:
            # Where the replay starts: the next unprocessed offset (a kept partition), else
            # the committed one, else the log's start. Not the consumer's position, which
            # moves when a batch is fetched, before it is processed.
            ends = await self._consumer.end_offsets(assigned)
            starts = await self._consumer.beginning_offsets(assigned)
            for tp in assigned:
                start = self.next_offset.get(tp.partition)
                if start is None:
                    committed = await self._consumer.committed(tp)
                    start = max(committed or 0, starts[tp])
                if start < ends[tp]:
                    self._catching_up[tp.partition] = ends[tp]
        self._frozen = False

    # -- reads and commands for the API ---------------------------------------------------
    def local_deliveries(self, subscription_id: str, state: str | None) -> list[dict[str, Any]]:
        prefix = f"{subscription_id}|".encode()
        found = []
        for table in list(self.tables.values()):
            for key, value in table.with_prefix(prefix):
                current = state_of(value)
                if current.pending is None:
                    continue
                kind = "dead" if current.dead else "pending"
                if state is not None and state != kind:
                    continue
                found.append({"document": split_key(key)[1], "state": kind,
                              "action": current.pending.action_kind,
                              "revision": current.pending.revision, "attempt": current.attempt,
                              "lastStatus": current.last_status,
                              "nextAttemptAt": current.next_attempt_at})
        return found

    async def redrive_local(self, subscription_id: str) -> int:
        dead = self.local_deliveries(subscription_id, "dead")
        for delivery in dead:
            key = delivery_key(subscription_id, delivery["document"])
            await self.produce(self.source, REDRIVE, key=event_key(key, REDRIVE_KEY),
                               partition=self.partition(key))
        return len(dead)
