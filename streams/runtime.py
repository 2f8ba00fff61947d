"""Start-up and shutdown of the stream side, and what /readyz reports.

Order (each step waits for the one before):
  1. reach the broker, retrying with a clear log line while it is down;
  2. create Flare's topics (streams/topics.py);
  3. start the producer, read the registry topics to their end, start the registry (its
     replies tail and its deciding group, streams/registry.py), then the two stages;
  4. ready once the registry and both stages have joined their groups and the stages have
     read their tables.
The HTTP API is served from the first moment, so /readyz can say which step is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from app.config import Settings
from streams.changes import Changes
from streams.dispatcher import Dispatcher
from streams.registry import Registry
from streams.registry_view import REGISTRY_HEADER, RegistryView
from streams.stage import partition_of
from streams.topics import ensure_topics, flare_topics, partition_counts
from tables.errors import FlareError

log = logging.getLogger("flare.runtime")


@dataclass
class Runtime:
    """Owns the stream side's life inside the API's event loop."""

    settings: Settings
    view: RegistryView
    registry: Registry
    changes: Changes
    dispatcher: Dispatcher
    producer: AIOKafkaProducer | None = None
    http: httpx.AsyncClient | None = None
    state: str = "starting"
    reason: str = "starting"
    broker_ok: bool = False
    _task: asyncio.Task | None = field(default=None, repr=False)
    _started: bool = False
    _stopping: bool = False

    # -- readiness -----------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): ready once joined, recovered and the broker answers."""
        if self.state != "running":
            return False, self.reason
        if not self.broker_ok:
            return False, f"Kafka at {self.settings.kafka_bootstrap} is unreachable"
        if not self.view.caught_up.is_set():
            return False, "reading the registry"
        why = self.registry.readiness()
        if why is not None:
            return False, why
        for stage in (self.changes, self.dispatcher):
            why = stage.readiness()
            if why is not None:
                return False, why
        return True, "ready"

    # -- writes --------------------------------------------------------------------
    async def write_change(self, url: str, value: bytes) -> None:
        """Write one change to the documents topic; return once acks=all confirmed it."""
        if self.producer is None:
            raise FlareError(503, "service unavailable", "the stream processor is still starting")
        topic, key = self.settings.topic("documents"), url.encode()
        # The partition murmur2 gives the key, as aiokafka would, from the cache.
        known = self.producer.client.cluster.partitions_for_topic(topic)
        partition = partition_of(key, len(known)) if known else None
        # The registry this change was accepted against: the owner of the partition, on
        # whatever process, decides against one at least as new (invariant 7).
        headers = [(REGISTRY_HEADER, self.view.mark())]
        try:
            await self.producer.send_and_wait(topic, value, key=key, partition=partition,
                                              headers=headers)
        except KafkaError as exc:
            raise FlareError(503, "error during document write",
                             f"Kafka did not acknowledge the change: {exc.__class__.__name__}") from None

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=10.0)
        self._task = asyncio.create_task(self._run(), name="flare-runtime")

    async def _run(self) -> None:
        try:
            await self._start_steps()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Say it once, clearly, and keep serving /readyz with the reason.
            self.state = "failed"
            self.reason = f"stream processor failed to start: {exc}"
            log.error("%s", self.reason, exc_info=log.isEnabledFor(logging.DEBUG))

    async def _start_steps(self) -> None:
        admin = await self._connect()
        try:
            # Step 2
            self.reason = "creating topics"
            created = await ensure_topics(self.settings, admin)
            if created:
                log.info("created topics: %s", ", ".join(created))
            # Offers go to the partition of their base key (tables/events.py), counted on
            # the topic as it is, before the dispatcher is given any partition.
            deliveries = self.settings.topic("deliveries")
            counts = await partition_counts(admin, [deliveries])
            self.dispatcher.partitions = counts.get(deliveries, self.dispatcher.partitions)
            await self._wait_for_leaders(admin)
            await self._wait_for_coordinator(admin)
            # Step 3: our producer (acks=all), the registry view, the registry, the stages
            self.reason = "starting the producer"
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                enable_idempotence=True, linger_ms=self.settings.api_linger_ms,
                max_request_size=self.settings.max_record_bytes,  # a body within max_body_bytes fits
            )
            await self.producer.start()
            self.registry.producer = self.producer
            self.reason = "reading the registry"
            await self.view.start()
            self.reason = "starting the registry"
            self._started = True  # stop() must stop even a half-started registry
            await self.registry.start()
            self.reason = "starting the stream processor"
            await self.changes.start()
            await self.dispatcher.start()
            self.state = "running"
            self.reason = "joining the consumer group"
            # Step 4 is observed by readiness(); keep watching the broker meanwhile.
            await self._watch_broker(admin)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _connect(self) -> AIOKafkaAdminClient:
        """Step 1: retry until the broker answers; say so once per attempt, no traceback."""
        delay = 1.0
        while True:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=5000
            )
            try:
                await admin.start()
                await admin.describe_cluster()
                self.broker_ok = True
                return admin
            except Exception as exc:  # aiokafka raises several unrelated types here
                with contextlib.suppress(Exception):
                    await admin.close()
                self.broker_ok = False
                self.reason = f"Kafka at {self.settings.kafka_bootstrap} is unreachable: {exc.__class__.__name__}"
                log.warning("%s; retrying in %.0fs", self.reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _wait_for_leaders(self, admin: AIOKafkaAdminClient) -> None:
        """Wait until every partition of Flare's topics answers offset requests. Right after
        a topic is created its leader may not be known yet: aiokafka retries, but logs
        each failed try of a consumer's first position as an ERROR. ``end_offsets`` retries
        quietly (bounded by its request timeout)."""
        self.reason = "waiting for the topics' leaders"
        probe = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                 enable_auto_commit=False, request_timeout_ms=60_000)
        await probe.start()
        try:
            names = [spec.name for spec in flare_topics(self.settings)]
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                # The partitions each topic really has, once each has a leader (a topic
                # just created may not have one yet).
                described = await admin.describe_topics(names)
                tps = [TopicPartition(t["topic"], p["partition"]) for t in described
                       for p in t["partitions"]]
                led = all(not t["error_code"] and t["partitions"]
                          and all(p["leader"] >= 0 for p in t["partitions"]) for t in described)
                if led or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            await probe.end_offsets(tps)
        finally:
            await probe.stop()

    async def _wait_for_coordinator(self, admin: AIOKafkaAdminClient) -> None:
        """Wait until the broker can coordinate our groups. On a fresh cluster the first
        group creates ``__consumer_offsets``; a consumer joining meanwhile makes aiokafka
        log an ERROR and a WARNING for what is only a wait."""
        self.reason = "waiting for the group coordinator"
        deadline = asyncio.get_running_loop().time() + 60
        said = False
        while True:
            try:
                await admin.find_coordinator(f"{self.settings.app_id}.registry")
                return
            except KafkaError as exc:
                if not exc.retriable or asyncio.get_running_loop().time() > deadline:
                    raise
                if not said:
                    log.info("waiting for the group coordinator (%s)", exc.__class__.__name__)
                    said = True
                await asyncio.sleep(0.2)

    async def _watch_broker(self, admin: AIOKafkaAdminClient) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await asyncio.wait_for(admin.describe_cluster(), timeout=5)
                if not self.broker_ok:
                    log.warning("Kafka at %s is reachable again", self.settings.kafka_bootstrap)
                self.broker_ok = True
            except Exception as exc:
                if self.broker_ok:
                    log.warning("Kafka at %s is unreachable: %s", self.settings.kafka_bootstrap,
                                exc.__class__.__name__)
                self.broker_ok = False

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for stage in (self.changes, self.dispatcher):
            with contextlib.suppress(Exception):
                await stage.stop()
        if self._started:
            try:
                await self.registry.stop()
            except Exception:
                log.exception("stopping the registry failed")
        with contextlib.suppress(Exception):
            await self.view.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.http is not None:
            await self.http.aclose()
