"""Resources: the POST body decision, the conflict rule and the two shapes (SPEC §5).

Pure: no I/O, no clock. The API hands in the bytes and the existing resources, and gets
back values or a :class:`FlareError` carrying SPEC's title and detail. The body decoding
helpers here (:func:`decode_object`, :func:`typed`) are shared with ``tables.subscriptions``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from tables import urls
from tables.errors import FlareError
from tables.limits import MAX_FIELD, MAX_FORMAT, MAX_URL

BODY_PARSE = "error during body parse"
INVALID_CONTENT = "invalid body content"
RECORD_VERSION = 1


@functools.lru_cache(maxsize=4096)
def rfc3339(ts_seconds: int) -> str:
    """``createdAt`` / ``updatedAt``: RFC 3339, UTC, seconds, ``Z`` (SPEC §2). Cached: every
    notification formats its change's time, the same for all of its subscribers and for
    every change of that second (strftime is 4 µs)."""
    return datetime.fromtimestamp(ts_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object (SPEC §5 step 1, §7 step 2).

    An empty body is ``EOF`` (the Go decoder's word); other failures carry the decoder's
    message.
    """
    if not body.strip():
        raise FlareError(400, BODY_PARSE, "EOF")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FlareError(400, BODY_PARSE, str(exc)) from None
    if not isinstance(value, dict):
        detail = f"json: cannot unmarshal {json_type(value)} into an object"
        raise FlareError(400, BODY_PARSE, detail)
    return value


def typed(obj: dict[str, Any], key: str, kind: str, path: str | None = None) -> Any:
    """``obj[key]`` when it is of JSON type ``kind``; ``None`` when absent or null.

    A value of another type is a body parse error (SPEC §2: a field of the wrong JSON type).
    """
    value = obj.get(key)
    if value is None:
        return None
    if json_type(value) != kind:
        raise FlareError(
            400,
            BODY_PARSE,
            f"json: cannot unmarshal {json_type(value)} into field '{path or key}' of type {kind}",
        )
    return value


@dataclass(frozen=True)
class Resource:
    """A collection of documents under one endpoint template (SPEC §1, §5). Immutable."""

    id: str
    endpoint: str
    field: str
    format: str
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """The API shape: ``format`` left out when empty, braces literal (SPEC §5)."""
        change = {"field": self.field}
        if self.format:
            change["format"] = self.format
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "change": change,
            "createdAt": rfc3339(self.created_at),
        }

    def to_record(self) -> dict[str, Any]:
        """The value stored on the resources topic (self-describing, ``"v": 1``)."""
        return {
            "v": RECORD_VERSION,
            "id": self.id,
            "endpoint": self.endpoint,
            "field": self.field,
            "format": self.format,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Resource:
        if record.get("v") != RECORD_VERSION:
            raise ValueError(f"unknown resource record version {record.get('v')!r}")
        return cls(
            id=record["id"],
            endpoint=record["endpoint"],
            field=record["field"],
            format=record.get("format") or "",
            created_at=int(record["created_at"]),
        )


def parse_resource_body(body: bytes) -> tuple[str, str, str]:
    """``(endpoint, field, format)`` of a ``POST /resources`` body, SPEC §5 steps 1-4.

    The first failure wins, in this order:

    1. Decode: a JSON object whose known fields have the right JSON types; ``id`` and
       unknown fields are ignored. Then the bounds of SPEC §11a (tables/limits.py), before
       any other work: ``invalid body content`` naming the bound.
    2. Normalise the endpoint (trim, ``{ id }`` → ``{id}``, one trailing ``/`` dropped).
    3. Percent-decode it (``error during content unescape``).
    4. Validate the endpoint (``tables.urls``), then require ``change.field``.
    """
    # Step 1
    doc = decode_object(body)
    endpoint = typed(doc, "endpoint", "string") or ""
    change = typed(doc, "change", "object") or {}
    field = typed(change, "field", "string", "change.field") or ""
    fmt = typed(change, "format", "string", "change.format") or ""
    for name, value, bound in (("endpoint", endpoint, MAX_URL), ("change.field", field, MAX_FIELD),
                               ("change.format", fmt, MAX_FORMAT)):
        if len(value) > bound:
            raise FlareError(400, INVALID_CONTENT, f"{name} longer than {bound}")
    # Step 2
    endpoint = urls.normalise_endpoint(endpoint)
    # Step 3
    endpoint = urls.unescape(endpoint)
    # Step 4
    endpoint = urls.validate_resource_endpoint(endpoint)
    if not field:
        raise FlareError(400, INVALID_CONTENT, "missing change field")
    return endpoint, field, fmt


def resource_conflict(endpoint: str, existing: Iterable[Resource]) -> Resource | None:
    """The first resource with the same scheme, host and path shape (SPEC §5 step 5).

    Wildcards compare by position, not by name: ``/users/{id}`` and ``/users/{*}`` conflict.
    """
    shape = urls.endpoint_shape(endpoint)
    return next((r for r in existing if urls.endpoint_shape(r.endpoint) == shape), None)
