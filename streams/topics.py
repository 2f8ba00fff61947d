"""Flare's Kafka topics (SPEC §10), created with the right policy before anything starts.

Flare's topics are a public interface (producers write to ``<prefix>.documents``
directly), so their partition counts and cleanup policies are declared here, in one table.
A process creates only what is missing: no topic is made per process or per start.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from app.config import Settings

REPLIES_RETENTION_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool
    #: delete policy only: how long records are kept (None: the broker's default)
    retention_ms: int | None = None

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
        # One event per subscriber that may need a message; key: subscription|document.
        TopicSpec(settings.topic("deliveries"), n, compacted=False),
        # The documents table of the changes stage (streams/changes.py); per app id, like
        # the changelogs of the Faust tables they replaced; partitioned as their source topic.
        TopicSpec(f"{settings.app_id}-documents-changelog", n, compacted=True),
        # The deliveries table of the dispatcher (streams/dispatcher.py), the same way.
        TopicSpec(f"{settings.app_id}-deliveries-changelog", n, compacted=True),
    ]


async def ensure_topics(settings: Settings, admin: AIOKafkaAdminClient) -> list[str]:
    """Create the missing topics; return the names created. Existing ones are left alone."""
    existing = set(await admin.list_topics())
    missing = [spec for spec in flare_topics(settings) if spec.name not in existing]
    if not missing:
        return []
    response = await admin.create_topics([
        NewTopic(spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config())
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
