"""Producing to and reading from Flare's topics from outside a process, as a producer
writing directly would (SPEC §10). Synchronous wrappers for the integration tests."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

#: Room for the large messages the poison tests send (Flare's topics carry up to 4 MiB).
MAX_REQUEST = 8 * 1024 * 1024


async def produce_async(bootstrap: str, topic: str,
                        messages: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=MAX_REQUEST)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all_async(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """Every record of ``topic`` from the beginning, once there are at least ``count`` (or
    what there is after ``timeout``)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, fetch_max_bytes=MAX_REQUEST,
                                max_partition_fetch_bytes=MAX_REQUEST)
    await consumer.start()
    found = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    asyncio.run(produce_async(bootstrap, topic, messages))


def read_all(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    return asyncio.run(read_all_async(bootstrap, topic, count, timeout))


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """partition → the offset after its last record (tests/kafka_offsets.py, synchronously)."""
    from tests import kafka_offsets
    return asyncio.run(kafka_offsets.end_offsets(bootstrap, topic))
