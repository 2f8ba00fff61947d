"""tables/commands.py: registry commands decided a batch at a time (SPEC §5, §7)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tables.commands import RESOURCES, SUBSCRIPTIONS, Batch, decide
from tables.resources import Resource
from tables.subscriptions import Content, Delivery, Endpoint, Subscription, url_index

NOW = 1_700_000_000_000


@dataclass
class View:
    """The part of streams/registry_view.py the decisions read."""

    resources: dict[str, Resource] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)

    def subscription_urls(self, resource_id: str):
        return url_index(s for s in self.subscriptions.values() if s.resource_id == resource_id)

    def subscription_count(self, resource_id: str) -> int:
        return sum(s.resource_id == resource_id for s in self.subscriptions.values())

    def deleted_by(self, object_id: str) -> str | None:
        return self.deleted.get(object_id)


def resource(rid: str = "r1", endpoint: str = "http://api.com/users/{id}") -> Resource:
    return Resource(rid, endpoint, "version", "", 0)


def sub(sid: str = "s1", url: str = "http://c.com/hook", rid: str = "r1") -> Subscription:
    return Subscription(sid, rid, Endpoint(url, "POST", {}, {}), Delivery([200], [500]),
                        Content(), None, None, 0)


def create_resource(r: Resource, cid: str = "c") -> dict:
    return {"v": 1, "id": cid, "kind": "create_resource", "resource": r.to_record()}


def create_sub(s: Subscription, cid: str = "c") -> dict:
    return {"v": 1, "id": cid, "kind": "create_subscription", "subscription": s.to_record()}


def delete_resource(rid: str, cid: str = "c") -> dict:
    return {"v": 1, "id": cid, "kind": "delete_resource", "object_id": rid}


def delete_sub(sid: str, rid: str = "r1", cid: str = "c") -> dict:
    return {"v": 1, "id": cid, "kind": "delete_subscription", "resource_id": rid, "object_id": sid}


def statuses(view: View, *commands: dict) -> list[int]:
    batch = Batch(view)
    return [decide(c, batch, NOW).status for c in commands]


# (name, view, commands of one batch, statuses)
CASES = [
    # §5 step 5: the same shape twice in one batch, and against the view
    ("two resource creates in one batch", View(),
     [create_resource(resource("a")), create_resource(resource("b", "http://api.com/users/{x}"))],
     [201, 409]),
    ("resource create against the view", View({"r1": resource()}),
     [create_resource(resource("b"))], [409]),
    # §7 step 5: one url twice in one batch, and against the view
    ("two subscription creates in one batch", View({"r1": resource()}),
     [create_sub(sub("a")), create_sub(sub("b"))], [201, 409]),
    ("subscription create against the view", View({"r1": resource()}, {"s1": sub()}),
     [create_sub(sub("b"))], [409]),
    ("a url freed earlier in the batch", View({"r1": resource()}, {"s1": sub()}),
     [delete_sub("s1"), create_sub(sub("b"))], [204, 201]),
    ("resource created earlier in the batch", View(),
     [create_resource(resource()), create_sub(sub())], [201, 201]),
    ("resource deleted earlier in the batch", View({"r1": resource()}),
     [delete_resource("r1"), create_sub(sub())], [204, 404]),
    # §5 delete: subscriptions created or deleted earlier in the batch count
    ("delete after a subscription created in the batch", View({"r1": resource()}),
     [create_sub(sub()), delete_resource("r1")], [201, 409]),
    ("delete after the last subscription went", View({"r1": resource()}, {"s1": sub()}),
     [delete_resource("r1"), delete_sub("s1"), delete_resource("r1")], [409, 204, 204]),
    ("unknown resource delete", View(), [delete_resource("r9")], [404]),
    ("subscription of another resource", View({"r1": resource()}, {"s1": sub()}),
     [delete_sub("s1", rid="r2")], [404]),
    # redelivered after a crash: the same success
    ("create found again", View({"r1": resource()}, {"s1": sub()}), [create_sub(sub())], [201]),
    ("delete found again", View(deleted={"r1": "c"}), [delete_resource("r1", cid="c")], [204]),
    ("another command's delete", View(deleted={"r1": "other"}), [delete_resource("r1")], [404]),
    ("subscription delete found again", View({"r1": resource()}, deleted={"s1": "c"}),
     [delete_sub("s1", cid="c")], [204]),
]


@pytest.mark.parametrize(("view", "commands", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_batch(view: View, commands: list[dict], expected: list[int]) -> None:
    assert statuses(view, *commands) == expected


def test_conflict_names_the_winner_of_the_batch() -> None:
    batch = Batch(View({"r1": resource()}))
    first = decide(create_sub(sub("a")), batch, NOW)
    second = decide(create_sub(sub("b")), batch, NOW)
    assert (first.write, first.table, first.key) == (True, SUBSCRIPTIONS, "a")
    assert second.detail == "already exists a subscription 'a' with the endpoint.URL 'http://c.com/hook'"
    assert second.title == "error during subscription create" and not second.write


def test_redelivered_create_writes_nothing() -> None:
    outcome = decide(create_resource(resource()), Batch(View({"r1": resource()})), NOW)
    assert (outcome.ok, outcome.write, outcome.table) == (True, False, RESOURCES)
    assert outcome.record == resource().to_record()


def test_delete_writes_a_tombstone() -> None:
    outcome = decide(delete_resource("r1"), Batch(View({"r1": resource()})), NOW)
    assert (outcome.write, outcome.record, outcome.key, outcome.status) == (True, None, "r1", 204)


def test_expired_command_is_not_decided() -> None:
    view = View()
    outcome = decide({**create_resource(resource()), "expires": NOW - 1}, Batch(view), NOW)
    assert (outcome.status, outcome.write) == (503, False)
    assert decide({**create_resource(resource()), "expires": NOW}, Batch(view), NOW).status == 201


def test_unknown_kind() -> None:
    assert decide({"v": 1, "id": "c", "kind": "rename"}, Batch(View()), NOW).status == 400


def test_the_view_is_not_changed() -> None:
    view = View()
    decide(create_resource(resource()), Batch(view), NOW)
    assert view.resources == {}


def test_decisions_stay_until_the_view_applied_their_record() -> None:
    # The owner keeps one Batch across fetches: a decision counts until its record is read back.
    view = View({"r1": resource()}, {"s1": sub()})
    batch = Batch(view)
    assert decide(delete_sub("s1"), batch, NOW).write
    assert decide(create_sub(sub("s2", url="http://c.com/2")), batch, NOW).write
    Batch.place(batch.take_unplaced(), [7, 8])
    assert batch.subscription_count("r1") == 1 and len(batch) == 2
    batch.settle({SUBSCRIPTIONS: 6})  # the view has read neither record yet
    assert len(batch) == 2 and batch.subscription("s1") is None
    # The view reads the tombstone (offset 7): the delete leaves the overlay, counts stay right.
    del view.subscriptions["s1"]
    batch.settle({SUBSCRIPTIONS: 7})
    assert len(batch) == 1 and batch.subscription_count("r1") == 1
    assert decide(create_sub(sub("s3")), batch, NOW).status == 201  # s1's url is free
    view.subscriptions["s2"] = sub("s2", url="http://c.com/2")
    batch.settle({SUBSCRIPTIONS: 8})
    assert len(batch) == 1  # s3 has no offset yet: it stays
    assert decide(create_sub(sub("s4", url="http://c.com/2")), batch, NOW).status == 409


def test_place_needs_one_offset_per_decision() -> None:
    batch = Batch(View())
    decide(create_resource(resource()), batch, NOW)
    with pytest.raises(ValueError):
        Batch.place(batch.take_unplaced(), [])
