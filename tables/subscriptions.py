"""Subscriptions: the POST body decision, the conflict rule and the two shapes (SPEC §7, §9.6).

Pure: the one outside fact the checks need, whether a host is a public address, comes in
as a callable (the API passes its resolver). Failures are :class:`FlareError` with SPEC's
title and detail; almost all are ``400 error during body parse``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tables import urls, wildcards
from tables.errors import FlareError
from tables.limits import (MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADER_NAMES, MAX_HEADER_VALUE,
                           MAX_HEADER_VALUES, MAX_STATUSES, MAX_URL, MIN_RETRY_DELAY)
from tables.resources import (
    BODY_PARSE,
    RECORD_VERSION,
    Resource,
    decode_object,
    json_type,
    rfc3339,
    typed,
)

ACTIONS = ("create", "update", "delete")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# SPEC §11a: header values are printable ASCII; URLs hold no control characters.
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Headers Flare sets itself, or that change the request's framing or hop (SPEC §11a).
FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "te",
    "trailer", "keep-alive",
})
FORBIDDEN_PREFIXES = ("proxy-", "webhook-")


@dataclass(frozen=True)
class Action:
    """Where and how one action (create, update, delete) is sent, when it differs (§7)."""

    url: str = ""
    method: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.url:
            out["url"] = self.url
        if self.method:
            out["method"] = self.method
        if self.headers:
            out["headers"] = self.headers
        return out

    def to_record(self) -> dict[str, Any]:
        return {"url": self.url, "method": self.method, "headers": self.headers}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Action:
        headers = {k: list(v) for k, v in (record.get("headers") or {}).items()}
        return cls(record.get("url") or "", record.get("method") or "", headers)


@dataclass(frozen=True)
class Endpoint(Action):
    """The subscriber's default target plus per-action overrides. Empty method means GET."""

    actions: dict[str, Action] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        """Every url of the subscription, top-level first, then actions (§7 step 5)."""
        found = [self.url] + [a.url for a in self.actions.values()]
        return list(dict.fromkeys(u for u in found if u))

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        actions = {name: a.to_json() for name, a in self.actions.items() if a.to_json()}
        if actions:
            out["actions"] = actions
        return out

    def to_record(self) -> dict[str, Any]:
        out = super().to_record()
        out["actions"] = {name: a.to_record() for name, a in self.actions.items()}
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Endpoint:
        base = Action.from_record(record)
        actions = {n: Action.from_record(a) for n, a in (record.get("actions") or {}).items()}
        return cls(base.url, base.method, base.headers, actions)


@dataclass(frozen=True)
class Retry:
    """A client's backoff override, seconds; ``None`` parts keep the default (§9.6)."""

    initial: float | None = None
    max: float | None = None
    give_up_after: float | None = None

    def to_json(self) -> dict[str, float]:
        out = {"initial": self.initial, "max": self.max, "giveUpAfter": self.give_up_after}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Delivery:
    """Which statuses mean delivered / discarded, and the optional retry policy (§9.3)."""

    success: list[int]
    discard: list[int]
    retry: Retry | None = None


@dataclass(frozen=True)
class Content:
    """What the request body holds (§9.2); both default to true (§7 step 4)."""

    document: bool = True
    envelope: bool = True


@dataclass(frozen=True)
class Subscription:
    """Where and how to notify one client of one resource's changes (SPEC §1, §7)."""

    id: str
    resource_id: str
    endpoint: Endpoint
    delivery: Delivery
    content: Content
    data: dict[str, Any] | None
    secret: str | None
    created_at: int

    @property
    def urls(self) -> list[str]:
        return self.endpoint.urls

    def to_json(self) -> dict[str, Any]:
        """The API shape (§7): empty optional parts left out; the secret never appears."""
        delivery: dict[str, Any] = {
            "success": self.delivery.success,
            "discard": self.delivery.discard,
        }
        if self.delivery.retry is not None:
            delivery["retry"] = self.delivery.retry.to_json()
        out: dict[str, Any] = {
            "id": self.id,
            "endpoint": self.endpoint.to_json(),
            "delivery": delivery,
            "content": {"document": self.content.document, "envelope": self.content.envelope},
        }
        if self.data:
            out["data"] = self.data
        out["createdAt"] = rfc3339(self.created_at)
        return out

    def to_record(self) -> dict[str, Any]:
        """The value stored on the subscriptions topic; unlike the API shape, with the secret."""
        retry = self.delivery.retry
        return {
            "v": RECORD_VERSION,
            "id": self.id,
            "resource_id": self.resource_id,
            "endpoint": self.endpoint.to_record(),
            "delivery": {
                "success": self.delivery.success,
                "discard": self.delivery.discard,
                "retry": None if retry is None else asdict(retry),
            },
            "content": {"document": self.content.document, "envelope": self.content.envelope},
            "data": self.data,
            "secret": self.secret,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Subscription:
        if record.get("v") != RECORD_VERSION:
            raise ValueError(f"unknown subscription record version {record.get('v')!r}")
        delivery, content = record["delivery"], record["content"]
        retry = delivery.get("retry")
        return cls(
            id=record["id"],
            resource_id=record["resource_id"],
            endpoint=Endpoint.from_record(record["endpoint"]),
            delivery=Delivery(
                success=list(delivery["success"]),
                discard=list(delivery["discard"]),
                retry=None if retry is None else Retry(**retry),
            ),
            content=Content(document=content["document"], envelope=content["envelope"]),
            data=record.get("data"),
            secret=record.get("secret"),
            created_at=int(record["created_at"]),
        )


def _invalid(msg: str) -> FlareError:
    return FlareError(400, BODY_PARSE, f"invalid body content: {msg}")


def _type_error(value: Any, path: str, kind: str) -> FlareError:
    detail = f"json: cannot unmarshal {json_type(value)} into field '{path}' of type {kind}"
    return FlareError(400, BODY_PARSE, detail)


def _decode_target(obj: dict[str, Any], path: str) -> Action:
    """url, method and headers of ``endpoint`` or of one action (§7 step 2)."""
    headers: dict[str, list[str]] = {}
    for name, values in (typed(obj, "headers", "object", f"{path}.headers") or {}).items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _type_error(values, f"{path}.headers.{name}", "array of strings")
        headers[name] = list(values)
    url = typed(obj, "url", "string", f"{path}.url") or ""
    method = typed(obj, "method", "string", f"{path}.method") or ""
    if len(url) > MAX_URL:  # before any work on it (SPEC §11a)
        raise _invalid(f"invalid endpoint: {path}.url longer than {MAX_URL}")
    return Action(url, method, headers)


def _decode_actions(endpoint: dict[str, Any]) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for name, raw in (typed(endpoint, "actions", "object", "endpoint.actions") or {}).items():
        if raw is not None and not isinstance(raw, dict):
            raise _type_error(raw, f"endpoint.actions.{name}", "object")
        actions[name] = _decode_target(raw or {}, f"endpoint.actions.{name}")
    return actions


def _statuses(delivery: dict[str, Any], key: str) -> list[int]:
    values = typed(delivery, key, "array", f"delivery.{key}") or []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _type_error(v, f"delivery.{key}", "array of integers")
    return list(values)


def _check_statuses(success: list[int], discard: list[int]) -> None:
    """HTTP statuses, a bounded number of them (SPEC §11a)."""
    for key, values in (("success", success), ("discard", discard)):
        if len(values) > MAX_STATUSES:
            raise _invalid(f"invalid delivery.{key}: more than {MAX_STATUSES} statuses")
        for status in values:
            if not 100 <= status <= 599:
                raise _invalid(f"invalid delivery.{key}: '{status}' is not an HTTP status "
                               "(100 to 599)")


def _decode_retry(delivery: dict[str, Any]) -> dict[str, float | None] | None:
    raw = typed(delivery, "retry", "object", "delivery.retry")
    if raw is None:
        return None
    keys = ("initial", "max", "giveUpAfter")
    return {k: typed(raw, k, "number", f"delivery.retry.{k}") for k in keys}


def _unescape(url: str, path: str) -> str:
    try:
        return urls.unescape(url)
    except FlareError as exc:
        raise FlareError(400, BODY_PARSE, f"error during {path} unescape: {exc.detail}") from None


def _normalise(url: str) -> str:
    """Trim, and ``{ id }`` → ``{id}``. A trailing ``/`` is kept: it is the client's URL."""
    return wildcards.PLACEHOLDER.sub(lambda m: "{" + m.group(1).strip() + "}", url.strip())


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def data_wildcards(text: str) -> list[str]:
    """``{name}`` names in a data string; stray braces are plain text there."""
    return [n for n in (m.strip() for m in wildcards.PLACEHOLDER.findall(text)) if n]


def valid_secret(secret: str) -> bool:
    """``whsec_`` + standard base64 of 24 to 64 bytes (§9.6)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(raw) <= 64


def _check_urls(url: str, actions: dict[str, Action], known: set[str]) -> None:
    """§7 step 3: url presence, then the wildcards of ``url`` and of each action url."""
    if not url:
        if not actions:
            raise _invalid("invalid endpoint: 'endpoint.url' not found")
        for name in ACTIONS:
            if name not in actions or not actions[name].url:
                raise _invalid(
                    "invalid endpoint: 'endpoint.url' not found while the "
                    f"'endpoint.actions.{name}.url' is not present"
                )
    targets = [("endpoint.url", url)] + [(f"endpoint.{n}.url", a.url) for n, a in actions.items()]
    for label, target in targets:
        try:
            names = wildcards.parse(target)
        except wildcards.WildcardError as exc:
            raise _invalid(f"invalid endpoint: invalid wildcard: {exc}") from None
        if names and wildcards.outside_path(target):
            raise _invalid(
                f"invalid endpoint: {label} may have wildcards only in its path or query, "
                "not in its scheme, user info, host, port or fragment"
            )
        for w in names:
            if w not in known:
                raise _invalid(
                    f"invalid endpoint: {label} has a wildcard '{w}' that is not at the resource"
                )


def _check_methods(method: str, actions: dict[str, Action]) -> None:
    """§7 step 3: action methods, the top-level method, then a method for every action."""
    for name, action in actions.items():
        if action.method not in METHODS and action.method:
            raise _invalid(f"invalid method: invalid endpoint.{name}.Method '{action.method}'")
    if method not in METHODS and method:
        raise _invalid(f"invalid method: invalid endpoint.Method '{method}'")
    if not method:
        for name, action in actions.items():
            if not action.method:
                raise _invalid(
                    "invalid method: 'endpoint.method' not found while the "
                    f"'endpoint.actions.{name}.Method' is not present"
                )


def _check_data(data: dict[str, Any] | None, envelope: bool | None, known: set[str]) -> None:
    """§7 step 3: data needs the envelope, simple values, and the resource's wildcards."""
    if data is None:
        return
    if envelope is False:
        raise _invalid("could not have data while content.envelope is false")
    for key, value in data.items():
        if not (_is_scalar(value) or (isinstance(value, list) and all(map(_is_scalar, value)))):
            raise _invalid(f"invalid data content at key '{key}'")
    for key, value in data.items():
        if isinstance(value, str):
            for w in data_wildcards(value):
                if w not in known and w not in wildcards.RESERVED:
                    raise _invalid(f"data.'{key}' has a wildcard '{w}' that is not at the resource")


def _check_headers(label: str, headers: dict[str, list[str]]) -> None:
    """SPEC §11a: header syntax, forbidden names, printable ASCII values, and bounds."""
    if len(headers) > MAX_HEADER_NAMES:
        raise _invalid(f"invalid endpoint: {label}.headers has more than {MAX_HEADER_NAMES} names")
    total = 0
    for name, values in headers.items():
        if len(name) > MAX_HEADER_NAME:
            raise _invalid(f"invalid endpoint: {label}.headers has a name longer than {MAX_HEADER_NAME}")
        if not _TOKEN.fullmatch(name):
            raise _invalid(f"invalid endpoint: {label}.headers has an invalid header '{name}'")
        lower = name.lower()
        if lower in FORBIDDEN_HEADERS or lower.startswith(FORBIDDEN_PREFIXES):
            raise _invalid(
                f"invalid endpoint: {label}.headers may not set '{name}' (Flare sets it, or it "
                "changes the request's framing)")
        if len(values) > MAX_HEADER_VALUES:
            raise _invalid(f"invalid endpoint: {label}.headers.{name} has more than "
                           f"{MAX_HEADER_VALUES} values")
        for value in values:
            if len(value) > MAX_HEADER_VALUE:
                raise _invalid(f"invalid endpoint: {label}.headers.{name} has a value longer "
                               f"than {MAX_HEADER_VALUE}")
            if not _PRINTABLE.fullmatch(value):
                raise _invalid(f"invalid endpoint: {label}.headers.{name} has a value that is "
                               "not printable ASCII")
            total += len(name) + len(value) + 4
    if total > MAX_HEADER_BYTES:
        raise _invalid(f"invalid endpoint: {label}.headers longer than {MAX_HEADER_BYTES} bytes "
                       "in total")


def _check_extensions(
    url: str,
    headers: dict[str, list[str]],
    actions: dict[str, Action],
    secret: str | None,
    retry: dict[str, float | None] | None,
) -> list[str]:
    """Checks beyond the original service, cheap ones first; returns the hosts to vet.

    Unknown action names; absolute http(s) URLs; header syntax (a bad one would fail
    every delivery); ``secret`` and ``delivery.retry`` (§9.6).
    """
    for name in actions:
        if name not in ACTIONS:
            raise _invalid(
                f"invalid endpoint: unknown action '{name}', expected create, update or delete"
            )
    hosts: list[str] = []
    targets = [("endpoint.url", url)] + [(f"endpoint.{n}.url", a.url) for n, a in actions.items()]
    for label, target in targets:
        if not target:
            continue
        if _CONTROL.search(target):
            raise _invalid(f"invalid endpoint: {label} has a control character")
        try:
            parts = urlsplit(target)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise _invalid(
                f"invalid endpoint: {label} '{target}' is not an absolute http or https URL"
            )
        hosts.append(host)
    sets = [("endpoint", headers)] + [(f"endpoint.{n}", a.headers) for n, a in actions.items()]
    for label, header_set in sets:
        _check_headers(label, header_set)
    if secret is not None and not valid_secret(secret):
        raise _invalid("invalid secret")
    if retry is not None:
        for key, value in retry.items():
            if value is not None and (value <= 0 or not math.isfinite(value)):
                raise _invalid(
                    f"invalid delivery.retry: '{key}' should be a positive number of seconds"
                )
            if key in ("initial", "max") and value is not None and value < MIN_RETRY_DELAY:
                raise _invalid(
                    f"invalid delivery.retry: '{key}' should be at least {MIN_RETRY_DELAY} seconds"
                )
        initial, most = retry["initial"], retry["max"]
        if initial is not None and most is not None and initial > most:
            raise _invalid("invalid delivery.retry: 'initial' should not be greater than 'max'")
    return list(dict.fromkeys(hosts))


def parse_subscription_body(
    body: bytes,
    resource: Resource,
    *,
    is_public_host: Callable[[str], bool],
    allow_private: bool,
) -> dict[str, Any]:
    """Validated fields of a ``POST .../subscriptions`` body, SPEC §7 steps 2-4.

    Returns ``{"endpoint", "delivery", "content", "data", "secret"}``, ready for
    ``Subscription(id=..., resource_id=..., created_at=..., **fields)``. The first failure
    wins, in this order:

    2. Decode, with the JSON types SPEC gives; percent-decode ``endpoint.url`` and the
       action urls; trim them and the spaces inside their braces.
    3. Upper-case methods; check url presence, url wildcards, methods, delivery statuses,
       data. Then the extensions: unknown action names, absolute http(s) URLs, header
       syntax, ``secret``, ``delivery.retry``, and last the public-address rule, the only
       one that may resolve names.
    4. ``content.document`` and ``content.envelope`` default to true.

    Actions are checked create, update, delete, then other names as sent.
    """
    # Step 2
    doc = decode_object(body)
    raw_endpoint = typed(doc, "endpoint", "object") or {}
    top = _decode_target(raw_endpoint, "endpoint")
    raw_actions = _decode_actions(raw_endpoint)
    raw_delivery = typed(doc, "delivery", "object") or {}
    success = _statuses(raw_delivery, "success")
    discard = _statuses(raw_delivery, "discard")
    retry = _decode_retry(raw_delivery)
    raw_content = typed(doc, "content", "object") or {}
    document = typed(raw_content, "document", "bool", "content.document")
    envelope = typed(raw_content, "envelope", "bool", "content.envelope")
    data = typed(doc, "data", "object")
    secret = typed(doc, "secret", "string")
    url = _normalise(_unescape(top.url, "endpoint.url"))
    a_urls = {
        n: _normalise(_unescape(a.url, f"endpoint.actions.{n}.url")) for n, a in raw_actions.items()
    }

    # Step 3
    method = top.method.upper()
    order = [n for n in ACTIONS if n in raw_actions] + [n for n in raw_actions if n not in ACTIONS]
    actions = {
        n: Action(a_urls[n], raw_actions[n].method.upper(), raw_actions[n].headers) for n in order
    }
    known = set(wildcards.parse(resource.endpoint))
    _check_urls(url, actions, known)
    _check_methods(method, actions)
    if not success:
        raise _invalid("missing delivery.Success")
    if not discard:
        raise _invalid("missing delivery.Discard")
    _check_data(data, envelope, known)
    _check_statuses(success, discard)
    hosts = _check_extensions(url, top.headers, actions, secret, retry)
    if not allow_private:
        for host in hosts:
            if not is_public_host(host):
                raise _invalid(f"invalid endpoint: '{host}' is not a public address")

    # Step 4
    endpoint = Endpoint(url, method, top.headers, {n: a for n, a in actions.items() if a.to_json()})
    policy = None
    if retry is not None and any(v is not None for v in retry.values()):
        policy = Retry(retry["initial"], retry["max"], retry["giveUpAfter"])
    return {
        "endpoint": endpoint,
        "delivery": Delivery(success, discard, policy),
        "content": Content(
            document=True if document is None else document,
            envelope=True if envelope is None else envelope,
        ),
        "data": dict(data) if data else None,
        "secret": secret,
    }


def subscription_conflict(
    new_urls: Iterable[str], owners: Mapping[str, Subscription]
) -> tuple[Subscription, str] | None:
    """The other subscription holding a url of the new one, and that url (§7 step 5).

    ``owners`` indexes the same resource's subscriptions by every url they have, top-level
    and action (:func:`url_index`), so the check costs a lookup per url of the new one, not
    a scan of the resource. The first url of the new one (top-level first) that is taken
    wins, when several are.
    """
    for url in new_urls:
        other = owners.get(url)
        if other is not None:
            return other, url
    return None


def url_index(subscriptions: Iterable[Subscription]) -> dict[str, Subscription]:
    """url → the subscription that has it (top-level or action url), first one kept."""
    index: dict[str, Subscription] = {}
    for sub in subscriptions:
        for url in sub.urls:
            index.setdefault(url, sub)
    return index
