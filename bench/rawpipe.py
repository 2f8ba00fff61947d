"""The baseline for the changes stage: a plain aiokafka consume → produce pipe.

It does the agent's work with the same pure functions and no framework: decode and
validate each message (``tables.documents.parse_message``, resource matching through a
``RegistryView`` holding the same registry), decide against a dict of encoded records
(``apply`` on the decoded record, as the stage's tables hold JSON bytes too, which also
keeps a backlog of millions of documents in a few GB), encode the stored record with
orjson, park bad messages on a rejected topic; every second, in the
changes stage's commit order (streams/stage.py): wait for the acknowledgements (acks=all)
of everything produced so far, then write each changed document's latest record to a
changelog-like topic keyed by the document URL and wait for those, then commit the
consumer offsets (at-least-once, like the stage). Its rate is measured inside: from the
first batch to the last commit.

Run alone: ``python -m bench.rawpipe BOOTSTRAP PREFIX COUNT`` (prints a JSON summary).
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
from streams.stage import FETCH_BYTES, MAX_BATCH
from streams.store import right_sized
from tables.documents import Rejected, ResourceIndex, apply, parse_message

OUTPUT = "rawpipe-changelog"
COMMIT_INTERVAL = 1.0



async def run(bootstrap: str, prefix: str, count: int) -> dict:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    view = RegistryView(settings)
    view.resources = {r.id: r for r in workload.resources()}
    index = None

    def resource_index() -> ResourceIndex:  # as the changes stage does (streams/changes.py)
        nonlocal index
        index = ResourceIndex.of(view.resources.values(), index)
        return index

    source, changelog = settings.topic("documents"), settings.topic(OUTPUT)
    rejected_topic = settings.topic("documents.rejected")
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap,
                                group_id=f"{prefix}-rawpipe",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=MAX_BATCH, max_partition_fetch_bytes=FETCH_BYTES)
    # The same client settings as Flare's stages (streams/stage.py).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    table: dict[bytes, bytes] = {}
    dirty: dict[tuple[int, bytes], bytes | None] = {}
    done = rejected = 0
    started = cpu_started = None
    try:
        committed_at = time.monotonic()
        while done < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_BATCH)
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
                    held = table.get(message.key)
                    applied = apply(None if held is None else orjson.loads(held), change)
                    if not applied.changed:
                        continue
                    if applied.stored is None:
                        value = None
                        del table[message.key]
                    else:
                        # As the stage keeps it (streams/store.py right_sized).
                        value = table[message.key] = right_sized(orjson.dumps(applied.stored))
                    dirty[(tp.partition, message.key)] = value
            # At-least-once, like the stage: offsets are committed only once everything
            # produced for the messages before them is acknowledged; not per batch (that
            # would wait for a produce round trip every time).
            if done >= count or time.monotonic() - committed_at > COMMIT_INTERVAL:
                await producer.flush()
                for (partition, key), value in dirty.items():
                    await producer.send(changelog, value, key=key, partition=partition)
                dirty.clear()
                await producer.flush()
                await consumer.commit()
                committed_at = time.monotonic()
        seconds = time.perf_counter() - (started or time.perf_counter())
        cpu_seconds = time.process_time() - cpu_started if started is not None else 0.0
    finally:
        await consumer.stop()
        await producer.stop()
    return {"processed": done, "rejected": rejected, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "rate": done / seconds if seconds else 0.0}


def main() -> None:
    bootstrap, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(orjson.dumps(asyncio.run(run(bootstrap, prefix, count))).decode(), flush=True)


if __name__ == "__main__":
    main()
