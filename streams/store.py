"""Where a stage's table lives: one store per owned partition, on disk (RocksDB through
rocksdict, the default) or in memory (``table_store = "memory"``), behind one interface.

A store on disk holds exactly the changelog up to its checkpoint, like Kafka Streams'
``.checkpoint``: the stage's writes wait in memory (``pending``) until the commit has
written them to the changelog and the broker acknowledged them; then they go into RocksDB
in one write batch together with the changelog offset they reach (:meth:`DiskTable.flush`).
So whatever kills the process, the store is a prefix of the changelog, and a restart
reads only the changelog after the checkpoint (streams/stage.py ``_recover``). RocksDB's
write-ahead log is on, not synced: a SIGKILL loses nothing the OS has (a batch is in the
log when ``write`` returns); a machine crash may lose the last batches, which leaves again
a prefix with its own, older checkpoint.

A store is rebuilt from the whole changelog when it is missing, unreadable, its
checkpoint is past the changelog's end (a changelog deleted and created again), or older
than ``store_max_age``: a compacted changelog drops its tombstones after the topic's
``delete.retention.ms`` (a day by default), and a store that slept longer could miss one.

Memory stays bounded by RocksDB's caches (shared by every store of the process) and the
writes of about one commit interval, not by the table's size.
"""

from __future__ import annotations

import bisect
import re
import shutil
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Keys under this prefix are the store's own (the checkpoint), never a table key: table
#: keys are document URLs or ``<subscription id>|<URL>``, which start with a printable byte.
META = b"\x00"
CHECKPOINT = META + b"checkpoint"
#: What follows the metadata in key order: where a scan of the table's keys starts.
FIRST_KEY = b"\x01"
#: Tables up to this many records (by RocksDB's estimate) are counted exactly.
EXACT_COUNT_BELOW = 10_000
#: Records per chunk of a scan (a stage yields to the event loop between chunks).
SCAN_CHUNK = 10_000

#: A write not yet in the store: a value, or None for a delete.
Writes = dict[bytes, "bytes | None"]


def right_sized(value: bytes) -> bytes:
    """A copy of ``value`` that occupies its own length. orjson (3.12 on) returns bytes in
    a buffer of at least 4 KiB that it never shrinks, so each record a table or a commit
    holds cost ~4 KiB instead of its ~300 bytes: 60,000 writes waiting for a commit held
    240 MB, a memory table of 1,000,000 documents 4 GB. Copying costs ~0.1 µs."""
    return b"".join((value, b""))


class MemoryTable:
    """A partition's table as a dict: nothing survives the process; every start reads the
    whole changelog. For tests and small tables (``table_store = "memory"``)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data.items()))

    def chunks(self, n: int = SCAN_CHUNK) -> Iterator[list[tuple[bytes, bytes]]]:
        snapshot = list(self._data.items())
        for at in range(0, len(snapshot), n):
            yield snapshot[at:at + n]

    def with_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self._data.items() if k.startswith(prefix)]

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    # The commit's hooks: a dict has nothing to flush.
    def take(self) -> None:
        pass

    def flush(self, changelog_next: int) -> None:
        pass

    def load(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            self.put(key, value)

    def checkpoint(self) -> tuple[int, float] | None:
        return None

    def wipe(self) -> None:
        self._data.clear()

    def close(self) -> None:
        pass


class DiskTable:
    """A partition's table in its own RocksDB store (see the module docstring)."""

    def __init__(self, path: Path, options: "StoreOptions") -> None:
        self.path = path
        self._options = options
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = options.open(path)
        #: writes since the last commit took them; then the ones the running commit took
        self.pending: Writes = {}
        self.flushing: Writes = {}

    # -- reads (the writes not yet flushed first) --------------------------------------
    def get(self, key: bytes) -> bytes | None:
        if key in self.pending:
            return self.pending[key]
        if key in self.flushing:
            return self.flushing[key]
        return self._db.get(key)

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def _written(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The unflushed write of ``key`` (None: deleted), or ``default`` if none."""
        if key in self.pending:
            return self.pending[key]
        return self.flushing.get(key, default)

    def _new_keys(self, start: bytes) -> list[bytes]:
        """The keys with an unflushed value, sorted: taken once per scan, so a scan costs
        its records plus the unflushed writes, not their product."""
        keys = {k for k, v in self.flushing.items() if v is not None and k >= start}
        for k, v in self.pending.items():
            if v is None:
                keys.discard(k)
            elif k >= start:
                keys.add(k)
        return sorted(keys)

    def chunk(self, after: bytes | None, n: int = SCAN_CHUNK, start: bytes = FIRST_KEY,
              new_keys: list[bytes] | None = None) -> list[tuple[bytes, bytes]]:
        """Up to ``n`` records with keys after ``after`` (None: from ``start`` on), in key
        order, as the table says now (for ``new_keys``, unflushed keys the store may not
        have: as when the scan began). No iterator is held across an await."""
        if new_keys is None:
            new_keys = self._new_keys(start)
        pending, flushing = self.pending, self.flushing
        found: list[tuple[bytes, bytes]] = []
        it = self._db.iter()
        if after is None:
            it.seek(start)
        else:
            it.seek(after)
            if it.valid() and it.key() == after:
                it.next()
        last = None
        while it.valid() and len(found) < n:
            key = it.key()
            last = key
            if key in pending:
                value = pending[key]
            elif key in flushing:
                value = flushing[key]
            else:
                value = it.value()
            if value is not None:
                found.append((key, value))
            it.next()
        exhausted = not it.valid()
        del it
        # Unflushed keys in this chunk's range that the store does not have yet.
        low = bisect.bisect_right(new_keys, after) if after is not None else \
            bisect.bisect_left(new_keys, start)
        high = len(new_keys) if exhausted or last is None else bisect.bisect_left(new_keys, last)
        extra = []
        for key in new_keys[low:high]:
            value = self._written(key)
            if value is not None and self._db.get(key) is None:
                extra.append((key, value))
        if extra:
            found.extend(extra)
            found.sort()
            found = found[:n]  # the next chunk starts after the last one returned
        return found

    def chunks(self, n: int = SCAN_CHUNK) -> Iterator[list[tuple[bytes, bytes]]]:
        """Every record, ``n`` at a time; no RocksDB iterator is held between two chunks,
        so the caller may await (and the table change) in between."""
        new_keys = self._new_keys(FIRST_KEY)
        after = None
        while True:
            chunk = self.chunk(after, n, new_keys=new_keys)
            if not chunk:
                return
            yield chunk
            after = chunk[-1][0]

    def with_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """The records whose keys start with ``prefix`` (a subscription's deliveries:
        ``<id>|``), read from where they start in key order rather than by a scan."""
        new_keys = [k for k in self._new_keys(prefix) if k.startswith(prefix)]
        found: list[tuple[bytes, bytes]] = []
        after = None
        while True:
            chunk = self.chunk(after, SCAN_CHUNK, start=prefix, new_keys=new_keys)
            for key, value in chunk:
                if not key.startswith(prefix):
                    return found
                found.append((key, value))
            if len(chunk) < SCAN_CHUNK:
                return found
            after = chunk[-1][0]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record, as the table says now."""
        for chunk in self.chunks():
            yield from chunk

    def __len__(self) -> int:
        """Records in the table: counted when there are few, else RocksDB's estimate plus
        the unflushed writes (a gauge's precision; counting millions would read them all)."""
        estimate = (self._db.property_int_value("rocksdb.estimate-num-keys") or 0) \
            + len(self.pending) + len(self.flushing)
        if estimate <= EXACT_COUNT_BELOW:
            return sum(len(chunk) for chunk in self.chunks())
        return estimate

    # -- writes ------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes | None) -> None:
        self.pending[key] = value

    def take(self) -> None:
        """A commit starts: the writes so far are the ones it flushes."""
        if self.flushing:  # a commit that did not flush (it failed): keep its writes
            self.flushing.update(self.pending)
        else:
            self.flushing = self.pending
        self.pending = {}

    def flush(self, changelog_next: int) -> None:
        """The commit's changelog records are acknowledged up to ``changelog_next``: the
        writes it took go into RocksDB with that checkpoint, in one batch."""
        batch = self._options.batch()
        for key, value in self.flushing.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(CHECKPOINT, _checkpoint_value(changelog_next))
        self._db.write(batch)
        self.flushing = {}

    def load(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Changelog records read while recovering, straight into the store (the
        checkpoint follows with :meth:`flush` once the whole tail is read)."""
        batch = self._options.batch()
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch)

    def checkpoint(self) -> tuple[int, float] | None:
        """(changelog offset the store holds up to, when it was written), or None."""
        value = self._db.get(CHECKPOINT)
        if value is None or len(value) != 16:
            return None
        offset, at = struct.unpack(">qd", value)
        return offset, at

    def wipe(self) -> None:
        """Drop everything: the store is rebuilt from the changelog."""
        self.close()
        self._options.destroy(self.path)
        self._db = self._options.open(self.path)
        self.pending, self.flushing = {}, {}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _checkpoint_value(offset: int) -> bytes:
    return struct.pack(">qd", offset, time.time())


class StoreOptions:
    """RocksDB settings shared by every store of one process: one block cache and one
    write-buffer budget for all of them, so memory does not grow with partitions."""

    def __init__(self, cache_bytes: int, write_buffer_bytes: int) -> None:
        from rocksdict import (BlockBasedOptions, Cache, Options, WriteBufferManager,
                               WriteOptions)
        cache = Cache(cache_bytes)
        #: the block cache every store of the process reads through (its usage: metrics, tests)
        self.cache = cache
        table = BlockBasedOptions()
        table.set_block_cache(cache)
        # Index and filter blocks stay with the open files (about 5.5 bytes a key: 55 MB at
        # 10,000,000 documents), not in the cache: there a file's index is one block of
        # megabytes, which data blocks evicted — 1.4–1.8 ms a get of a present key at
        # 2,500,000 keys a store, against 6–10 µs this way (docs/benchmarks.md, issue 12).
        table.set_cache_index_and_filter_blocks(False)
        table.set_bloom_filter(10, False)
        self._options = Options(raw_mode=True)
        self._options.create_if_missing(True)
        self._options.set_block_based_table_factory(table)
        self._options.set_write_buffer_size(max(1 << 20, write_buffer_bytes // 4))
        self._options.set_write_buffer_manager(
            WriteBufferManager.new_write_buffer_manager_with_cache(write_buffer_bytes, False, cache))
        self._write = WriteOptions()  # write-ahead log on, no fsync (module docstring)

    def open(self, path: Path):
        """Open (or create) the store at ``path`` with these options.

        The options are given for the default column family too: without that, rocksdict
        opens an existing store with the column family's options read back from its
        OPTIONS file, which cannot hold the bloom filter or the shared cache — every read of
        a restarted store then went to the files, 100–500 µs a get instead of 1–5 µs
        (tests/unit/test_store.py)."""
        from rocksdict import Rdict

        def rdict():
            return Rdict(str(path), self._options, column_families={"default": self._options})
        try:
            db = rdict()
        except Exception:
            # Unreadable (a torn write, another version's files): start it again.
            self.destroy(path)
            db = rdict()
        db.set_write_options(self._write)
        return db

    def batch(self):
        from rocksdict import WriteBatch
        return WriteBatch(raw_mode=True)

    def destroy(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


class Stores:
    """The stores of one stage in one process: ``<data_dir>/<app id>/<process>/<changelog>
    /<partition>``. The process part (its host and port) keeps two processes on one machine
    out of each other's stores, and finds a process's own stores when it starts again."""

    def __init__(self, kind: str, root: Path, changelog: str,
                 options: StoreOptions | None) -> None:
        self.kind = kind
        self.root = root / changelog
        self._options = options

    def open(self, partition: int) -> MemoryTable | DiskTable:
        if self.kind == "memory" or self._options is None:
            return MemoryTable()
        return DiskTable(self.root / str(partition), self._options)


def process_dir(data_dir: str, app_id: str, canonical_url: str) -> Path:
    """Where one process keeps its stores (see :class:`Stores`)."""
    process = re.sub(r"[^A-Za-z0-9.-]+", "_", canonical_url.split("://", 1)[-1]).strip("_")
    return Path(data_dir) / app_id / process
