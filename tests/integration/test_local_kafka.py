"""The broker script itself: a 3-node cluster on one machine survives losing a node."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.local_kafka import LocalCluster

pytestmark = pytest.mark.integration


async def _create(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 3) for topic in topics])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, count: int) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                request_timeout_ms=20000)
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, b"x", key=str(i).encode())).offset
                for i in range(count)]
    finally:
        await producer.stop()


def test_three_nodes_keep_accepting_writes_with_one_killed(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", nodes=3)
    bootstrap = cluster.start()
    try:
        assert len(bootstrap.split(",")) == 3
        # Both topics first: aiokafka's admin client may still address a dead controller.
        asyncio.run(_create(bootstrap, "before", "after"))
        assert len(asyncio.run(_produce(bootstrap, "before", 30))) == 30
        cluster.kill_node(3)  # SIGKILL by its own PID
        survivors = ",".join(bootstrap.split(",")[:2])
        offsets = asyncio.run(_produce(survivors, "after", 30))
        assert len(offsets) == 30  # acks=all with min.insync.replicas=2 on two live nodes
    finally:
        cluster.stop()
