"""The HTTP request that tells one subscriber about one change (SPEC §9.2).

Pure: the sender gets a finished method, URL, headers and body and adds only what belongs
to the attempt (``webhook-id``, ``webhook-timestamp``, the signature). Built from the
subscription without changing it (§9.2: the stored subscription is never changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tables import wildcards
from tables.resources import Resource, rfc3339
from tables.subscriptions import ACTIONS, FORBIDDEN_HEADERS, FORBIDDEN_PREFIXES, Subscription

__all__ = ["OutgoingRequest", "UnsafeFill", "build_request"]

UnsafeFill = wildcards.UnsafeFill


@dataclass(frozen=True)
class OutgoingRequest:
    """Method, filled URL, headers as ``(name, value)`` pairs in order, JSON body."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


def _fill_data(data: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``data`` with placeholders filled in strings and lists of strings (§9.2)."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return wildcards.fill(value, values)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return {key: fill(value) for key, value in data.items()}


def build_request(
    subscription: Subscription,
    resource: Resource,
    document_url: str,
    action: str,
    revision: int | None,
    document: dict[str, Any] | None,
    updated_at: int,
) -> OutgoingRequest:
    """The request for ``action`` on ``document_url`` (SPEC §9.2).

    - method: the action's when set, else the endpoint's, empty meaning GET;
    - URL: the action's when set, else the endpoint's, wildcards filled from
      ``document_url`` aligned with the resource endpoint, each value one encoded path
      segment; :class:`UnsafeFill` when a value is ``.`` or ``..`` or a wildcard stands
      outside the path (SPEC §11a: such a delivery can never be sent safely);
    - headers: the action's when it has any, else the endpoint's (replaced, not merged),
      one pair per value; ``Content-Type: application/json`` unless one is set in any case;
    - body: the envelope ``{"id", "action", "updatedAt", "data"?, "document"?}``, or the
      document alone when ``content.envelope`` is false. ``{revision}`` in data stays as it
      is when ``revision`` is ``None``; a ``None`` document is sent as ``null``.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    endpoint = subscription.endpoint
    override = endpoint.actions.get(action)
    method = (override.method if override and override.method else endpoint.method) or "GET"
    template = override.url if override and override.url else endpoint.url
    values = wildcards.values(resource.endpoint, document_url)
    header_map = override.headers if override and override.headers else endpoint.headers
    # A subscription stored before the header rules (SPEC §11a) may still hold one: never sent.
    headers = [(name, value) for name, vs in header_map.items() for value in vs
               if name.lower() not in FORBIDDEN_HEADERS
               and not name.lower().startswith(FORBIDDEN_PREFIXES)]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))

    content = subscription.content
    if content.envelope:
        envelope: dict[str, Any] = {
            "id": document_url,
            "action": action,
            "updatedAt": rfc3339(updated_at),
        }
        if subscription.data:
            data_values = dict(values)
            if revision is not None:
                data_values["revision"] = str(revision)
            envelope["data"] = _fill_data(subscription.data, data_values)
        if content.document:
            envelope["document"] = document
        body = orjson.dumps(envelope)
    else:
        body = orjson.dumps(document)
    return OutgoingRequest(method.upper(), wildcards.fill_url(template, values), headers, body)
