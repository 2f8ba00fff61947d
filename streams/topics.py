"""Flare's Kafka topics (SPEC §10), created with the right policy before anything starts.

Flare's topics are a public interface (producers write to ``<prefix>.documents``
directly), so their partition counts and cleanup policies are declared here, in one table.
A process creates only what is missing: no topic is made per process or per start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from app.config import Settings

REPLIES_RETENTION_MS = 3_600_000
#: A topic config that came from an alteration of the topic (DescribeConfigs v1+).
DYNAMIC_TOPIC_CONFIG = 1

log = logging.getLogger("flare.topics")


class TopicMismatch(RuntimeError):
    """An existing topic cannot serve as the one Flare needs (the message says why and how)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool
    #: the topic this one must have as many partitions as (a table's changelog: its source)
    partitioned_like: str | None = None

    #: delete policy only: how long records are kept (None: the broker's default)
    retention_ms: int | None = None
    #: an existing topic deleting by age is switched to compaction at start (it was
    #: created so by an earlier version); any other wrong policy stops the start
    adopt_compaction: bool = False

    def config(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact"}
        if self.retention_ms is not None:
            return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}
        return {"cleanup.policy": "delete"}


def flare_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic Flare reads or writes, by the key it carries (DESIGN.md, State and keys)."""
    n = settings.partitions
    return [
        # The change log and source of truth for documents; key: document URL.
        TopicSpec(settings.topic("documents"), n, compacted=True),
        # Directly-produced messages that failed validation, with the reason; key: original.
        TopicSpec(settings.topic("documents.rejected"), n, compacted=False),
        # Registry state; key: id; a tombstone deletes. One partition keeps one total order.
        TopicSpec(settings.topic("resources"), 1, compacted=True),
        TopicSpec(settings.topic("subscriptions"), 1, compacted=True),
        # Registry commands, serialised through one partition (DESIGN.md, uniqueness).
        TopicSpec(settings.topic("registry.commands"), 1, compacted=False),
        # Their answers, keyed by command id; every process reads them from its start on,
        # nobody waits longer than a request's timeout: kept an hour.
        TopicSpec(settings.topic("registry.replies"), 1, compacted=False,
                  retention_ms=REPLIES_RETENTION_MS),
        # One event per subscriber that may need a message; key: subscription|document,
        # with a kind after the subscription id for events a replay needs beside the
        # latest offer (tables/events.py). Compacted: a replay needs the last of each for
        # ever, not for a week (it was delete before: adopted, see ensure_topics).
        TopicSpec(settings.topic("deliveries"), n, compacted=True, adopt_compaction=True),
        # Delivery events the dispatcher could not read, with the reason (invariant 6).
        TopicSpec(settings.topic("deliveries.rejected"), n, compacted=False),
        # The documents table of the changes stage (streams/changes.py); per app id, like
        # the changelogs of the Faust tables they replaced; partitioned as their source topic.
        TopicSpec(f"{settings.app_id}-documents-changelog", n, compacted=True,
                  partitioned_like=settings.topic("documents")),
        # The deliveries table of the dispatcher (streams/dispatcher.py), the same way.
        TopicSpec(f"{settings.app_id}-deliveries-changelog", n, compacted=True,
                  partitioned_like=settings.topic("deliveries")),
    ]


def mismatches(specs: list[TopicSpec], partitions: dict[str, int],
               compacted: dict[str, bool]) -> list[str]:
    """What is wrong with the existing topics (``partitions``/``compacted`` by name, as the
    broker describes them) for Flare's ``specs``; pure. A table's changelog must have as
    many partitions as its source (a key's record lives in the partition of its key), the
    registry topics one (one total order), and the cleanup policy must be the one Flare
    needs: a compacted topic deleting by age loses state, a deleting one compacted keeps
    the wrong records."""
    problems = []
    for spec in specs:
        if spec.name not in partitions:
            continue
        source = spec.partitioned_like
        if source in partitions and partitions[spec.name] != partitions[source]:
            problems.append(f"{spec.name} has {partitions[spec.name]} partitions but {source} "
                            f"has {partitions[source]}: delete {spec.name} (it is rebuilt "
                            "from the topics, flare replay) or use another app_id")
        elif spec.partitions == 1 and partitions[spec.name] != 1:
            problems.append(f"{spec.name} has {partitions[spec.name]} partitions; it must "
                            "have 1")
        if spec.name in compacted and compacted[spec.name] != spec.compacted:
            want = "compact" if spec.compacted else "delete"
            problems.append(f"{spec.name} has cleanup.policy "
                            f"{'compact' if compacted[spec.name] else 'delete'}; it must be "
                            f"{want} (kafka-configs --alter --add-config cleanup.policy={want})")
    return problems


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions of existing topics (a metadata request would create a missing one on a
    broker with auto.create.topics.enable: ask only for topics that exist)."""
    if not names:
        return {}
    described = await admin.describe_topics(list(names))
    return {topic["topic"]: len(topic["partitions"]) for topic in described
            if topic.get("error_code", 0) == 0 and topic["partitions"]}


async def compaction(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, bool]:
    """Whether each topic's cleanup.policy includes compact."""
    if not names:
        return {}
    found: dict[str, bool] = {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None})
         for name in names])
    for response in responses:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == "cleanup.policy":
                    found[name] = "compact" in (entry[1] or "")
    return found


async def ensure_topics(settings: Settings, admin: AIOKafkaAdminClient) -> list[str]:
    """Create the missing topics and return their names; switch an existing deliveries
    topic that deletes by age to compaction (once, logged: an earlier version created it
    so, and what it then keeps only grows more exact); then check them all
    (:func:`mismatches`), raising :class:`TopicMismatch` with what to do."""
    specs = flare_topics(settings)
    existing = set(await admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    created = await _create(settings, admin, missing, existing) if missing else []
    names = [spec.name for spec in specs]
    policies = await compaction(admin, names)
    for spec in specs:
        if spec.adopt_compaction and policies.get(spec.name) is False:
            await _compact(admin, spec.name)
            policies[spec.name] = True
    problems = mismatches(specs, await partition_counts(admin, names), policies)
    if problems:
        raise TopicMismatch("; ".join(problems))
    return created


async def _compact(admin: AIOKafkaAdminClient, name: str) -> None:
    """Set ``cleanup.policy=compact`` on an existing topic, keeping its other settings.

    aiokafka has no IncrementalAlterConfigs, and AlterConfigs replaces every setting of
    the topic: so the topic's own settings are read first and sent back with the policy."""
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    own = {entry[0]: entry[1] for response in described for resource in response.resources
           for entry in resource[4] if entry[3] == DYNAMIC_TOPIC_CONFIG}
    old = own.get("cleanup.policy", "delete")
    own["cleanup.policy"] = "compact"
    responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, own)])
    for response in responses:
        for code, message, *_ in response.resources:
            if code != 0:
                raise TopicMismatch(f"{name} has cleanup.policy {old} and could not be set to "
                                    f"compact ({for_code(code).__name__}: {message}); set it: "
                                    "kafka-configs --alter --add-config cleanup.policy=compact")
    log.warning("switched %s from cleanup.policy=%s to compact: delivery events are kept "
                "by key now, so flare replay knows what subscribers have for ever "
                "(docs/architecture.md)", name, old)


async def _create(settings: Settings, admin: AIOKafkaAdminClient, missing: list[TopicSpec],
                  existing: set[str]) -> list[str]:
    # A changelog created now takes its source's partition count, whatever the setting.
    counts = await partition_counts(admin, [spec.partitioned_like for spec in missing
                                            if spec.partitioned_like in existing])
    response = await admin.create_topics([
        NewTopic(spec.name, counts.get(spec.partitioned_like, spec.partitions),
                 settings.replication_factor,
                 # Records carry a body of up to max_body_bytes (app/config.py), above the
                 # broker's 1 MB default; a stage parks a message whose records would not
                 # fit (streams/stage.py, check_size).
                 topic_configs={**spec.config(),
                                "max.message.bytes": str(settings.max_record_bytes + 1024),
                                "min.insync.replicas": str(settings.insync_replicas)})
        for spec in missing
    ])
    created: list[str] = []
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:  # another Flare process was first
            message = rest[0] if rest else ""
            raise for_code(code)(f"cannot create topic {name}: {message}")
    return created
