"""Registry commands, decided a batch at a time (SPEC §5 steps 5-6 and delete, §7 steps 5-6
and delete).

The registry stage (streams/registry.py) hands every command of one fetch to :func:`decide`
with the same :class:`Batch`: the caught-up registry view plus the decisions already made
in this batch (and in earlier ones whose records the view has not read back yet). So two
creates of one endpoint in one batch give one 201 and one 409, and a subscription created
earlier in the batch counts for a resource delete later in it.

Commands (``"v": 1``) carry their own id, and creates carry the new object with its id and
timestamp. Deciding one again after a crash (the stage commits after its replies) answers
the same: a create finds its object; a delete finds the id of the command that deleted the
object (the view reads it from the tombstone's ``flare-command`` header).

Pure: no I/O, the clock comes in as ``now_ms``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tables.resources import Resource, resource_conflict
from tables.subscriptions import Subscription, subscription_conflict

RESOURCES = "resources"
SUBSCRIPTIONS = "subscriptions"
COMMAND_VERSION = 1


class Known(Protocol):
    """What the registry view tells the decisions (streams/registry_view.py)."""

    resources: Mapping[str, Resource]
    subscriptions: Mapping[str, Subscription]

    def subscription_urls(self, resource_id: str) -> Mapping[str, Subscription]: ...

    def subscription_count(self, resource_id: str) -> int: ...

    def deleted_by(self, object_id: str) -> str | None: ...


@dataclass(frozen=True)
class Outcome:
    """The answer to one command, and the record to write for it (if any)."""

    ok: bool
    status: int
    title: str = ""
    detail: str = ""
    #: the table the asker waits on (read-your-writes): RESOURCES, SUBSCRIPTIONS or None
    table: str | None = None
    #: the object's record as written (creates); None for deletes and errors
    record: dict[str, Any] | None = None
    #: True: write ``record`` (None: a tombstone) under ``key`` to ``table``
    write: bool = False
    key: str = ""


def _error(status: int, title: str, detail: str) -> Outcome:
    return Outcome(False, status, title, detail)


class Batch:
    """The view plus the decisions it has not applied yet (an overlay; the view is not touched).

    The owner keeps one across batches: a decision stays here from the moment it is made
    until the view has read its record back (:meth:`settle`), so the next batch is decided
    without waiting for the view. Each entry remembers the offset of its record once
    written (:meth:`place`); a failed batch throws the whole overlay away.
    """

    def __init__(self, known: Known) -> None:
        self.known = known
        #: id → created, or None: deleted (by the latest entry of that id)
        self._resources: dict[str, Resource | None] = {}
        self._subscriptions: dict[str, Subscription | None] = {}
        #: (resource id, url) → its subscription from now on (None: freed)
        self._urls: dict[tuple[str, str], Subscription | None] = {}
        #: resource id → subscriptions created minus deleted, not yet in the view
        self._counts: dict[str, int] = {}
        #: key of any of the dicts above → the entry that set it last
        self._latest: dict[Any, int] = {}
        #: entries in write order: [seq, table, offset or None, id, object or None, delta]
        self._entries: deque[list[Any]] = deque()
        self._unplaced: list[list[Any]] = []
        self._seq = 0

    # -- reading -------------------------------------------------------------------
    def resource(self, resource_id: str) -> Resource | None:
        if resource_id in self._resources:
            return self._resources[resource_id]
        return self.known.resources.get(resource_id)

    def resources(self) -> Iterator[Resource]:
        for resource_id, resource in self.known.resources.items():
            if resource_id not in self._resources:
                yield resource
        yield from (r for r in self._resources.values() if r is not None)

    def subscription(self, sub_id: str) -> Subscription | None:
        if sub_id in self._subscriptions:
            return self._subscriptions[sub_id]
        return self.known.subscriptions.get(sub_id)

    def url_owners(self, resource_id: str) -> Mapping[str, Subscription]:
        return _Owners(self, resource_id)

    def subscription_count(self, resource_id: str) -> int:
        return self.known.subscription_count(resource_id) + self._counts.get(resource_id, 0)

    # -- changing ------------------------------------------------------------------
    def _entry(self, table: str, object_id: str, obj: Any, delta: int) -> int:
        self._seq += 1
        entry = [self._seq, table, None, object_id, obj, delta]
        self._entries.append(entry)
        self._unplaced.append(entry)
        return self._seq

    def _set(self, table: dict, key: Any, value: Any, seq: int) -> None:
        table[key] = value
        self._latest[(id(table), key)] = seq

    def put_resource(self, resource: Resource) -> None:
        seq = self._entry(RESOURCES, resource.id, resource, 0)
        self._set(self._resources, resource.id, resource, seq)

    def drop_resource(self, resource_id: str) -> None:
        seq = self._entry(RESOURCES, resource_id, None, 0)
        self._set(self._resources, resource_id, None, seq)

    def put_subscription(self, sub: Subscription) -> None:
        self._change_subscription(sub, sub, 1)

    def drop_subscription(self, sub: Subscription) -> None:
        self._change_subscription(sub, None, -1)

    def _change_subscription(self, sub: Subscription, value: Subscription | None, delta: int) -> None:
        seq = self._entry(SUBSCRIPTIONS, sub.id, sub, delta)
        self._set(self._subscriptions, sub.id, value, seq)
        for url in sub.urls:
            self._set(self._urls, (sub.resource_id, url), value, seq)
        self._counts[sub.resource_id] = self._counts.get(sub.resource_id, 0) + delta

    # -- settling ------------------------------------------------------------------
    def take_unplaced(self) -> list[list[Any]]:
        """The decisions made since the last call, in order, for :meth:`place`."""
        taken, self._unplaced = self._unplaced, []
        return taken

    @staticmethod
    def place(entries: list[list[Any]], offsets: list[int]) -> None:
        """The offsets of the records written for ``entries`` (one each, in order)."""
        if len(offsets) != len(entries):
            raise ValueError(f"{len(offsets)} offsets for {len(entries)} decisions")
        for entry, offset in zip(entries, offsets):
            entry[2] = offset

    def settle(self, applied: Mapping[str, int]) -> None:
        """Forget the decisions whose record the view has applied (``applied``: table → the
        offset of the last record the view applied)."""
        while self._entries and self._entries[0][2] is not None:
            seq, table, offset, object_id, obj, delta = self._entries[0]
            if offset > applied.get(table, -1):
                return
            self._entries.popleft()
            if table == RESOURCES:
                self._forget(self._resources, object_id, seq)
                continue
            self._forget(self._subscriptions, object_id, seq)
            for url in obj.urls:
                self._forget(self._urls, (obj.resource_id, url), seq)
            self._counts[obj.resource_id] -= delta
            if not self._counts[obj.resource_id]:
                del self._counts[obj.resource_id]

    def _forget(self, table: dict, key: Any, seq: int) -> None:
        if self._latest.get((id(table), key)) == seq:
            del self._latest[(id(table), key)]
            del table[key]

    def __len__(self) -> int:
        """Decisions the view has not applied yet."""
        return len(self._entries)


class _Owners(Mapping[str, Subscription]):
    """url → subscription of one resource, the batch's changes over the view's index."""

    def __init__(self, batch: Batch, resource_id: str) -> None:
        self.batch, self.resource_id = batch, resource_id
        self.known = batch.known.subscription_urls(resource_id)

    def __getitem__(self, url: str) -> Subscription:
        key = (self.resource_id, url)
        found = self.batch._urls[key] if key in self.batch._urls else self.known.get(url)
        if found is None:
            raise KeyError(url)
        return found

    def __iter__(self):  # only lookups are needed
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def decide(command: Mapping[str, Any], batch: Batch, now_ms: int) -> Outcome:
    """The outcome of one command against ``batch``, which then includes it.

    1. a command past its ``expires`` (its asker has answered 503 by now) is not decided;
    2. a command already decided (redelivered after a crash) gets the same success again;
    3. otherwise the rule of SPEC §5/§7 decides, and a success is applied to ``batch``.
    """
    # Step 1
    expires = command.get("expires")
    if isinstance(expires, int) and now_ms > expires:
        return _error(503, "registry unavailable", "the command expired before it was decided")
    kind = command.get("kind")
    if kind == "create_resource":
        return _create_resource(Resource.from_record(command["resource"]), batch)
    if kind == "delete_resource":
        return _delete_resource(command["id"], command["object_id"], batch)
    if kind == "create_subscription":
        return _create_subscription(Subscription.from_record(command["subscription"]), batch)
    if kind == "delete_subscription":
        return _delete_subscription(command["id"], command["resource_id"], command["object_id"],
                                    batch)
    return _error(400, "invalid command", f"unknown registry command {kind!r}")


def _create_resource(resource: Resource, batch: Batch) -> Outcome:
    existing = batch.resource(resource.id)
    if existing is not None:  # Step 2
        return Outcome(True, 201, table=RESOURCES, record=existing.to_record())
    # Step 3
    other = resource_conflict(resource.endpoint, batch.resources())
    if other is not None:
        return _error(409, "error during resource create",
                      f"endpoint already associated to another resource '{other.id}'")
    batch.put_resource(resource)
    return Outcome(True, 201, table=RESOURCES, record=resource.to_record(), write=True,
                   key=resource.id)


def _delete_resource(command_id: str, resource_id: str, batch: Batch) -> Outcome:
    if batch.resource(resource_id) is None:
        if batch.known.deleted_by(resource_id) == command_id:  # Step 2
            return Outcome(True, 204, table=RESOURCES)
        return _error(404, "error during resource delete", f"resource '{resource_id}' not found")
    # Step 3
    if batch.subscription_count(resource_id) > 0:
        return _error(409, "error during resource delete",
                      f"there are subscriptions associated with this resource '{resource_id}'")
    batch.drop_resource(resource_id)
    return Outcome(True, 204, table=RESOURCES, write=True, key=resource_id)


def _create_subscription(sub: Subscription, batch: Batch) -> Outcome:
    existing = batch.subscription(sub.id)
    if existing is not None:  # Step 2
        return Outcome(True, 201, table=SUBSCRIPTIONS, record=existing.to_record())
    # Step 3
    if batch.resource(sub.resource_id) is None:
        return _error(404, "error during resource search", f"resource '{sub.resource_id}' not found")
    clash = subscription_conflict(sub.urls, batch.url_owners(sub.resource_id))
    if clash is not None:
        other, url = clash
        return _error(409, "error during subscription create",
                      f"already exists a subscription '{other.id}' with the endpoint.URL '{url}'")
    batch.put_subscription(sub)
    return Outcome(True, 201, table=SUBSCRIPTIONS, record=sub.to_record(), write=True,
                   key=sub.id)


def _delete_subscription(command_id: str, resource_id: str, sub_id: str, batch: Batch) -> Outcome:
    sub = batch.subscription(sub_id)
    if sub is None or sub.resource_id != resource_id:
        if sub is None and batch.known.deleted_by(sub_id) == command_id:  # Step 2
            return Outcome(True, 204, table=SUBSCRIPTIONS)
        return _error(404, "error during subscription delete",
                      f"subscription '{sub_id}' at resource '{resource_id}', not found")
    # Step 3
    batch.drop_subscription(sub)
    return Outcome(True, 204, table=SUBSCRIPTIONS, write=True, key=sub_id)
