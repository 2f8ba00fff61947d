"""streams/stage.py under injected faults, with in-memory Kafka clients (tests/stage_fakes.py).

Issue 9 (e): a producer acknowledging partitions out of order, a commit failing during a
revoke, a rebalance callback raising. In each, the table, its changelog and what
subscribers are offered stay consistent: the changelog (what a restart rebuilds the table
from) is never ahead of the offers, no table is kept that its changelog does not hold, and
a stage that cannot go on restarts itself instead of stopping for good.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError

import streams.stage
from app.config import Settings
from streams.changes import Changes
from streams.dispatcher import Dispatcher
from streams.stage import partition_of
from tables.documents import ResourceIndex, change_value
from tables.resources import Resource
from tests.flare_process import poll_async
from tests.stage_fakes import FakeBroker, FakeConsumer, FakeProducer, FakeReader

SETTINGS = Settings(partitions=2, topic_prefix="f", app_id="f")
RESOURCE = Resource("r1", "http://api.test/users/{id}", "version", "", 1)
DOC = "http://api.test/users/1"
SOURCE, CHANGELOG, DELIVERIES = "f.documents", "f-documents-changelog", "f.deliveries"
#: the partition of DOC's messages and records
PARTITION = partition_of(DOC.encode(), SETTINGS.partitions)


class FakeView:
    """The registry as the changes stage reads it: one resource with one subscription."""

    def __init__(self) -> None:
        self.resources = {RESOURCE.id: RESOURCE}
        self.subscriptions = {"s1": SimpleNamespace(id="s1", resource_id=RESOURCE.id)}
        self._index = ResourceIndex([RESOURCE])

    def resource_index(self) -> ResourceIndex:
        return self._index

    def subscriptions_of(self, resource_id: str):
        return [s for s in self.subscriptions.values() if s.resource_id == resource_id]

    def mark(self) -> bytes:
        return b"0,0"

    def reached(self, mark: bytes) -> bool:
        return True

    async def reach(self, mark: bytes, timeout: float = 30.0) -> None:
        pass

    async def catch_up(self) -> None:
        pass


def make_stage(broker: FakeBroker, producer: FakeProducer, reader=None,
               settings: Settings = SETTINGS) -> tuple[Changes, FakeConsumer]:
    view = FakeView()
    stage = Changes(settings, view)
    stage.offers = Dispatcher(settings, view).offers
    consumer = FakeConsumer(broker, stage.group, stage.source, [0, 1])
    stage.new_producer = lambda: producer
    stage.new_consumer = lambda: consumer
    stage.new_reader = reader or (lambda: FakeReader(broker))
    return stage, consumer


def put(broker: FakeBroker, version: int) -> None:
    broker.append(SOURCE, None, DOC.encode(),
                  change_value("put", DOC, {"version": version}))


def delete(broker: FakeBroker) -> None:
    broker.append(SOURCE, None, DOC.encode(), change_value("delete", DOC))


async def until(condition, timeout: float = 10.0, message: str = "condition"):
    return await poll_async(condition, timeout=timeout, interval=0.01, message=message)


def offered(broker: FakeBroker) -> list[tuple[str, int]]:
    return [(event["kind"], event["revision"])
            for event in (orjson.loads(r.value) for r in broker.records(DELIVERIES))]


def table_matches_changelog(stage: Changes, broker: FakeBroker) -> bool:
    """The stage's tables, or after it stopped its stores on disk, hold the changelog."""
    opened = {p: stage.stores.open(p) for p, t in stage.tables.items()
              if getattr(t, "_db", True) is None}  # a store closed at stop: read it again
    try:
        held = {key: value for p, table in stage.tables.items()
                for key, value in opened.get(p, table).items()}
    finally:
        for table in opened.values():
            table.close()
    return held == broker.table(CHANGELOG)


async def kill(stage: Changes, producer: FakeProducer) -> None:
    """A SIGKILL: the loop ends where it is, unacknowledged records are gone, no commit;
    the stores keep what their last flush wrote (the OS releases their locks)."""
    producer.crash()
    for task in (stage._committing, stage._task):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for table in stage.tables.values():
        table.close()


@pytest.fixture(autouse=True)
def fast(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # each test's stores (Settings.data_dir is relative)
    monkeypatch.setattr(streams.stage, "COMMIT_INTERVAL", 3600.0)  # tests commit explicitly
    monkeypatch.setattr(streams.stage, "RESTART_INITIAL", 0.01)
    monkeypatch.setattr(streams.stage, "RECOVER_BACKOFF", 0.01)


async def test_changelog_is_never_ahead_of_the_offers_whatever_order_acks_come_in():
    """put 5 @0, delete @1, put 2 @2 in one commit; the broker acknowledges the changelog
    partition at once and the deliveries partitions not at all, then the process dies.
    Had the changelog record (put 2 @2) reached Kafka before the offers, the restarted
    stage would take @0 and @1 as handled and nobody would hear of the delete."""
    broker = FakeBroker()
    producer = FakeProducer(broker, auto=lambda topic: topic != DELIVERIES)
    stage, _ = make_stage(broker, producer)
    put(broker, 5), delete(broker), put(broker, 2)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 3, message="three changes processed")
    committing = asyncio.create_task(stage.commit())
    offers = [h for h in producer.held if h.topic == DELIVERIES]
    assert len(offers) == 3
    # The commit is now blocked on the offers' acks; whatever it sent before (the old
    # order: the changelog first, acknowledged at once) would be in the broker already.
    await until(lambda: all(h.future.waited for h in offers), message="commit waits for offers")
    assert broker.records(CHANGELOG) == []
    await kill(stage, producer)
    committing.cancel()
    await asyncio.gather(committing, return_exceptions=True)

    producer = FakeProducer(broker)  # a new process; this broker acknowledges everything
    stage, _ = make_stage(broker, producer)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 3, message="replayed")
    await stage.stop()
    assert offered(broker) == [("put", 5), ("delete", 5), ("put", 2)]
    assert table_matches_changelog(stage, broker)
    assert orjson.loads(broker.table(CHANGELOG)[DOC.encode()])["revision"] == 2


async def test_a_commit_failing_during_a_revoke_keeps_no_table_and_restarts():
    """The changelog record of a change fails while partitions are revoked. The table that
    holds the change must not be kept (its changelog lacks it): the stage restarts, reads
    again from the last commit, and the changelog ends up holding what the table holds."""
    broker = FakeBroker()
    producer = FakeProducer(broker, auto=lambda topic: topic != CHANGELOG)
    stage, consumer = make_stage(broker, producer)
    put(broker, 1)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 1, message="processed")
    rebalance = asyncio.create_task(consumer.rebalance())
    await until(lambda: any(h.topic == CHANGELOG for h in producer.held), message="changelog sent")
    producer.fail(lambda h: h.topic == CHANGELOG, KafkaTimeoutError("broker gone"))
    producer.auto = lambda topic: True  # the broker is back
    await rebalance
    await until(lambda: stage.restarts == 1, message="a restart")
    await until(lambda: stage.readiness() is None, message="ready again")
    await until(lambda: stage.next_offset.get(PARTITION) == 1, message="read again")
    await stage.commit()
    assert table_matches_changelog(stage, broker)
    assert orjson.loads(broker.table(CHANGELOG)[DOC.encode()])["revision"] == 1
    put(broker, 2)
    await until(lambda: stage.next_offset.get(PARTITION) == 2, message="goes on")
    await stage.stop()
    assert table_matches_changelog(stage, broker)
    assert orjson.loads(broker.table(CHANGELOG)[DOC.encode()])["revision"] == 2
    assert offered(broker)[-1] == ("put", 2)


async def test_an_offset_commit_failing_during_a_revoke_keeps_the_table_and_reads_nothing_twice():
    """Only the offsets' commit fails (the group moved on): everything the table holds is in
    the changelog, so the table is kept, and the messages fetched again change nothing."""
    broker = FakeBroker()
    producer = FakeProducer(broker)
    stage, consumer = make_stage(broker, producer)
    put(broker, 1)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 1, message="processed")
    consumer.fail_commit = KafkaTimeoutError("rebalance in progress")
    await consumer.rebalance()
    consumer.fail_commit = None
    assert stage.readiness() is None and stage.restarts == 0
    assert table_matches_changelog(stage, broker)
    put(broker, 2)
    await until(lambda: stage.next_offset.get(PARTITION) == 2, message="goes on")
    await stage.stop()
    assert offered(broker) == [("put", 1), ("put", 2)]
    assert table_matches_changelog(stage, broker)


async def test_a_rebalance_callback_that_raises_restarts_the_stage():
    """Reading the changelog fails while the broker restarts: the callback retries, then
    the stage restarts with backoff (/readyz says why meanwhile) and takes its partitions."""
    broker = FakeBroker()
    producer = FakeProducer(broker)
    failures = [KafkaTimeoutError("broker restarting")] * (streams.stage.RECOVER_TRIES + 1)
    stage, consumer = make_stage(broker, producer, reader=lambda: FakeReader(
        broker, fail=lambda: failures.pop() if failures else None))
    put(broker, 1)
    await stage.start()
    await until(lambda: stage.restarts >= 1, message="a restart")
    await until(lambda: stage.readiness() is None, message="ready again")
    await until(lambda: stage.next_offset.get(PARTITION) == 1, message="processed")
    assert failures == []
    await stage.stop()
    assert table_matches_changelog(stage, broker)
    assert offered(broker) == [("put", 1)]


async def test_a_batch_fetched_across_a_rebalance_is_processed_once():
    """Issue 9 (3): records handed out after a rebalance that started while the loop was
    waiting for them must be processed, and once (the consumer's position moved past them)."""
    broker = FakeBroker()
    producer = FakeProducer(broker)
    stage, consumer = make_stage(broker, producer)
    await stage.start()
    original = consumer.getmany

    async def rebalancing_getmany(*args, **kwargs):
        consumer.getmany = original
        await consumer.rebalance()  # while this fetch waits, as aiokafka's coordinator may
        return await original(*args, **kwargs)

    consumer.getmany = rebalancing_getmany
    put(broker, 1)
    put(broker, 2)
    await until(lambda: stage.next_offset.get(PARTITION) == 2, message="both processed")
    await stage.stop()
    assert offered(broker) == [("put", 1), ("put", 2)]


async def parked_after_a_restart(stage: Changes, broker: FakeBroker) -> None:
    """The stage restarts, parks DOC's first message (a record of it the broker refused)
    when it reads it again, takes the next one and stops."""
    await until(lambda: stage.restarts == 1, message="a restart")
    await until(lambda: stage.parked == 1, message="parked when read again")
    put(broker, 2)
    await until(lambda: stage.next_offset.get(PARTITION) == 2, message="goes on")
    await stage.stop()
    parked = broker.records("f.documents.rejected")
    assert [r.key for r in parked] == [DOC.encode()]
    assert "Kafka refused a record" in dict(parked[0].headers)["flare-reason"].decode()


async def test_a_record_the_broker_refuses_parks_its_message_after_a_restart(monkeypatch):
    """The broker refuses one offer as too large (a topic created with a smaller
    max.message.bytes than Flare's own). The stage cannot commit past it; it restarts, and
    when it reads the message again parks it, then goes on (invariant 6: "producing")."""
    broker = FakeBroker()
    producer = FakeProducer(broker, auto=lambda topic: topic != DELIVERIES)
    stage, _ = make_stage(broker, producer)
    put(broker, 1)
    await stage.start()
    await until(lambda: any(h.topic == DELIVERIES for h in producer.held), message="offered")
    producer.fail(lambda h: h.topic == DELIVERIES, MessageSizeTooLargeError("too large"))
    producer.auto = lambda topic: True
    monkeypatch.setattr(streams.stage, "COMMIT_INTERVAL", 0.05)  # the loop commits, and fails
    await parked_after_a_restart(stage, broker)
    assert offered(broker) == [("put", 2)]
    assert table_matches_changelog(stage, broker)


async def test_a_changelog_batch_the_broker_refuses_is_written_a_record_at_a_time():
    """The changelog goes out in batches (one per partition and ``max_batch_size``). A
    batch the broker refuses as such, each of its records fitting alone, is sent again a
    record at a time: the commit succeeds, nothing is parked, nothing restarts."""
    broker = FakeBroker()
    producer = FakeProducer(broker, auto=lambda topic: topic != CHANGELOG)
    stage, _ = make_stage(broker, producer)
    put(broker, 1)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 1, message="processed")
    committing = asyncio.create_task(stage.commit())
    await until(lambda: any(h.batch for h in producer.held), message="the changelog batch")
    producer.auto = lambda topic: True
    assert producer.fail(lambda h: h.batch is not None, RecordListTooLargeError("batch")) == 1
    await asyncio.wait_for(committing, 10)
    assert (stage.restarts, stage.parked) == (0, 0)
    assert DOC.encode() in broker.table(CHANGELOG)
    assert stage._changelog_next[PARTITION] == len(broker.logs[(CHANGELOG, PARTITION)])
    await stage.stop()
    assert table_matches_changelog(stage, broker)


async def test_a_changelog_record_refused_alone_parks_its_message_after_a_restart(monkeypatch):
    """The batch refused, then its record alone too: the message that wrote it is parked
    when the restarted stage reads it again, and the stage goes on."""
    broker = FakeBroker()
    producer = FakeProducer(broker, auto=lambda topic: topic != CHANGELOG)
    stage, _ = make_stage(broker, producer)
    put(broker, 1)
    await stage.start()
    monkeypatch.setattr(streams.stage, "COMMIT_INTERVAL", 0.05)  # the loop commits
    await until(lambda: any(h.batch for h in producer.held), message="the changelog batch")
    producer.fail(lambda h: h.batch is not None, RecordListTooLargeError("batch"))
    await until(lambda: any(h.topic == CHANGELOG and h.batch is None for h in producer.held),
                message="its record sent alone")
    producer.fail(lambda h: h.topic == CHANGELOG, MessageSizeTooLargeError("too large"))
    producer.auto = lambda topic: True
    await parked_after_a_restart(stage, broker)
    assert table_matches_changelog(stage, broker)


@pytest.mark.parametrize("ttl, kept", [(3600.0, True), (1e-6, False)])
async def test_delete_marks_expire_after_delete_mark_ttl(monkeypatch, ttl, kept):
    """Issue 12, bounded growth: a delete's mark stays only ``delete_mark_ttl`` (its
    changelog gets a tombstone then)."""
    import streams.changes
    monkeypatch.setattr(streams.changes, "EXPIRE_EVERY", 0.0)
    monkeypatch.setattr(streams.changes, "SCAN_PAUSE", 0.0)
    broker = FakeBroker()
    producer = FakeProducer(broker)
    stage, _ = make_stage(broker, producer, settings=Settings(
        partitions=2, topic_prefix="f", app_id="f", delete_mark_ttl=ttl))
    put(broker, 1), delete(broker)
    await stage.start()
    await until(lambda: stage.next_offset.get(PARTITION) == 2, message="processed")
    put_other = "http://api.test/users/2"  # one more batch: the expiry runs before it
    broker.append(SOURCE, None, put_other.encode(), change_value("put", put_other, {"version": 1}))
    await until(lambda: stage.accepted == 3, message="the next batch")
    # The expiry reads the table in the background (the loop goes on meanwhile).
    looked = stage._expiring
    await until(lambda: looked is not None and looked.done(), message="a look for old marks")
    await stage.stop()
    assert (DOC.encode() in broker.table(CHANGELOG)) is kept
    assert table_matches_changelog(stage, broker)
