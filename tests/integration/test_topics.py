"""Existing topics are checked at start (issue 12, "Topics for production"): a changelog
with fewer partitions than its source, or a topic with the wrong cleanup policy, stops
the start with a reason on /readyz instead of misplacing or losing records later; the
topics Flare creates carry min.insync.replicas and the record size it writes."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.flare_process import poll, unique_name
from tests.kafka_offsets import admin_client

pytestmark = pytest.mark.integration


async def create(bootstrap: str, *topics: NewTopic) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.create_topics(list(topics))


async def configs(bootstrap: str, topic: str) -> dict[str, str]:
    async with admin_client(bootstrap) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return {entry[0]: entry[1] for response in responses for resource in response.resources
            for entry in resource[4]}


def refused(flare, reason: str) -> None:
    def said() -> bool:
        answer = flare.readyz()
        return answer.status_code == 503 and reason in answer.text
    poll(said, timeout=60, message=f"/readyz 503 saying {reason!r}")


def test_a_changelog_partitioned_unlike_its_source_stops_the_start(flare_factory, kafka_bootstrap):
    name = unique_name("topics")
    asyncio.run(create(kafka_bootstrap,
                       NewTopic(f"{name}.documents", 4, 1, topic_configs={"cleanup.policy": "compact"}),
                       NewTopic(f"{name}-documents-changelog", 2, 1,
                                topic_configs={"cleanup.policy": "compact"})))
    flare = flare_factory(app_id=name, prefix=name).start(wait_ready=False)
    refused(flare, f"{name}-documents-changelog has 2 partitions but {name}.documents has 4")


def test_a_topic_with_the_wrong_cleanup_policy_stops_the_start(flare_factory, kafka_bootstrap):
    name = unique_name("topics")
    asyncio.run(create(kafka_bootstrap, NewTopic(f"{name}.documents.rejected", 4, 1,
                                                 topic_configs={"cleanup.policy": "compact"})))
    flare = flare_factory(app_id=name, prefix=name).start(wait_ready=False)
    refused(flare, f"{name}.documents.rejected has cleanup.policy compact; it must be delete")


def test_a_deliveries_topic_deleting_by_age_is_switched_to_compaction(flare_factory,
                                                                      kafka_bootstrap):
    """Created so by an earlier version: switched once, its own settings kept."""
    name = unique_name("topics")
    asyncio.run(create(kafka_bootstrap, NewTopic(
        f"{name}.deliveries", 4, 1,
        topic_configs={"cleanup.policy": "delete", "retention.ms": "86400000"})))
    flare = flare_factory(app_id=name, prefix=name).start()
    assert flare.readyz().status_code == 200
    deliveries = asyncio.run(configs(kafka_bootstrap, f"{name}.deliveries"))
    assert deliveries["cleanup.policy"] == "compact"
    assert deliveries["retention.ms"] == "86400000"
    assert "switched" in flare.log() and "cleanup.policy=delete to compact" in flare.log()


def test_created_topics_carry_the_settings(flare_factory, kafka_bootstrap):
    name = unique_name("topics")
    flare = flare_factory(app_id=name, prefix=name).start()
    assert flare.readyz().status_code == 200
    documents = asyncio.run(configs(kafka_bootstrap, f"{name}.documents"))
    assert documents["cleanup.policy"] == "compact"
    assert documents["min.insync.replicas"] == "1"
    assert int(documents["max.message.bytes"]) > 1024 * 1024
    assert asyncio.run(configs(kafka_bootstrap, f"{name}.deliveries"))["cleanup.policy"] == "compact"
