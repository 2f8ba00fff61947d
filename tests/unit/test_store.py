"""Tables on disk (streams/store.py) and what a stage reads to recover them (issue 12).

The store is a RocksDB database in a temporary directory (real, not a fake); the Kafka
clients are the in-memory ones of tests/stage_fakes.py, so the tests can count exactly
which changelog records a restart reads.
"""

from __future__ import annotations

import shutil
import tracemalloc
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition

import streams.stage
from app.config import Settings
from streams.store import DiskTable, MemoryTable, StoreOptions
from tables.documents import change_value
from tests.stage_fakes import FakeBroker, FakeProducer
from tests.unit.test_stage_faults import (CHANGELOG, DELIVERIES, SOURCE, kill,
                                          make_stage, table_matches_changelog, until)

OPTIONS = StoreOptions(8 << 20, 8 << 20)
SETTINGS = Settings(partitions=2, topic_prefix="f", app_id="f", table_store="rocksdb")


@pytest.fixture(autouse=True)
def fast(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(streams.stage, "COMMIT_INTERVAL", 3600.0)  # tests commit explicitly


# -- the store itself ------------------------------------------------------------------
def test_reads_see_writes_before_and_after_they_are_flushed(tmp_path: Path):
    table = DiskTable(tmp_path / "s", OPTIONS)
    table.put(b"a", b"1")
    table.put(b"b", b"2")
    assert table.get(b"a") == b"1"
    table.take()  # a commit takes them...
    table.put(b"b", None)  # ...and the loop goes on meanwhile
    table.put(b"c", b"3")
    assert [table.get(k) for k in (b"a", b"b", b"c")] == [b"1", None, b"3"]
    assert list(table.items()) == [(b"a", b"1"), (b"c", b"3")]
    table.flush(7)
    assert table.checkpoint()[0] == 7
    assert list(table.items()) == [(b"a", b"1"), (b"c", b"3")]
    table.close()

    again = DiskTable(tmp_path / "s", OPTIONS)
    # Only what a commit flushed is on disk: b's delete and c were never flushed.
    assert list(again.items()) == [(b"a", b"1"), (b"b", b"2")]
    assert again.checkpoint()[0] == 7
    again.close()


def test_a_reopened_store_keeps_the_bloom_filter_and_reads_through_the_shared_cache(tmp_path: Path):
    """Every restart reopens the stores. rocksdict opened an existing one with its column
    family's options read back from disk, without the bloom filter and the shared block
    cache: each get then read and decompressed blocks (100–500 µs instead of 1–5 µs; the
    changes stage at 1,500,000 documents spent 78 % of its time there)."""
    options = StoreOptions(cache_bytes=8 << 20, write_buffer_bytes=4 << 20)
    table = DiskTable(tmp_path / "s", options)
    keys = [b"http://example.test/users/%d" % n for n in range(20_000)]
    for key in keys:
        table.put(key, b"x" * 200)
    table.take()
    table.flush(len(keys))
    table._db.flush()  # into an SST file, so reads of the reopened store need blocks
    table.close()

    again = DiskTable(tmp_path / "s", options)
    newest = max((tmp_path / "s").glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    assert "filter_policy=bloomfilter" in newest.read_text()
    # Index and filter blocks are held by the open files: in the cache, data blocks
    # evicted them and a get read a file's whole index again (1.4-1.8 ms).
    assert "cache_index_and_filter_blocks=false" in newest.read_text()
    before = options.cache.get_usage()
    assert all(again.get(key) == b"x" * 200 for key in keys[::100])
    assert options.cache.get_usage() > before  # the data blocks went into the shared cache
    again.close()


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
async def test_writes_waiting_in_a_table_hold_their_own_size_not_orjsons_buffer(store):
    """orjson returns its output in a buffer of at least 4 KiB (streams/store.py
    ``right_sized``): a table, or the writes waiting for a commit, holding those would
    cost ~4 KiB a record. Measured with tracemalloc, which sees the real allocations."""
    stage, _ = make_stage(FakeBroker(), FakeProducer(FakeBroker()),
                          settings=replace(SETTINGS, table_store=store))
    stage.tables = {0: stage.stores.open(0)}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2_000):  # as the stages write: orjson's output, not kept elsewhere
            value = orjson.dumps({"id": i, "name": f"user {i}", "roles": ["reader"]})
            await stage.write(0, f"http://api.test/users/{i}".encode(), value)
        del value
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        stage.tables[0].close()
    assert held < 2_000 * 1_024, f"{held / 2_000:.0f} bytes a record"


def test_a_scan_in_chunks_merges_unflushed_writes_in_key_order(tmp_path: Path):
    table = DiskTable(tmp_path / "s", OPTIONS)
    for n in range(0, 100, 2):
        table.put(b"k%03d" % n, b"even")
    table.take()
    table.flush(1)
    for n in range(1, 100, 2):
        table.put(b"k%03d" % n, b"odd")  # not flushed: between the stored keys
    table.put(b"k010", None)
    chunks = list(table.chunks(7))
    keys = [key for chunk in chunks for key, _ in chunk]
    assert keys == [b"k%03d" % n for n in range(100) if n != 10]
    assert all(len(chunk) <= 7 for chunk in chunks)
    table.close()


@pytest.mark.parametrize("chunk", [3, 10_000])
def test_records_with_a_prefix_are_read_from_where_they_start(tmp_path: Path, monkeypatch, chunk):
    monkeypatch.setattr("streams.store.SCAN_CHUNK", chunk)
    disk, memory = DiskTable(tmp_path / "s", OPTIONS), MemoryTable()
    for table in (disk, memory):
        for sid in (b"s1", b"s2", b"s3"):
            for n in range(7):
                table.put(sid + b"|http://x/%d" % n, b"v")
    disk.take()
    disk.flush(1)
    for table in (disk, memory):
        table.put(b"s2|http://x/new", b"v")  # not flushed yet
        table.put(b"s2|http://x/3", None)
    want = sorted([b"s2|http://x/%d" % n for n in range(7) if n != 3] + [b"s2|http://x/new"])
    assert [k for k, _ in disk.with_prefix(b"s2|")] == want
    assert sorted(k for k, _ in memory.with_prefix(b"s2|")) == want
    disk.close()


def test_an_unreadable_store_is_started_again(tmp_path: Path):
    path = tmp_path / "s"
    path.mkdir()
    (path / "CURRENT").write_text("garbage\n")
    table = DiskTable(path, OPTIONS)
    assert table.checkpoint() is None and list(table.items()) == []
    table.close()


def test_memory_table_has_the_same_reads():
    table = MemoryTable()
    table.put(b"a", b"1")
    table.put(b"b", b"2")
    table.put(b"a", None)
    assert list(table.items()) == [(b"b", b"2")] and table.checkpoint() is None


# -- what a restart reads --------------------------------------------------------------
def put(broker: FakeBroker, n: int, version: int = 1) -> None:
    url = f"http://api.test/users/{n}"
    broker.append(SOURCE, None, url.encode(), change_value("put", url, {"version": version}))


async def run_until_idle(broker: FakeBroker, settings: Settings, *, stop: bool = True):
    """A process: start, process everything on the source, commit, then stop (or not)."""
    producer = FakeProducer(broker)
    stage, _ = make_stage(broker, producer, settings=settings)
    await stage.start()
    await until(lambda: processed(stage, broker), message="all processed")
    await stage.commit()
    if stop:
        await stage.stop()
    return stage, producer


def processed(stage, broker: FakeBroker) -> bool:
    """Every message of the source processed, in this life or committed before it."""
    for partition in range(broker.partitions):
        done = stage.next_offset.get(partition)
        if done is None:
            done = broker.committed.get((stage.group, TopicPartition(SOURCE, partition)), 0)
        if done != len(broker.logs[(SOURCE, partition)]):
            return False
    return True


def changelog_size(broker: FakeBroker) -> int:
    return len(broker.records(CHANGELOG))


async def test_a_restart_with_its_store_kept_reads_only_the_changelog_tail():
    broker = FakeBroker()
    mine, other = SETTINGS, replace(SETTINGS, http_port=8081)  # two processes' stores
    for n in range(50):
        put(broker, n)
    first, _ = await run_until_idle(broker, mine)
    assert first.changelog_read == 0 and changelog_size(broker) == 50

    # Another process takes the partitions and writes 20 more records.
    for n in range(50, 70):
        put(broker, n)
    second, _ = await run_until_idle(broker, other)
    assert second.changelog_read == 50  # its store was new: the whole changelog

    again, _ = await run_until_idle(broker, mine)
    assert again.changelog_read == 20  # only what the other process wrote
    assert table_matches_changelog(again, broker)


async def test_a_wiped_store_is_rebuilt_equal_and_nothing_is_sent_again():
    broker = FakeBroker()
    for n in range(30):
        put(broker, n)
    put(broker, 3, version=2)
    stage, _ = await run_until_idle(broker, SETTINGS)
    offers = len(broker.records(DELIVERIES))
    assert offers == 31
    before = broker.table(CHANGELOG)

    shutil.rmtree(Path(SETTINGS.data_dir))
    again, _ = await run_until_idle(broker, SETTINGS)
    assert again.changelog_read == changelog_size(broker) == 30  # one record per key
    assert table_matches_changelog(again, broker) and broker.table(CHANGELOG) == before
    assert len(broker.records(DELIVERIES)) == offers


async def test_after_a_kill_the_store_holds_the_last_commit_and_the_rest_is_replayed():
    broker = FakeBroker()
    for n in range(40):
        put(broker, n)
    stage, producer = await run_until_idle(broker, SETTINGS, stop=False)
    for n in range(40, 60):  # processed, not committed: nothing of them in the changelog
        put(broker, n)
    await until(lambda: processed(stage, broker), message="processed")
    assert changelog_size(broker) == 40
    await kill(stage, producer)

    again, _ = await run_until_idle(broker, SETTINGS)
    assert again.changelog_read == 0  # the store held the whole changelog
    assert changelog_size(broker) == 60  # the 20 were processed again
    assert table_matches_changelog(again, broker)
    offered = {r.key.split(b"|", 1)[1] for r in broker.records(DELIVERIES)}
    assert offered == {f"http://api.test/users/{n}".encode() for n in range(60)}


async def test_a_store_ahead_of_its_changelog_or_too_old_is_rebuilt(monkeypatch):
    broker = FakeBroker()
    for n in range(10):
        put(broker, n)
    await run_until_idle(broker, SETTINGS)

    # The changelog topic was deleted and created again, shorter than the checkpoint.
    fresh = FakeBroker()
    for n in range(3):
        put(fresh, 100 + n)
    again, _ = await run_until_idle(fresh, SETTINGS)
    assert again.changelog_read == 0  # a new changelog of 0 records; the old store dropped
    assert table_matches_changelog(again, fresh)
    assert changelog_size(fresh) == 3

    old = replace(SETTINGS, store_max_age=1e-9)
    stale, _ = await run_until_idle(fresh, old)
    assert stale.changelog_read == 3  # older than store_max_age: read from the start
    assert table_matches_changelog(stale, fresh)
    assert set(fresh.table(CHANGELOG)) == {f"http://api.test/users/{100 + n}".encode()
                                           for n in range(3)}


async def test_a_table_given_up_during_a_background_scan_ends_only_its_part(monkeypatch):
    """The changes stage's background scans (expired marks, deleted resources) read a
    chunk, rest, read the next. A partition given up in between has its store closed: the
    scan must not read it again (a closed store raises), and must go on with the others."""
    import streams.store
    monkeypatch.setattr(streams.store, "SCAN_CHUNK", 10)
    stage, _ = make_stage(FakeBroker(), FakeProducer(FakeBroker()), settings=SETTINGS)
    stage.tables = {p: stage.stores.open(p) for p in (0, 1)}
    for p, table in stage.tables.items():
        for i in range(30):
            table.put(f"http://api.test/{p}/{i:02d}".encode(), b"{}")
        table.take()
        table.flush(30)
    scanned: dict[int, int] = {0: 0, 1: 0}
    given_up = None
    async for partition, chunk in stage.scan():
        scanned[partition] += len(chunk)
        if partition == 0 and given_up is None:  # a rebalance, as on_revoke does it
            given_up = stage.tables.pop(0)
            given_up.close()
    stage.tables[1].close()
    assert scanned == {0: 10, 1: 30}
