"""The baseline for the changes agent: a plain aiokafka consume → produce pipe.

It does the agent's work with the same pure functions and no framework: decode and
validate each message (``tables.documents.parse_message``, resource matching through a
``RegistryView`` holding the same registry), decide against a dict (``apply``), encode the
stored record with orjson and produce it to a changelog-like topic keyed by the document URL,
park bad messages on a rejected topic; every second, wait for the acknowledgements
(acks=all) of everything produced so far and commit the consumer offsets (at-least-once,
like the agent).

With ``STORE`` ``rocksdb`` the pipe keeps its table in RocksDB (rocksdict, one database,
default options, the encoded record stored as it is produced) instead of a dict: the
baseline for Flare's RocksDB-backed table.

Run alone: ``python -m bench.rawpipe BOOTSTRAP PREFIX COUNT [STORE DIR]`` (prints a JSON
summary).
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.config import Settings
from bench import workload
from streams.registry_view import RegistryView
from tables.documents import Rejected, ResourceIndex, apply, parse_message

OUTPUT = "rawpipe-changelog"
COMMIT_INTERVAL = 1.0



class RocksTable:
    """The pipe's table in RocksDB: JSON bytes by key, like a changelog record."""

    def __init__(self, path: str) -> None:
        from rocksdict import Rdict

        self.db = Rdict(path)

    def get(self, key: bytes):
        value = self.db.get(key)
        return None if value is None else orjson.loads(value)

    def put(self, key: bytes, encoded: bytes) -> None:
        self.db.put(key, encoded)

    def delete(self, key: bytes) -> None:
        self.db.delete(key)

    def close(self) -> None:
        self.db.close()


async def run(bootstrap: str, prefix: str, count: int, store: str = "memory",
              directory: str = "") -> dict:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, store="memory")
    view = RegistryView(settings)
    view.resources = {r.id: r for r in workload.resources()}
    index = None

    def resource_index() -> ResourceIndex:  # as the changes agent does (streams/changes.py)
        nonlocal index
        index = ResourceIndex.of(view.resources.values(), index)
        return index

    source, changelog = settings.topic("documents"), settings.topic(f"{OUTPUT}-{store}")
    rejected_topic = settings.topic("documents.rejected")
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap,
                                group_id=f"{prefix}-rawpipe-{store}",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=1000)
    # The same producer settings as Flare's Faust app (streams/app.py).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    await consumer.start()
    rocks = RocksTable(directory) if store == "rocksdb" else None
    table: dict[bytes, dict] = {}
    done = rejected = 0
    started = cpu_started = None
    try:
        committed_at = time.monotonic()
        while done < count:
            batches = await consumer.getmany(timeout_ms=1000)
            if started is None and batches:
                started = time.perf_counter()
                cpu_started = time.process_time()
            for tp, messages in batches.items():
                for message in messages:
                    done += 1
                    try:
                        change = parse_message(message.key, message.value, resource_index(),
                                               message.timestamp)
                    except Rejected as exc:
                        rejected += 1
                        await producer.send(rejected_topic, message.value, key=message.key,
                                            headers=[("flare-reason", exc.reason.encode())])
                        continue
                    stored = table.get(message.key) if rocks is None else rocks.get(message.key)
                    applied = apply(stored, change)
                    if not applied.changed:
                        continue
                    if applied.stored is None:
                        value = None
                        if rocks is None:
                            del table[message.key]
                        else:
                            rocks.delete(message.key)
                    else:
                        value = orjson.dumps(applied.stored)
                        if rocks is None:
                            table[message.key] = applied.stored
                        else:
                            rocks.put(message.key, value)
                    await producer.send(changelog, value, key=message.key, partition=tp.partition)
            # At-least-once, like Faust: offsets are committed only once everything produced
            # for the messages before them is acknowledged; not per batch (that would wait
            # for a produce round trip every time).
            if done >= count or time.monotonic() - committed_at > COMMIT_INTERVAL:
                await producer.flush()
                await consumer.commit()
                committed_at = time.monotonic()
        seconds = time.perf_counter() - (started or time.perf_counter())
        cpu_seconds = time.process_time() - cpu_started if started is not None else 0.0
    finally:
        await consumer.stop()
        await producer.stop()
        if rocks is not None:
            rocks.close()
    return {"processed": done, "rejected": rejected, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "rate": done / seconds if seconds else 0.0}


def main() -> None:
    bootstrap, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store, directory = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("memory", "")
    print(orjson.dumps(asyncio.run(run(bootstrap, prefix, count, store, directory))).decode(),
          flush=True)


if __name__ == "__main__":
    main()
