"""The changes/deliveries groups' assignor: every member learns every partition's owner."""

from __future__ import annotations

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from streams.ownership import OwnershipAssignor, spread
from streams.stage import partition_of


class Cluster(ClusterMetadata):
    def __init__(self, topic: str, partitions: int) -> None:
        super().__init__()
        self._parts = {topic: set(range(partitions))}

    def partitions_for_topic(self, topic):  # type: ignore[override]
        return self._parts.get(topic)


def member(url: str) -> ConsumerProtocolMemberMetadata:
    return OwnershipAssignor("t", url).metadata(["t"])


def test_spread_is_round_robin_and_covers_every_partition():
    assert spread([3, 0, 2, 1, 4], ["a", "b"]) == {"a": [0, 2, 4], "b": [1, 3]}
    assert spread([0], ["a", "b"]) == {"a": [0], "b": []}


def test_every_member_gets_the_whole_owner_map():
    leader = OwnershipAssignor("t", "http://a:1")
    members = {"m-2": member("http://b:2"), "m-1": member("http://a:1")}
    assignments = leader.assign(Cluster("t", 4), members)
    owned = {m: a.partitions() for m, a in assignments.items()}
    assert sorted(tp.partition for tps in owned.values() for tp in tps) == [0, 1, 2, 3]
    assert {tp.partition for tp in owned["m-1"]} == {0, 2}  # ordered by URL
    for member_id, assignment in assignments.items():
        follower = OwnershipAssignor("t", "x")
        follower.on_assignment(assignment)
        assert follower.owners == {0: "http://a:1", 1: "http://b:2", 2: "http://a:1",
                                   3: "http://b:2"}


def test_an_assignment_without_a_map_leaves_no_owners():
    assignor = OwnershipAssignor("t", "http://a:1")
    assignor.owners = {0: "old"}
    (assignment,) = OwnershipAssignor("t", "u").assign(Cluster("t", 1),
                                                       {"m": member("u")}).values()
    assignment.user_data = b"not json"
    assignor.on_assignment(assignment)
    assert assignor.owners == {}


def test_partition_of_matches_the_producer_partitioner():
    from aiokafka.partitioner import DefaultPartitioner

    for key in (b"http://a.test/1", b"s|http://b.test/users/2", b"x" * 300):
        assert partition_of(key, 6) == DefaultPartitioner()(key, list(range(6)), [])
