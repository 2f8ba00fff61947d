"""Document changes: what a change is, whether it is valid, what it does to the stored
document (SPEC §8, §10). Pure: the API and the changes stage both decide with these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote_plus

import orjson

from tables.errors import FlareError
from tables.resources import Resource
from tables.revisions import revision_of
from tables.urls import _match_flags, _segments, _split, endpoint_shape, validate_document_url

ACTIONS = ("put", "delete")
RECORD_VERSION = 1


@dataclass(frozen=True)
class Change:
    """One accepted change of one document, as the changes stage applies it."""

    action: str  # "put" | "delete"
    url: str
    resource_id: str
    revision: int | None  # None for a delete
    document: dict[str, Any] | None  # None for a delete
    updated_at: int  # Unix seconds: when the change was accepted (the record's timestamp)
    #: a repair (header ``flare-repair``): the source offset of the record it restates
    repair: int | None = None


def stored_record(change: Change) -> dict[str, Any]:
    """The documents table's value for a put: latest revision, content, resource, updatedAt."""
    return {
        "v": RECORD_VERSION,
        "revision": change.revision,
        "content": change.document,
        "resource": change.resource_id,
        "updatedAt": change.updated_at,
    }


def change_value(action: str, url: str, document: dict[str, Any] | None = None) -> bytes:
    """The value on ``<prefix>.documents`` (SPEC §10), as the API and producers write it.

    A document orjson cannot write again (nested deeper than 255 levels) is a 400: the
    changes stage could not store it either."""
    if action == "put":
        try:
            return orjson.dumps({"action": "put", "id": url, "document": document})
        except orjson.JSONEncodeError as exc:
            raise FlareError(400, "invalid body", f"error during body unmarshal: {exc}") from None
    return orjson.dumps({"action": "delete", "id": url})


#: URLs remembered per resource index by :func:`match` (cleared when full).
MATCH_MEMO = 100_000


class ResourceIndex:
    """SPEC §8 resource matching with every endpoint's shape computed once.

    The same answer as ``tables.urls.match_resource`` over ``resources`` in the same order,
    but a lookup parses the document URL once and compares it only with the endpoints of
    its scheme, host and segment count, instead of parsing every endpoint for every change
    (that was 80% of the changes stage's validation time with 20 resources: bench/).
    Immutable: :meth:`of` gives a new one when the registry has changed.
    """

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.resources: tuple[Resource, ...] = tuple(resources)
        #: valid document URL → its resource (None: no resource), see :func:`match`
        self.matched: dict[str, Resource | None] = {}
        self._candidates: dict[tuple[str, str, int], list[tuple[tuple[str, ...], Resource]]] = {}
        for resource in self.resources:
            scheme, host, shape = endpoint_shape(resource.endpoint)
            self._candidates.setdefault((scheme, host, len(shape)), []).append((shape, resource))

    @classmethod
    def of(cls, resources: Iterable[Resource], index: ResourceIndex | None = None) -> ResourceIndex:
        """``index`` when it still describes ``resources`` (the registry now), else a new one.

        Resources are immutable values, so comparing the tuples is enough (and cheap)."""
        current = tuple(resources)
        if index is not None and index.resources == current:
            return index
        return cls(current)

    def __call__(self, document_url: str) -> Resource | None:
        doc = _split(document_url)
        return self.find(doc.scheme, doc.host, doc.path)

    def find(self, scheme: str, host: str, path: str) -> Resource | None:
        """The resource of a document URL already split by ``validate_document_url``."""
        segments = [unquote_plus(segment) for segment in _segments(path)]
        candidates = self._candidates.get((scheme, host.lower(), len(segments)))
        if not candidates:
            return None
        best: tuple[tuple[int, ...], Resource] | None = None
        for shape, resource in candidates:
            flags = _match_flags(shape, segments)
            if flags is not None and (best is None or flags < best[0]):
                best = (flags, resource)
        return None if best is None else best[1]


def match(url: str, find_resource: Callable[[str], Resource | None]) -> Resource:
    """Validate the document URL (400 ``invalid id``) and find its resource (404), SPEC §8.

    ``find_resource`` is any lookup by URL; a :class:`ResourceIndex` reuses the URL parsed
    by the validation instead of parsing it again.
    """
    if isinstance(find_resource, ResourceIndex):
        # The same documents change again and again, and an index never changes: the
        # answer for a URL already validated against it is remembered (a bounded memo).
        matched = find_resource.matched
        if url in matched:
            resource = matched[url]
        else:
            scheme, host, path = validate_document_url(url)
            resource = find_resource.find(scheme, host, path)
            if len(matched) >= MATCH_MEMO:
                matched.clear()
            matched[url] = resource
    else:
        validate_document_url(url)
        resource = find_resource(url)
    if resource is None:
        raise FlareError(404, "error during resource search",
                         f"could not found a resource for this uri '{url}'")
    return resource


def decode_document(body: bytes) -> dict[str, Any]:
    """A PUT body must be a JSON object (SPEC §8: ``invalid body`` otherwise)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FlareError(400, "invalid body", f"error during body unmarshal: {exc}") from None
    if not isinstance(document, dict):
        raise FlareError(400, "invalid body",
                         "error during body unmarshal: the document must be a JSON object")
    return document


def check_put(url: str, document: dict[str, Any], find_resource, updated_at: int) -> Change:
    resource = match(url, find_resource)
    revision = revision_of(document, resource.field, resource.format)
    return Change("put", url, resource.id, revision, document, updated_at)


def check_delete(url: str, find_resource, updated_at: int) -> Change:
    resource = match(url, find_resource)
    return Change("delete", url, resource.id, None, None, updated_at)


class Rejected(ValueError):
    """A message on the documents topic that cannot be applied; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(key: bytes | None, value: bytes | None, find_resource,
                  timestamp_ms: int, repair: bytes | None = None) -> Change:
    """Check a message read from ``<prefix>.documents`` the way the API checks a request.
    ``repair`` is the message's ``flare-repair`` header, if any (:func:`repair_message`).

    Whatever fails becomes :class:`Rejected` with a reason, for the rejected topic (SPEC §10).
    """
    if repair is not None:
        try:
            base = int(repair)
        except ValueError:
            raise Rejected(f"{REPAIR_HEADER} header {repair[:40]!r} is not an offset") from None
        change = parse_message(key, value, find_resource, timestamp_ms)
        return Change(change.action, change.url, change.resource_id, change.revision,
                      change.document, change.updated_at, base)
    if value is None:
        raise Rejected("empty value (tombstone): expected a JSON change")
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"value is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise Rejected("value is not a JSON object")
    action = message.get("action")
    if action not in ACTIONS:
        raise Rejected(f"unknown action {action!r}: expected 'put' or 'delete'")
    url = message.get("id")
    if not isinstance(url, str) or not url:
        raise Rejected("missing 'id': the document URL")
    if key is None:
        raise Rejected("missing key: the key must be the document URL")
    if key.decode("utf-8", "replace") != url:
        raise Rejected(f"key {key!r} differs from id {url!r}: the key must be the document URL")
    updated_at = timestamp_ms // 1000
    try:
        if action == "delete":
            return check_delete(url, find_resource, updated_at)
        document = message.get("document")
        if not isinstance(document, dict):
            raise Rejected("missing 'document': a put needs a JSON object")
        return check_put(url, document, find_resource, updated_at)
    except FlareError as exc:
        raise Rejected(f"{exc.title}: {exc.detail}") from None


@dataclass(frozen=True)
class Applied:
    """What a change did to the documents table."""

    stored: dict[str, Any] | None  # the record to keep
    changed: bool  # whether the table must be written
    previous: dict[str, Any] | None  # the live document before the change (None: none)
    #: whether the change goes to the fan-out (False: a replay of one already handled)
    offer: bool = True
    #: the record to state again on the documents topic (:func:`repair_message`): the
    #: change lost to it, and compaction would otherwise keep the loser
    repair: dict[str, Any] | None = None


def is_live(record: dict[str, Any] | None) -> bool:
    """A stored document, not the mark a delete leaves."""
    return record is not None and not record.get("deleted")


def apply(stored: dict[str, Any] | None, change: Change, offset: int | None = None) -> Applied:
    """SPEC §8: the highest revision wins; an equal or older put changes nothing; a delete
    removes the document, and the next put of any revision creates it again.

    A delete leaves a mark (``"deleted": true``, with the last revision and content), and
    every record keeps the source ``offset`` of the change that wrote it, so a change read
    again after a crash (at or before that offset) is told apart from a new one: it changes
    nothing, and only the change that wrote the record is offered again (its offers may not
    have reached Kafka before the crash). Without the mark, a put replayed from before a
    delete would create the document again, and a replayed delete would offer nothing.

    The documents topic is compacted (the last record of a key stays), so a put that
    loses to a different stored document asks for a repair (``Applied.repair``): the
    stored record is produced again, and it is the key's last record once more. A repair
    read back is decided by :func:`_repaired` and never offered.
    """
    if offset is not None and stored is not None and offset <= stored.get("offset", -1):
        again = offset == stored["offset"]
        previous = stored if again and stored.get("deleted") else None
        return Applied(stored, False, previous, offer=again and change.repair is None)
    if change.repair is not None:
        return _repaired(stored, change)
    # A record left by a deleted resource (one of the same endpoint created again has
    # another id) is no document of this one: SPEC §5, its documents are removed.
    live = stored if is_live(stored) and stored["resource"] == change.resource_id else None
    if change.action == "delete":
        if live is None:
            return Applied(stored, False, None)
        mark = {"v": RECORD_VERSION, "deleted": True, "revision": live["revision"],
                "content": live["content"], "resource": live["resource"],
                "updatedAt": change.updated_at}
        return Applied(_at(mark, offset), True, live)
    if live is not None and change.revision <= live["revision"]:
        differs = _state(live) != _state_of(change)
        return Applied(stored, False, live, repair=live if differs else None)
    return Applied(_at(stored_record(change), offset), True, live)


def _repaired(stored: dict[str, Any] | None, change: Change) -> Applied:
    """A repair read back. ``change.repair`` is the offset of the change that lost (the
    repair answers it), so the repair says "up to that offset, the winner is this":

    - the same document as held: nothing (the usual case: this stage's own repair);
    - something held that was written after that offset (a newer change came between
      the loser and its repair, or a delete): nothing, and the held record is repaired
      again, so the topic's last record is it. A repair repairs again only for a change
      that came after its loser, so it never loops;
    - else (nothing held, or a loser a rebuild took because compaction removed the record
      it lost to): the repair is the record, as of the loser's offset.
    """
    held = stored if stored is not None and stored.get("resource") == change.resource_id else None
    if held is not None and _state(held) == _state_of(change):
        return Applied(stored, False, None, offer=False)
    if held is not None and held.get("offset", -1) > change.repair:
        return Applied(stored, False, None, offer=False, repair=held)
    live = held if is_live(held) else None
    if change.action == "delete":
        if live is None:
            return Applied(stored, False, None, offer=False)
        mark = {"v": RECORD_VERSION, "deleted": True, "revision": live["revision"],
                "content": live["content"], "resource": live["resource"],
                "updatedAt": change.updated_at}
        return Applied(_at(mark, change.repair), True, live, offer=False)
    return Applied(_at(stored_record(change), change.repair), True, live, offer=False)


def _state(record: dict[str, Any]) -> tuple:
    """What a subscriber or a rebuild sees of a record: the document, or none."""
    if not is_live(record):
        return ("delete",)
    return ("put", record["revision"], record["content"])


def _state_of(change: Change) -> tuple:
    return ("delete",) if change.action == "delete" else ("put", change.revision, change.document)


#: The header that marks a repair on ``<prefix>.documents``; its value is the source
#: offset of the change that lost, which the repair answers (:func:`_repaired`).
REPAIR_HEADER = "flare-repair"


def repair_message(url: str, record: dict[str, Any],
                   lost: int) -> tuple[bytes, list[tuple[str, bytes]], int]:
    """The record to produce to ``<prefix>.documents`` so the key's last record is
    ``record`` again after the change at offset ``lost`` lost to it: (value, headers,
    timestamp in ms). The value is a plain SPEC §10 change, so direct consumers and a
    rebuild read it as one; the timestamp is the record's ``updatedAt``, so a rebuild
    keeps that too."""
    if is_live(record):
        value = change_value("put", url, record["content"])
    else:
        value = change_value("delete", url)
    headers = [(REPAIR_HEADER, str(lost).encode())]
    return value, headers, int(record["updatedAt"]) * 1000


def _at(record: dict[str, Any], offset: int | None) -> dict[str, Any]:
    if offset is not None:
        record["offset"] = offset
    return record
