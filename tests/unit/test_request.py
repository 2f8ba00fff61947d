"""tables.request: one row per SPEC §9.2 rule for method, URL, headers and body."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tables.request import OutgoingRequest, UnsafeFill, build_request
from tables.resources import Resource
from tables.subscriptions import Action, Content, Delivery, Endpoint, Subscription

RESOURCE = Resource("r1", "http://api/users/{id}", "version", "", 0)
DOC_URL = "http://api/users/123"
DOC = {"name": "ana", "version": 7}
UPDATED_AT = 1291970108  # 2010-12-10T08:35:08Z
CT = ("Content-Type", "application/json")


def sub(
    url: str = "http://client/feed/{id}",
    method: str = "POST",
    headers: dict[str, list[str]] | None = None,
    actions: dict[str, Action] | None = None,
    data: dict[str, Any] | None = None,
    document: bool = True,
    envelope: bool = True,
) -> Subscription:
    return Subscription(
        id="s1",
        resource_id="r1",
        endpoint=Endpoint(url, method, headers or {}, actions or {}),
        delivery=Delivery([200], [500]),
        content=Content(document=document, envelope=envelope),
        data=data,
        secret=None,
        created_at=0,
    )


def build(
    subscription: Subscription,
    action: str = "update",
    revision: int | None = 7,
    document: dict[str, Any] | None = DOC,
    resource: Resource = RESOURCE,
    document_url: str = DOC_URL,
) -> OutgoingRequest:
    return build_request(
        subscription, resource, document_url, action, revision, document, UPDATED_AT
    )


@pytest.mark.parametrize(
    ("subscription", "action", "method"),
    [
        (sub(method="POST"), "update", "POST"),  # §9.2 endpoint.method
        (sub(method=""), "create", "GET"),  # §9.2 empty means GET
        (sub(actions={"delete": Action(method="DELETE")}), "delete", "DELETE"),  # §9.2 action's
        (sub(actions={"delete": Action(method="DELETE")}), "update", "POST"),  # other action
        (sub(actions={"delete": Action(url="http://c/x")}), "delete", "POST"),  # no action method
        (sub(method="", actions={"update": Action(method="PUT")}), "update", "PUT"),  # §9.2
    ],
)
def test_method(subscription: Subscription, action: str, method: str) -> None:
    assert build(subscription, action).method == method


@pytest.mark.parametrize(
    ("subscription", "action", "resource", "document_url", "url"),
    [
        # §9.2 SPEC's example: wildcards filled from the document URL
        (sub(), "update", RESOURCE, DOC_URL, "http://client/feed/123"),
        # §9.2 the action url when set, filled the same way
        (
            sub(actions={"delete": Action(url="http://client/gone/{id}")}),
            "delete",
            RESOURCE,
            DOC_URL,
            "http://client/gone/123",
        ),
        # §9.2 an action without url uses endpoint.url
        (
            sub(actions={"delete": Action(method="DELETE")}),
            "delete",
            RESOURCE,
            DOC_URL,
            "http://client/feed/123",
        ),
        # §9.2 only the action being sent counts
        (
            sub(actions={"delete": Action(url="http://client/gone/{id}")}),
            "create",
            RESOURCE,
            DOC_URL,
            "http://client/feed/123",
        ),
        (sub(url="http://client/hook"), "update", RESOURCE, DOC_URL, "http://client/hook"),
        # §6 several wildcards, by position, anywhere in the subscriber URL
        (
            sub(url="http://client/{order}/x?user={id}"),
            "update",
            Resource("r2", "http://api/users/{id}/orders/{order}", "v", "", 0),
            "http://api/users/7/orders/9",
            "http://client/9/x?user=7",
        ),
        # §6 values are the raw segment text, still URL-safe
        (sub(), "update", RESOURCE, "http://api/users/a%20b", "http://client/feed/a%20b"),
    ],
)
def test_url(
    subscription: Subscription, action: str, resource: Resource, document_url: str, url: str
) -> None:
    assert build(subscription, action, resource=resource, document_url=document_url).url == url


@pytest.mark.parametrize(
    ("subscription", "action", "headers"),
    [
        (sub(), "update", [CT]),  # §9.2 Content-Type added when none is set
        # §9.2 endpoint.headers, each value of each name
        (
            sub(headers={"Authorization": ["Basic x"], "X-Tag": ["a", "b"]}),
            "update",
            [("Authorization", "Basic x"), ("X-Tag", "a"), ("X-Tag", "b"), CT],
        ),
        # §9.2 replaced, not merged, by the action's headers
        (
            sub(headers={"A": ["1"]}, actions={"delete": Action(headers={"B": ["2"]})}),
            "delete",
            [("B", "2"), CT],
        ),
        # §9.2 an action without headers keeps endpoint.headers
        (
            sub(headers={"A": ["1"]}, actions={"delete": Action(method="DELETE")}),
            "delete",
            [("A", "1"), CT],
        ),
        # §9.2 a Content-Type of any case is kept and not doubled
        (sub(headers={"content-type": ["text/plain"]}), "update", [("content-type", "text/plain")]),
        (
            sub(headers={"A": ["1"]}, actions={"create": Action(headers={"CONTENT-TYPE": ["x"]})}),
            "create",
            [("CONTENT-TYPE", "x")],
        ),
        # a name with no value is not sent, so it does not count as set
        (sub(headers={"Content-Type": []}), "update", [CT]),
        # §7 header names are kept as sent
        (sub(headers={"x-lower": ["v"]}), "update", [("x-lower", "v"), CT]),
    ],
)
def test_headers(subscription: Subscription, action: str, headers: list[tuple[str, str]]) -> None:
    assert build(subscription, action).headers == headers


ENVELOPE = {"id": DOC_URL, "action": "update", "updatedAt": "2010-12-10T08:35:08Z"}


@pytest.mark.parametrize(
    ("subscription", "action", "revision", "document", "body"),
    [
        # §9.2 envelope and document by default (§7 step 4); updatedAt RFC 3339 UTC (§12.9)
        (sub(), "update", 7, DOC, {**ENVELOPE, "document": DOC}),
        (sub(), "create", 7, DOC, {**ENVELOPE, "action": "create", "document": DOC}),
        # §9.2 on delete, document is the last stored content
        (sub(), "delete", 7, DOC, {**ENVELOPE, "action": "delete", "document": DOC}),
        # §9.2 document only when content.document is true
        (sub(document=False), "update", 7, DOC, ENVELOPE),
        # §9.2 data with {wildcard} and {revision} filled in strings and lists of strings
        (
            sub(
                data={
                    "service": "user",
                    "id": "{id}",
                    "ref": "u-{ id }@{revision}",
                    "tags": ["{id}", "x", 3, True],
                    "n": 3,
                    "b": False,
                }
            ),
            "update",
            7,
            DOC,
            {
                **ENVELOPE,
                "data": {
                    "service": "user",
                    "id": "123",
                    "ref": "u-123@7",
                    "tags": ["123", "x", 3, True],
                    "n": 3,
                    "b": False,
                },
                "document": DOC,
            },
        ),
        # §6 with no revision known, {revision} stays as it is (SPEC silent)
        (
            sub(data={"rev": "{revision}"}, document=False),
            "delete",
            None,
            None,
            {**ENVELOPE, "action": "delete", "data": {"rev": "{revision}"}},
        ),
        # §7 empty data counts as no data
        (sub(data={}), "update", 7, DOC, {**ENVELOPE, "document": DOC}),
        # §9.2 envelope false: the document itself, on delete the last stored one
        (sub(envelope=False), "update", 7, DOC, DOC),
        (sub(envelope=False), "delete", 7, DOC, DOC),
    ],
)
def test_body(
    subscription: Subscription,
    action: str,
    revision: int | None,
    document: dict[str, Any] | None,
    body: Any,
) -> None:
    raw = build(subscription, action, revision, document).body
    assert orjson.loads(raw) == body
    assert list(orjson.loads(raw)) == list(body)  # §9.2 envelope keys in SPEC's order


def test_envelope_bytes() -> None:
    """§9.2 the exact JSON, compact (orjson)."""
    assert build(sub(data={"id": "{id}"})).body == (
        b'{"id":"http://api/users/123","action":"update","updatedAt":"2010-12-10T08:35:08Z",'
        b'"data":{"id":"123"},"document":{"name":"ana","version":7}}'
    )


def test_subscription_is_never_changed() -> None:
    """§9.2: the stored subscription is never changed by a delivery."""
    subscription = sub(
        headers={"A": ["1"]},
        actions={"delete": Action(headers={"B": ["2"]})},
        data={"id": "{id}", "tags": ["{id}"]},
    )
    before = copy.deepcopy(subscription)
    document = copy.deepcopy(DOC)
    first = build(subscription, "delete", document=document)
    first.headers.append(("X", "y"))
    build(subscription, "update", document=document)
    assert subscription == before
    assert document == DOC
    assert build(subscription, "delete", document=document).headers == [("B", "2"), CT]


def test_unknown_action() -> None:
    with pytest.raises(ValueError):
        build(sub(), "put")  # §9.1 the actions are create, update, delete


# -- SPEC §11a: a filled value cannot change where the request goes ---------------------

@pytest.mark.parametrize(
    ("template", "document_url", "url"),
    [
        ("http://client/feed/{id}", "http://api/users/a%2Fb", "http://client/feed/a%2Fb"),
        ("http://client/feed/{id}", "http://api/users/a%3Fb%23c", "http://client/feed/a%3Fb%23c"),
        ("http://client/feed/{id}", "http://api/users/%C3%A4", "http://client/feed/%C3%A4"),
        ("http://client/feed/{id}", "http://api/users/%25", "http://client/feed/%25"),
        ("http://client/feed/{id}", "http://api/users/...", "http://client/feed/..."),
        ("http://client/feed?u={id}", "http://api/users/a%26b%3Dc", "http://client/feed?u=a%26b%3Dc"),
    ],
)
def test_filled_values_stay_in_their_segment(template: str, document_url: str, url: str) -> None:
    assert build(sub(url=template), document_url=document_url).url == url


@pytest.mark.parametrize(
    ("template", "document_url"),
    [
        ("http://client/feed/{id}", "http://api/users/.."),  # http://client/ otherwise
        ("http://client/feed/{id}", "http://api/users/."),
        ("http://client/feed/{id}", "http://api/users/%2e%2E"),
        ("http://client/feed/{id}.", "http://api/users/."),  # the segment reads '..'
        ("http://1.1.1.1:{id}/x", "http://api/users/80@127.0.0.1:80"),  # stored before the rule
        ("http://{id}.client/x", "http://api/users/a"),
        ("http://client/x#{id}", "http://api/users/a"),
    ],
)
def test_unsafe_fills_are_refused(template: str, document_url: str) -> None:
    with pytest.raises(UnsafeFill):
        build(sub(url=template), document_url=document_url)


def test_forbidden_headers_stored_before_the_rules_are_never_sent() -> None:
    stored = sub(headers={"Transfer-Encoding": ["chunked"], "webhook-signature": ["v1,x"],
                          "Host": ["evil"], "X-Ok": ["1"]})
    assert build(stored).headers == [("X-Ok", "1"), CT]
