"""Flare's Kafka topics (SPEC §10), created with the right policy before Faust starts.

Faust only creates topics it calls internal, with its own defaults; Flare's topics are a
public interface (producers write to ``<prefix>.documents`` directly), so their partition
counts and cleanup policies are declared here, in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from app.config import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool

    def config(self) -> dict[str, str]:
        return {"cleanup.policy": "compact" if self.compacted else "delete"}


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
        # One event per subscriber that may need a message; key: subscription|document.
        TopicSpec(settings.topic("deliveries"), n, compacted=False),
        # Delivery events the dispatcher could not read, with the reason (invariant 6).
        TopicSpec(settings.topic("deliveries.rejected"), n, compacted=False),
        # The documents table of the changes stage (streams/changes.py); per app id, like
        # the changelogs Faust created for its tables; partitioned as their source topic.
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
        NewTopic(spec.name, spec.partitions, settings.replication_factor,
                 # Records carry a body of up to max_body_bytes (app/config.py), above the
                 # broker's 1 MB default; a stage parks a message whose records would not
                 # fit (streams/stage.py, check_size).
                 topic_configs={**spec.config(),
                                "max.message.bytes": str(settings.max_record_bytes + 1024)})
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
