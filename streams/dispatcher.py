"""Fan-out and the dispatcher: ``<prefix>.deliveries`` → deliveries table → HTTP (SPEC §9).

Every event on the deliveries topic is keyed ``<subscription id>|<document URL>``, so one
key's events stay in one partition, in order. Three kinds of events:

- ``offer``: a change of the document for this subscriber (from the fan-out);
- ``outcome``: what a delivery attempt gave (written by the sending task);
- ``redrive``: send a dead delivery again (from the API);
- ``forget``: the subscription is gone, drop the key's record.

The agent is the only writer of the deliveries table (Faust tables can only be written
inside stream iteration), and it decides with the pure functions of tables/delivery.py.
For one key (DESIGN.md invariants 2-3):
  1. the agent applies the event to the key's state and stores it;
  2. when a change is due and no request of this key is in flight, a task sends it;
  3. the task writes the outcome back to the topic as an event, and only then
  4. the agent, applying that outcome, moves the subscriber's record (invariant 2) and
     sends what is due next (a coalesced newer revision, §9.4).
Retries and deliveries pending after a restart are found by a timer over an index of the
keys that wait (rebuilt from the table after each rebalance): pending retries are table
state, not timers in memory. Different keys never wait on each other (invariant 4); the
number of requests in flight is bounded by a semaphore.

Replays (after a crash or rebalance the consumer resumes at the last commit, and the table
is often ahead of it) must change nothing: an outcome applies only when it moves the record
forward (or, for a retry, answers this process's own request, told by its ``attempt`` id),
and nothing is sent until the agent has re-read its partitions to the end, shown by a
``mark`` event it writes to each of them (keyed ``MARK_KEY``) after each rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any

import faust
import orjson

from app.config import Settings
from streams.registry_view import RegistryView
from streams.sender import Sender, signed_headers
from tables.delivery import (DeliveryState, PendingChange, due, next_action, offer, on_outcome,
                             redrive, webhook_id)
from tables.documents import Applied, Change
from tables.outcome import Outcome, classify
from tables.request import build_request

log = logging.getLogger("flare.dispatcher")

TABLE = "deliveries"
SCAN_INTERVAL = 0.25
FULL_SCAN_INTERVAL = 30.0
#: Key of the catch-up markers the dispatcher writes to its own partitions (never a
#: subscription's key: those hold a "|").
MARK_KEY = b"\x00flare.dispatcher.mark"
#: Seconds after which the markers are written again when one has not come back.
MARK_RETRY = 30.0


def delivery_key(subscription_id: str, document_url: str) -> bytes:
    return f"{subscription_id}|{document_url}".encode()


def split_key(key: bytes) -> tuple[str, str]:
    subscription_id, _, url = key.decode().partition("|")
    return subscription_id, url


class Dispatcher:
    def __init__(self, app: faust.App, settings: Settings, view: RegistryView) -> None:
        self.app = app
        self.settings = settings
        self.view = view
        self.topic = app.topic(settings.topic("deliveries"), key_type=bytes, value_type=bytes,
                               key_serializer="raw", value_serializer="raw",
                               partitions=settings.partitions)
        # key_type=bytes as well as the schema: Faust picks the changelog's key serializer
        # from key_type, and without it recovery loops on "expected a JSON value" (DESIGN.md).
        self.table = app.Table(TABLE, default=None, partitions=settings.partitions,
                               key_type=bytes,
                               schema=faust.Schema(key_type=bytes, key_serializer="raw",
                                                   value_serializer="json"))
        self.agent = app.agent(self.topic, name="flare.dispatcher")(self._process)
        app.timer(SCAN_INTERVAL, name="flare.dispatcher.scan")(self._scan)
        #: keys with a request in flight → when it started (memory only: a crash ends them)
        self.inflight: dict[bytes, float] = {}
        #: keys with a change waiting → when it is due (an index over the table)
        self.waiting: dict[bytes, float] = {}
        self._indexed_generation = -1
        self._last_full_scan = 0.0
        #: keys with a request in flight → the attempt id its outcome event carries
        self._attempts: dict[bytes, str] = {}
        self._run_id = uuid.uuid4().hex[:12]
        self._attempt_seq = 0
        #: Sends wait until the agent has re-read its partitions after each rebalance (or
        #: restart): the consumer resumes at the last commit, and the table may already hold
        #: later state, so the events replayed up to the end must all be applied before
        #: anything is sent, or a change the subscriber already has newer of could go out
        #: again (invariant 3). A marker written to each partition shows the end is reached.
        self._caught_up_generation: int | None = None
        self._mark_generation: int | None = None
        self._mark_nonce = ""
        self._marks_pending: set[int] = set()
        self._marks_sent_at = 0.0
        self._sender: Sender | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- fan-out (called by the changes agent for each accepted change) ------------------
    async def fan_out(self, change: Change, applied: Applied) -> None:
        """One offer per subscription of the document's resource (SPEC §9.1)."""
        subscriptions = self.view.subscriptions_of(change.resource_id)
        if not subscriptions:
            return
        if change.action == "delete":
            if applied.previous is None:  # nobody can hold a record of it
                return
            revision, document = applied.previous["revision"], applied.previous["content"]
        else:
            revision, document = change.revision, change.document
        value = orjson.dumps({"v": 1, "type": "offer", "kind": change.action,
                              "revision": revision, "document": document,
                              "updatedAt": change.updated_at})
        for subscription in subscriptions:
            await self.topic.send(key=delivery_key(subscription.id, change.url), value=value)

    # -- the agent ---------------------------------------------------------------------
    async def _process(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            key = event.message.key
            try:
                if key == MARK_KEY:
                    self._on_mark(event.message.partition, orjson.loads(event.message.value))
                    continue
                self._apply(key, orjson.loads(event.message.value))
            except Exception:  # one bad event must not stop the partition
                log.exception("cannot apply delivery event for %r", key)

    def _apply(self, key: bytes, message: dict[str, Any]) -> None:
        subscription_id, url = split_key(key)
        subscription = self.view.subscriptions.get(subscription_id)
        if subscription is None:  # deleted: its deliveries stop and its records go
            if self.table.get(key) is not None:
                del self.table[key]
            self.waiting.pop(key, None)
            self.inflight.pop(key, None)
            return
        now = time.time()
        state = self._state(key)
        # Step 1
        kind = message.get("type")
        if kind == "offer":
            change = PendingChange(message["kind"], message["revision"], message["document"],
                                   message["updatedAt"])
            state, _ = offer(state, change, now)
        elif kind == "outcome":
            mine = key in self._attempts and self._attempts[key] == message.get("attempt")
            if mine:
                self.inflight.pop(key, None)
                self._attempts.pop(key, None)
            if self._outcome_applies(state, message, mine):
                sent = self._sent(state, message["sent"])
                state = on_outcome(state, Outcome(message["outcome"]), now,
                                   subscription.delivery.retry, random.random(), sent=sent,
                                   status=message.get("status"))
        elif kind == "redrive":
            state = redrive(state, now)
        else:
            log.warning("unknown delivery event type %r for %r", kind, key)
            return
        # Step 2
        if key not in self.inflight and self._caught_up():
            state, action = next_action(state, now)
            self._store(key, state)
            if action is not None:
                self._start(key, subscription_id, url, state.pending, action)
        else:
            self._store(key, state)

    def _state(self, key: bytes) -> DeliveryState:
        record = self.table.get(key)
        return DeliveryState() if record is None else DeliveryState.from_record(record)

    def _store(self, key: bytes, state: DeliveryState) -> None:
        record = state.to_record()
        # Replayed events (after a restart or rebalance) mostly change nothing: writing the
        # same record again would only add changelog traffic ahead of the outcome events.
        if self.table.get(key) != record:
            self.table[key] = record
        if state.pending is not None and not state.dead:
            self.waiting[key] = state.next_attempt_at
        else:
            self.waiting.pop(key, None)

    @staticmethod
    def _sent(state: DeliveryState, sent: dict[str, Any]) -> PendingChange:
        """The change an outcome is about: the waiting one when it is the same change."""
        pending = state.pending
        if (pending is not None and pending.action_kind == sent["kind"]
                and pending.revision == sent["revision"]
                and pending.generation == sent["generation"]):
            return pending
        return PendingChange(sent["kind"], sent["revision"], None, 0, sent["generation"])

    @staticmethod
    def _outcome_applies(state: DeliveryState, message: dict[str, Any], mine: bool) -> bool:
        """Whether an outcome event moves this key's state.

        Outcomes are replayed after a crash or a rebalance (the consumer resumes at the last
        commit, the table is often ahead of it), and may come from a request of a previous
        owner. Applying one again would move the record back (``received`` = an older
        revision) and re-send what the subscriber already has. So: a delivered or discarded
        outcome applies only when it moves the record forward; a retry only when it answers
        this process's own request in flight (otherwise the change stays due and is sent).
        """
        if message.get("outcome") == Outcome.RETRY.value:
            return mine
        sent = message["sent"]
        if sent["generation"] != state.received_generation:
            return sent["generation"] > state.received_generation
        if sent["kind"] == "delete":  # a delete ends its generation: already recorded
            return False
        return state.received is None or sent["revision"] > state.received

    def _caught_up(self) -> bool:
        return self._caught_up_generation == self.app.consumer_generation_id

    def _on_mark(self, partition: int, message: dict[str, Any]) -> None:
        if (message.get("nonce") != self._mark_nonce
                or self._mark_generation != self.app.consumer_generation_id):
            return  # an old marker (replayed, or from before a rebalance)
        self._marks_pending.discard(partition)
        if not self._marks_pending:
            self._caught_up_generation = self._mark_generation

    async def _send_marks(self, generation: int) -> None:
        """Write a marker to each owned partition; caught up once the agent read them all."""
        actives = self._active_partitions()
        self._mark_generation = generation
        self._mark_nonce = uuid.uuid4().hex
        self._marks_pending = set(actives)
        self._marks_sent_at = time.monotonic()
        if not actives:
            self._caught_up_generation = generation
            return
        value = orjson.dumps({"v": 1, "type": "mark", "nonce": self._mark_nonce})
        for partition in actives:
            await self.topic.send(key=MARK_KEY, value=value, partition=partition)

    # -- sending -----------------------------------------------------------------------
    def _start(self, key: bytes, subscription_id: str, url: str, change: PendingChange,
               action: str) -> None:
        self.inflight[key] = time.monotonic()
        self._attempt_seq += 1
        attempt = self._attempts[key] = f"{self._run_id}-{self._attempt_seq}"
        task = asyncio.ensure_future(self._deliver(key, subscription_id, url, change, action,
                                                   attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, key: bytes, subscription_id: str, url: str, change: PendingChange,
                       action: str, attempt: str = "") -> None:
        """Steps 2-3: prepare, send, and write the outcome back as an event."""
        if self._sender is None:
            self._sender = Sender(self.settings.delivery_timeout, self.settings.delivery_concurrency)
            self._slots = asyncio.Semaphore(self.settings.delivery_concurrency)
        outcome, status = Outcome.RETRY, None
        try:
            subscription = self.view.subscriptions.get(subscription_id)
            resource = subscription and self.view.resources.get(subscription.resource_id)
            if subscription is None or resource is None:
                # Deleted meanwhile: forget the key; the agent drops its record (any event
                # of a deleted subscription does).
                self.inflight.pop(key, None)
                self.waiting.pop(key, None)
                await self.topic.send(key=key, value=orjson.dumps({"v": 1, "type": "forget"}))
                return
            request = build_request(subscription, resource, url, action, change.revision,
                                    change.document, change.updated_at)
            headers = signed_headers(request, webhook_id(subscription_id, url, change.revision, action),
                                     int(time.time()), subscription.secret)
            async with self._slots:
                sent = await self._sender.send(request, headers)
            status = sent.status
            outcome = classify(status, subscription.delivery.success, subscription.delivery.discard)
        except Exception:
            log.exception("delivery of %r failed before sending", key)
        await self.topic.send(key=key, value=orjson.dumps({
            "v": 1, "type": "outcome", "outcome": outcome.value, "status": status,
            "attempt": attempt, "sent": {"kind": change.action_kind, "revision": change.revision,
                     "generation": change.generation},
        }))

    # -- the timer: retries and what waited across a restart ---------------------------
    async def _scan(self) -> None:
        if self.app.rebalancing or not self.app.tables.recovery.completed.is_set():
            return
        if not self._caught_up():
            generation = self.app.consumer_generation_id
            if (self._mark_generation != generation
                    or time.monotonic() - self._marks_sent_at > MARK_RETRY):
                await self._send_marks(generation)  # again if one never came back
            return
        now = time.time()
        if (self._indexed_generation != self.app.consumer_generation_id
                or now - self._last_full_scan > FULL_SCAN_INTERVAL):
            self._rebuild_index(now)
        stale = time.monotonic() - (self.settings.delivery_timeout + 60.0)
        for key, started in list(self.inflight.items()):
            if started < stale:  # its outcome went to another owner, or was lost in a crash
                self.inflight.pop(key, None)
        for key, due_at in list(self.waiting.items()):
            if due_at > now or key in self.inflight:
                continue
            state = self._state(key)
            if not due(state, now):
                if state.pending is None or state.dead:
                    self.waiting.pop(key, None)
                continue
            _, action = next_action(state, now)
            if action is None:
                self.waiting.pop(key, None)
                continue
            subscription_id, url = split_key(key)
            self._start(key, subscription_id, url, state.pending, action)

    def _rebuild_index(self, now: float) -> None:
        """Index the waiting keys of the partitions this process owns (after a rebalance)."""
        self._indexed_generation = self.app.consumer_generation_id
        self._last_full_scan = now
        actives = self._active_partitions()
        waiting: dict[bytes, float] = {}
        for key, record in self.table.items():
            if record is None or record.get("pending") is None or record.get("dead"):
                continue
            if self._partition(key) in actives:
                waiting[key] = record["next_attempt_at"]
        self.waiting = waiting

    def _active_partitions(self) -> set[int]:
        topic = self.topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def _partition(self, key: bytes) -> int:
        return self.app.producer.key_partition(self.topic.get_topic_name(), key).partition

    # -- reads and commands for the API ---------------------------------------------------
    def local_deliveries(self, subscription_id: str, state: str | None) -> list[dict[str, Any]]:
        prefix = f"{subscription_id}|".encode()
        actives = self._active_partitions()
        found = []
        for key, record in self.table.items():
            if not key.startswith(prefix) or record is None or self._partition(key) not in actives:
                continue
            current = DeliveryState.from_record(record)
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
        dead = [d for d in self.local_deliveries(subscription_id, "dead")]
        for delivery in dead:
            await self.topic.send(key=delivery_key(subscription_id, delivery["document"]),
                                  value=orjson.dumps({"v": 1, "type": "redrive"}))
        return len(dead)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._sender is not None:
            await self._sender.close()
