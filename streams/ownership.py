"""Who owns which documents partition: a consumer-group assignor that tells every member.

GET /documents/<url> must be answered by the process holding the document's partition
(SPEC §8). The changes stage's consumer group uses this assignor: each member sends its
advertised URL with its subscription, and the group leader, which assigns the partitions,
also writes the whole partition → URL map into every member's assignment. So after each
rebalance every process knows the owner of every partition, with no extra topic or call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (ConsumerProtocolMemberAssignment,
                                           ConsumerProtocolMemberMetadata)

log = logging.getLogger("flare.ownership")


def spread(partitions: list[int], members: list[str]) -> dict[str, list[int]]:
    """Round-robin, members in a stable order: the same group gives the same assignment."""
    assigned: dict[str, list[int]] = {member: [] for member in members}
    for index, partition in enumerate(sorted(partitions)):
        assigned[members[index % len(members)]].append(partition)
    return assigned


class OwnershipAssignor(AbstractPartitionAssignor):
    """Round-robin over the members, plus the partition → URL map for everyone.

    An instance, not the class, is handed to aiokafka: each process has its own URL and
    its own view of the owners.
    """

    name = "flare-ownership"
    version = 0

    def __init__(self, topic: str, url: str) -> None:
        self.topic = topic
        self.url = url
        #: partition → advertised URL of the member that owns it (latest assignment)
        self.owners: dict[int, str] = {}

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.url.encode())

    def assign(self, cluster: ClusterMetadata,  # type: ignore[override]
               members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        partitions = sorted(cluster.partitions_for_topic(self.topic) or ())
        if not partitions:
            log.warning("no partition metadata for %s yet", self.topic)
        # Order by URL, then member id: a restarted process (new member id, same URL) gets
        # its old partitions back when the group is otherwise unchanged.
        order = sorted(members, key=lambda m: (members[m].user_data or b"", m))
        assigned = spread(partitions, order)
        owners = {str(p): members[m].user_data.decode() for m, ps in assigned.items() for p in ps}
        user_data = orjson.dumps(owners)
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, [(self.topic, assigned[member])], user_data)
            for member in members
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        try:
            self.owners = {int(p): url for p, url in orjson.loads(assignment.user_data).items()}
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            log.warning("assignment without an owner map; GET answers locally only")
            self.owners = {}
