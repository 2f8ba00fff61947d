"""`flare replay` after Kafka compacted the topics (issue 12, DESIGN.md invariant 5).

The topics of a fresh prefix are made with tiny segments, so the broker's cleaner really
runs: older revisions put after newer ones, a delete followed by a put, several revisions
delivered to a receiver on 127.0.0.1; then the cleaner removes the older records, and a
replay into a new app id must rebuild the live app's tables and offer nothing."""

from __future__ import annotations

import asyncio
import subprocess

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic

from tests.flare_process import FLARE, poll, unique_name
from tests.integration.delivery_support import delete, deliveries, new_resource, put, subscribe
from tests.kafka_offsets import admin_client
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: Segments that roll after 200 ms (at the next record) and are cleaned as soon as the
#: broker's cleaner looks (log.cleaner.backoff.ms=1000 on the local broker).
SMALL_SEGMENTS = {"cleanup.policy": "compact", "segment.ms": "200",
                  "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"}


async def _records(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` as it is now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()


async def _partitions(consumer, topic) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]


def records(bootstrap: str, topic: str) -> list:
    return asyncio.run(_records(bootstrap, topic))


def table(bootstrap: str, changelog: str) -> dict[bytes, dict]:
    """A changelog read to its end: key → its last record (tombstones drop it)."""
    state: dict[bytes, dict] = {}
    for record in records(bootstrap, changelog):
        if record.value is None:
            state.pop(record.key, None)
        else:
            state[record.key] = orjson.loads(record.value)
    return state


def documents_of(state: dict[bytes, dict]) -> dict[bytes, tuple]:
    """The live documents (a delete's mark is bookkeeping of the app that read the delete)."""
    return {key: (r["revision"], r["content"], r["resource"], r["updatedAt"])
            for key, r in state.items() if not r.get("deleted")}


def deliveries_of(state: dict[bytes, dict]) -> dict[bytes, tuple]:
    """What each subscriber has (revision, life) and what waits for it."""
    return {key: (r["received"], r["received_generation"], r["pending"])
            for key, r in state.items()}


def test_replay_after_compaction_rebuilds_the_live_tables(flare_factory, kafka_bootstrap):
    prefix = unique_name("compact")

    async def create() -> None:
        async with admin_client(kafka_bootstrap) as admin:
            await admin.create_topics([NewTopic(f"{prefix}.{name}", PARTITIONS, 1,
                                                topic_configs=SMALL_SEGMENTS)
                                       for name in ("documents", "deliveries")])
    asyncio.run(create())
    receiver = Receiver().up()
    live = flare_factory(app_id=f"{prefix}-live", prefix=prefix,
                         env={"FLARE_PARTITIONS": str(PARTITIONS)}).start()
    try:
        rid, base = new_resource(live)
        sid = subscribe(live, rid, receiver.url + "/hook/{id}")["id"]
        stale, reborn, several, equal = (f"{base}/{n}" for n in range(1, 5))
        #: documents whose puts roll the segments: a partition's segment rolls only when a
        #: record is appended to it, so enough of them to reach every partition
        fillers = [f"{base}/filler{n}" for n in range(16)]

        def settled(url: str, version: int | None) -> None:
            """Wait until the receiver's last message about ``url`` is ``version``'s (None:
            the delete) and nothing waits for the subscriber."""
            path = "/hook/" + url.rsplit("/", 1)[1]

            def done() -> bool:
                got = [r.json() for r in receiver.received() if r.path == path]
                if not got:
                    return False
                action, document = got[-1]["action"], got[-1]["document"]
                reached = (action == "delete" if version is None
                           else action != "delete" and document["version"] == version)
                return reached and deliveries(live, rid, sid) == []
            poll(done, timeout=30, message=f"{url} settled at {version}")

        put(live, stale, 3)
        settled(stale, 3)
        put(live, stale, 1)  # older: loses, and the changes stage repairs the topic
        put(live, reborn, 2)
        settled(reborn, 2)
        delete(live, reborn)
        settled(reborn, None)
        put(live, reborn, 1)  # a put after a delete creates the document again (SPEC §8)
        settled(reborn, 1)
        for version in (1, 2, 3):
            put(live, several, version)
            settled(several, version)
        delete(live, several)
        settled(several, None)
        put(live, equal, 2, colour="red")
        settled(equal, 2)
        put(live, equal, 2, colour="blue")  # same revision, other content: loses
        poll(lambda: live.get(f"/documents/{stale}").json()["revision"] == 3, timeout=10)

        # Roll the segments (a record after segment.ms) until the cleaner has removed the
        # older records of these keys from both topics.
        rounds = [0]
        seen: dict[str, int] = {}

        def compacted() -> bool:
            rounds[0] += 1
            for url in fillers:
                put(live, url, rounds[0])
            docs = records(kafka_bootstrap, f"{prefix}.documents")
            events = records(kafka_bootstrap, f"{prefix}.deliveries")
            seen["stale"] = len([r for r in docs if r.key == stale.encode()])
            seen["offers"] = len([r for r in events if r.key == f"{sid}|{several}".encode()])
            return seen == {"stale": 1, "offers": 1}
        try:
            poll(compacted, timeout=45, interval=0.5, message="the cleaner compacted both topics")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: records left {seen}") from None
        last = [r for r in records(kafka_bootstrap, f"{prefix}.documents")
                if r.key == stale.encode()][-1]
        assert orjson.loads(last.value)["document"]["version"] == 3  # the repair is what is left
        assert dict(last.headers)["flare-repair"]

        for url in fillers:
            settled(url, rounds[0])
        live.stop()  # SIGTERM: it commits and writes its changelogs
        had = len(receiver.received())

        done = subprocess.run([FLARE, "replay", "--app-id", f"{prefix}-new", "--json"],
                              env=live.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        summary = orjson.loads(done.stdout)
        assert summary["missing"] == 0 and summary["offers"] == 0, summary

        old_docs = table(kafka_bootstrap, f"{prefix}-live-documents-changelog")
        new_docs = table(kafka_bootstrap, f"{prefix}-new-documents-changelog")
        assert documents_of(new_docs) == documents_of(old_docs)
        assert {k for k in documents_of(old_docs)} == {u.encode() for u in
                                                        (stale, reborn, equal, *fillers)}
        old_deliveries = table(kafka_bootstrap, f"{prefix}-live-deliveries-changelog")
        new_deliveries = table(kafka_bootstrap, f"{prefix}-new-deliveries-changelog")
        assert deliveries_of(new_deliveries) == deliveries_of(old_deliveries)
        assert len(receiver.received()) == had
    finally:
        live.stop()
        receiver.down()
