"""tables.subscriptions: SPEC §7 and §9.6 rule by rule, the JSON shape and the stored record."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tables.errors import FlareError
from tables.limits import (MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADER_NAMES, MAX_HEADER_VALUE,
                           MAX_HEADER_VALUES, MAX_STATUSES, MAX_URL, MIN_RETRY_DELAY)
from tables.resources import Resource
from tables.subscriptions import (
    Action,
    Content,
    Delivery,
    Endpoint,
    Retry,
    Subscription,
    parse_subscription_body,
    subscription_conflict,
    url_index,
)

PARSE = "error during body parse"
RESOURCE = Resource("r1", "http://api.com/users/{id}/orders/{order}", "updatedAt", "", 0)
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
DROP = object()


def body(**parts: Any) -> dict[str, Any]:
    """A valid body, with top-level parts replaced (or dropped with ``DROP``)."""
    out: dict[str, Any] = {
        "endpoint": {"url": "http://client.com/hooks/{id}", "method": "post"},
        "delivery": {"success": [200], "discard": [500]},
    }
    out.update(parts)
    return {k: v for k, v in out.items() if v is not DROP}


def ep(**parts: Any) -> dict[str, Any]:
    """A valid body with this ``endpoint``."""
    return body(endpoint=parts)


def dl(**parts: Any) -> dict[str, Any]:
    """A valid body with these ``delivery`` parts added."""
    return body(delivery={"success": [200], "discard": [500], **parts})


def parse(raw: dict | bytes, *, public: bool = True, allow_private: bool = False) -> dict:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    return parse_subscription_body(
        data, RESOURCE, is_public_host=lambda host: public, allow_private=allow_private
    )


def invalid(msg: str) -> str:
    return f"invalid body content: {msg}"


def no_url(missing: str) -> str:
    return invalid(
        "invalid endpoint: 'endpoint.url' not found while the "
        f"'endpoint.actions.{missing}.url' is not present"
    )


def cannot(kind: str, path: str, want: str) -> str:
    return f"json: cannot unmarshal {kind} into field '{path}' of type {want}"


URL = "http://client.com/hooks"
ACTS = {"create": {"url": URL + "/c"}, "update": {"url": URL + "/u"}, "delete": {"url": URL + "/d"}}
NOT_AT = "that is not at the resource"

# One row per rule; the first failure wins, so some rows break two rules on purpose.
FAILURES = [
    # §7 step 2: not decodable (headers map names to lists of strings); bad escapes
    ("empty body", b"", "EOF"),
    ("array", b"[]", "json: cannot unmarshal array into an object"),
    ("endpoint string", body(endpoint="x"), cannot("string", "endpoint", "object")),
    ("url number", ep(url=1), cannot("number", "endpoint.url", "string")),
    ("method bool", ep(url=URL, method=True), cannot("bool", "endpoint.method", "string")),
    ("headers list", ep(url=URL, headers=["a"]), cannot("array", "endpoint.headers", "object")),
    ("header value string", ep(url=URL, headers={"Authorization": "Basic x"}),
     cannot("string", "endpoint.headers.Authorization", "array of strings")),
    ("header value numbers", ep(url=URL, headers={"X": [1]}),
     cannot("array", "endpoint.headers.X", "array of strings")),
    ("actions list", ep(url=URL, actions=[]), cannot("array", "endpoint.actions", "object")),
    ("action string", ep(url=URL, actions={"delete": "x"}),
     cannot("string", "endpoint.actions.delete", "object")),
    ("action headers", ep(url=URL, actions={"delete": {"headers": {"X": "y"}}}),
     cannot("string", "endpoint.actions.delete.headers.X", "array of strings")),
    ("delivery list", body(delivery=[]), cannot("array", "delivery", "object")),
    ("success not list", body(delivery={"success": 200, "discard": [500]}),
     cannot("number", "delivery.success", "array")),
    ("success float", body(delivery={"success": [200.5], "discard": [500]}),
     cannot("number", "delivery.success", "array of integers")),
    ("discard string", body(delivery={"success": [200], "discard": ["500"]}),
     cannot("string", "delivery.discard", "array of integers")),
    ("retry list", dl(retry=[]), cannot("array", "delivery.retry", "object")),
    ("retry string", dl(retry={"max": "5s"}), cannot("string", "delivery.retry.max", "number")),
    ("content list", body(content=[]), cannot("array", "content", "object")),
    ("envelope string", body(content={"envelope": "no"}),
     cannot("string", "content.envelope", "bool")),
    ("data list", body(data=[1]), cannot("array", "data", "object")),
    ("secret number", body(secret=1), cannot("number", "secret", "string")),
    ("type error before validation", {"endpoint": {"method": 1}},
     cannot("number", "endpoint.method", "string")),
    ("bad escape", ep(url=URL + "/%zz"),
     'error during endpoint.url unescape: invalid URL escape "%zz"'),
    ("bad action escape", ep(url=URL, actions={"delete": {"url": URL + "/%g1"}}),
     'error during endpoint.actions.delete.url unescape: invalid URL escape "%g1"'),
    # §7 step 3: endpoint url presence
    ("no url no actions", ep(method="post"), invalid("invalid endpoint: 'endpoint.url' not found")),
    ("no endpoint", body(endpoint=DROP), invalid("invalid endpoint: 'endpoint.url' not found")),
    ("no url, create missing", ep(method="post", actions={"update": ACTS["update"]}),
     no_url("create")),
    ("no url, update missing",
     ep(method="post", actions={"delete": ACTS["delete"], "create": ACTS["create"]}),
     no_url("update")),
    ("no url, delete url empty",
     ep(method="post", actions={**ACTS, "delete": {"method": "delete"}}), no_url("delete")),
    ("url presence before methods", ep(method="fetch"),
     invalid("invalid endpoint: 'endpoint.url' not found")),
    # §7 step 3: wildcards in url, then in each action url
    ("url unbalanced", ep(url=URL + "/{id", method="post"),
     invalid("invalid endpoint: invalid wildcard: missing '}'")),
    ("url reserved", ep(url=URL + "/{revision}", method="post"),
     invalid("invalid endpoint: invalid wildcard: 'revision' is a reserved wildcard")),
    ("url unknown wildcard", ep(url=URL + "/{name}", method="post"),
     invalid(f"invalid endpoint: endpoint.url has a wildcard 'name' {NOT_AT}")),
    ("action unbalanced", ep(url=URL, method="post", actions={"delete": {"url": URL + "/}"}}),
     invalid("invalid endpoint: invalid wildcard: missing '{'")),
    ("action unknown wildcard",
     ep(url=URL, method="post", actions={"delete": {"url": URL + "/{x}"}}),
     invalid(f"invalid endpoint: endpoint.delete.url has a wildcard 'x' {NOT_AT}")),
    ("url wildcard before action wildcard",
     ep(url=URL + "/{a}", method="post", actions={"create": {"url": URL + "/{b}"}}),
     invalid(f"invalid endpoint: endpoint.url has a wildcard 'a' {NOT_AT}")),
    ("actions in SPEC order",
     ep(url=URL, method="post",
        actions={"delete": {"url": URL + "/{d}"}, "update": {"url": URL + "/{u}"}}),
     invalid(f"invalid endpoint: endpoint.update.url has a wildcard 'u' {NOT_AT}")),
    ("wildcards before methods", ep(url=URL + "/{x}", method="fetch"),
     invalid(f"invalid endpoint: endpoint.url has a wildcard 'x' {NOT_AT}")),
    # §7 step 3: methods
    ("bad action method", ep(url=URL, method="post", actions={"delete": {"method": "remove"}}),
     invalid("invalid method: invalid endpoint.delete.Method 'REMOVE'")),
    ("bad top method", ep(url=URL, method="fetch"),
     invalid("invalid method: invalid endpoint.Method 'FETCH'")),
    ("action method before top method",
     ep(url=URL, method="fetch", actions={"update": {"method": "x"}}),
     invalid("invalid method: invalid endpoint.update.Method 'X'")),
    ("action without method",
     ep(url=URL, actions={"create": {"method": "put"}, "delete": {"url": URL + "/d"}}),
     invalid("invalid method: 'endpoint.method' not found while the "
             "'endpoint.actions.delete.Method' is not present")),
    ("methods before delivery", body(endpoint={"url": URL, "method": "head"}, delivery={}),
     invalid("invalid method: invalid endpoint.Method 'HEAD'")),
    # §7 step 3: delivery
    ("no success", body(delivery={"success": [], "discard": [500]}),
     invalid("missing delivery.Success")),
    ("no delivery", body(delivery=DROP), invalid("missing delivery.Success")),
    ("no discard", body(delivery={"success": [200]}), invalid("missing delivery.Discard")),
    ("delivery before data", body(delivery={"success": [200]}, data={"k": {}}),
     invalid("missing delivery.Discard")),
    # §7 step 3: data
    ("data without envelope", body(data={"a": "b"}, content={"envelope": False}),
     invalid("could not have data while content.envelope is false")),
    ("empty data without envelope", body(data={}, content={"envelope": False}),
     invalid("could not have data while content.envelope is false")),
    ("data object value", body(data={"a": 1, "k": {"x": 1}}),
     invalid("invalid data content at key 'k'")),
    ("data null value", body(data={"k": None}), invalid("invalid data content at key 'k'")),
    ("data nested list", body(data={"k": [1, [2]]}), invalid("invalid data content at key 'k'")),
    ("data unknown wildcard", body(data={"svc": "user", "who": "{id}-{name}"}),
     invalid(f"data.'who' has a wildcard 'name' {NOT_AT}")),
    ("data types before wildcards", body(data={"w": "{name}", "k": {}}),
     invalid("invalid data content at key 'k'")),
    # Extensions, after every rule of the original service
    ("unknown action", ep(url=URL, method="post", actions={"remove": {"method": "delete"}}),
     invalid("invalid endpoint: unknown action 'remove', expected create, update or delete")),
    ("url without scheme", ep(url="client.com/hooks", method="post"),
     invalid("invalid endpoint: endpoint.url 'client.com/hooks' "
             "is not an absolute http or https URL")),
    ("url other scheme", ep(url="ftp://client.com/x", method="post"),
     invalid("invalid endpoint: endpoint.url 'ftp://client.com/x' "
             "is not an absolute http or https URL")),
    ("action url without host",
     ep(url=URL, method="post", actions={"delete": {"url": "http:///d"}}),
     invalid("invalid endpoint: endpoint.delete.url 'http:///d' "
             "is not an absolute http or https URL")),
    ("bad header name", ep(url=URL, method="post", headers={"Bad Name": ["x"]}),
     invalid("invalid endpoint: endpoint.headers has an invalid header 'Bad Name'")),
    ("bad header value",
     ep(url=URL, method="post", actions={"delete": {"headers": {"X": ["a\r\nb"]}}}),
     invalid("invalid endpoint: endpoint.delete.headers.X has a value that is not printable ASCII")),
    # §11a outbound header rules and bounds
    *[(f"forbidden header {name}", ep(url=URL, method="post", headers={name: ["x"]}),
       invalid(f"invalid endpoint: endpoint.headers may not set '{name}' (Flare sets it, or it "
               "changes the request's framing)"))
      for name in ("Host", "content-length", "Transfer-Encoding", "Connection", "Upgrade",
                   "Expect", "TE", "Trailer", "Keep-Alive", "Proxy-Authorization",
                   "webhook-signature", "Webhook-Id")],
    ("forbidden header in an action",
     ep(url=URL, method="post", actions={"delete": {"headers": {"Host": ["evil"]}}}),
     invalid("invalid endpoint: endpoint.delete.headers may not set 'Host' (Flare sets it, or it "
             "changes the request's framing)")),
    ("non-ascii header value", ep(url=URL, method="post", headers={"X": ["caf\u00e9"]}),
     invalid("invalid endpoint: endpoint.headers.X has a value that is not printable ASCII")),
    ("tab in header value", ep(url=URL, method="post", headers={"X": ["a\tb"]}),
     invalid("invalid endpoint: endpoint.headers.X has a value that is not printable ASCII")),
    ("too many header names",
     ep(url=URL, method="post", headers={f"X-{n}": ["v"] for n in range(MAX_HEADER_NAMES + 1)}),
     invalid(f"invalid endpoint: endpoint.headers has more than {MAX_HEADER_NAMES} names")),
    ("too many header values",
     ep(url=URL, method="post", headers={"X": ["v"] * (MAX_HEADER_VALUES + 1)}),
     invalid(f"invalid endpoint: endpoint.headers.X has more than {MAX_HEADER_VALUES} values")),
    ("long header name", ep(url=URL, method="post", headers={"X" * (MAX_HEADER_NAME + 1): ["v"]}),
     invalid(f"invalid endpoint: endpoint.headers has a name longer than {MAX_HEADER_NAME}")),
    ("long header value", ep(url=URL, method="post", headers={"X": ["v" * (MAX_HEADER_VALUE + 1)]}),
     invalid(f"invalid endpoint: endpoint.headers.X has a value longer than {MAX_HEADER_VALUE}")),
    ("headers too large in total",
     ep(url=URL, method="post", headers={f"X-{n}": ["v" * 4000] * 2 for n in range(3)}),
     invalid(f"invalid endpoint: endpoint.headers longer than {MAX_HEADER_BYTES} bytes in total")),
    # §11a URLs: bounded, no control characters, wildcards only in the path (or query)
    ("long url", ep(url="http://client.com/" + "a" * MAX_URL, method="post"),
     invalid(f"invalid endpoint: endpoint.url longer than {MAX_URL}")),
    ("long action url",
     ep(url=URL, method="post", actions={"delete": {"url": "http://c.com/" + "a" * MAX_URL}}),
     invalid(f"invalid endpoint: endpoint.actions.delete.url longer than {MAX_URL}")),
    ("control character in url", ep(url="http://client.com/a%0d%0aX:%20y", method="post"),
     invalid("invalid endpoint: endpoint.url has a control character")),
    ("nul in url", ep(url="http://client.com/a%00", method="post"),
     invalid("invalid endpoint: endpoint.url has a control character")),
    *[(f"wildcard in the {part}", ep(url=url, method="post"),
       invalid("invalid endpoint: endpoint.url may have wildcards only in its path or query, "
               "not in its scheme, user info, host, port or fragment"))
      for part, url in (("port", "http://1.1.1.1:{id}/x"), ("host", "http://{id}.client.com/x"),
                        ("user info", "http://{id}@client.com/x"),
                        ("fragment", "http://client.com/x#{id}"))],
    ("wildcard in an action's port",
     ep(url=URL, method="post", actions={"delete": {"url": "http://c.com:{order}/x"}}),
     invalid("invalid endpoint: endpoint.delete.url may have wildcards only in its path or query, "
             "not in its scheme, user info, host, port or fragment")),
    # §11a statuses and retry bounds
    ("status out of range", dl(success=[200, 1000]),
     invalid("invalid delivery.success: '1000' is not an HTTP status (100 to 599)")),
    ("too many statuses", dl(discard=[500] * (MAX_STATUSES + 1)),
     invalid(f"invalid delivery.discard: more than {MAX_STATUSES} statuses")),
    ("retry initial too small", dl(retry={"initial": 0.01}),
     invalid(f"invalid delivery.retry: 'initial' should be at least {MIN_RETRY_DELAY} seconds")),
    ("retry max too small", dl(retry={"max": 1e-9}),
     invalid(f"invalid delivery.retry: 'max' should be at least {MIN_RETRY_DELAY} seconds")),
    # §9.6 secret: whsec_ + base64 of 24-64 bytes
    ("secret without prefix", body(secret=base64.b64encode(bytes(32)).decode()),
     invalid("invalid secret")),
    ("secret empty", body(secret=""), invalid("invalid secret")),
    ("secret not base64", body(secret="whsec_not*base64!"), invalid("invalid secret")),
    ("secret 23 bytes", body(secret="whsec_" + base64.b64encode(bytes(23)).decode()),
     invalid("invalid secret")),
    ("secret 65 bytes", body(secret="whsec_" + base64.b64encode(bytes(65)).decode()),
     invalid("invalid secret")),
    # §9.6 delivery.retry
    ("retry zero", dl(retry={"initial": 0}),
     invalid("invalid delivery.retry: 'initial' should be a positive number of seconds")),
    ("retry negative", dl(retry={"giveUpAfter": -1}),
     invalid("invalid delivery.retry: 'giveUpAfter' should be a positive number of seconds")),
    ("retry initial over max", dl(retry={"initial": 10, "max": 5}),
     invalid("invalid delivery.retry: 'initial' should not be greater than 'max'")),
]


@pytest.mark.parametrize(("raw", "detail"), [r[1:] for r in FAILURES], ids=[r[0] for r in FAILURES])
def test_parse_subscription_body_failures(raw: dict | bytes, detail: str) -> None:
    with pytest.raises(FlareError) as info:
        parse(raw, allow_private=True)
    assert (info.value.status, info.value.title, info.value.detail) == (400, PARSE, detail)


@pytest.mark.parametrize("raw", [b"{", b'{"endpoint": {"url": }}', b"nul"])
def test_parse_subscription_body_decoder_error(raw: bytes) -> None:
    with pytest.raises(FlareError) as info:
        parse(raw)
    assert (info.value.status, info.value.title) == (400, PARSE)
    assert info.value.detail and info.value.detail != "EOF"


PRIVATE = [
    # §7 step 3 (extension): every subscriber host must be public unless configured otherwise
    ("top-level host", body(), "client.com"),
    ("action host",
     ep(url=URL, method="post", actions={"delete": {"url": "http://10.0.0.1:8080/d"}}),
     "10.0.0.1"),
    ("ipv6 host", ep(url="http://[::1]:9000/h", method="post"), "::1"),
]


def parse_with(raw: dict, is_public: Callable[[str], bool], allow_private: bool = False) -> dict:
    return parse_subscription_body(
        orjson.dumps(raw), RESOURCE, is_public_host=is_public, allow_private=allow_private
    )


@pytest.mark.parametrize(("raw", "host"), [r[1:] for r in PRIVATE], ids=[r[0] for r in PRIVATE])
def test_private_address_is_refused(raw: dict, host: str) -> None:
    with pytest.raises(FlareError) as info:
        parse_with(raw, lambda h: h != host)
    assert (info.value.status, info.value.title) == (400, PARSE)
    assert info.value.detail == invalid(f"invalid endpoint: '{host}' is not a public address")


def test_private_address_check_comes_last() -> None:
    with pytest.raises(FlareError) as info:
        parse(body(secret="bad"), public=False)
    assert info.value.detail == invalid("invalid secret")


def test_private_address_allowed_by_configuration_never_resolves() -> None:
    def never(host: str) -> bool:
        raise AssertionError("resolver called")

    fields = parse_with(body(), never, allow_private=True)
    assert fields["endpoint"].url == "http://client.com/hooks/{id}"


def test_each_host_is_resolved_once() -> None:
    asked: list[str] = []

    def is_public(host: str) -> bool:
        asked.append(host)
        return True

    actions = {"create": {"url": "http://b.com/c"}, "delete": {"url": "http://a.com/d"}}
    parse_with(ep(url="http://a.com/x", method="post", actions=actions), is_public)
    assert asked == ["a.com", "b.com"]


def test_parse_defaults() -> None:
    # §7 steps 3-4: methods upper-cased; content defaults to true; nothing optional invented
    fields = parse(body())
    assert fields == {
        "endpoint": Endpoint("http://client.com/hooks/{id}", "POST", {}, {}),
        "delivery": Delivery([200], [500], None),
        "content": Content(document=True, envelope=True),
        "data": None,
        "secret": None,
    }


def test_parse_full_example() -> None:
    # The example body of SPEC §7, with the §9.6 extensions.
    raw = {
        "id": "ignored",
        "unknown": True,
        "endpoint": {
            "url": "http://client/wishlist/{id}",
            "method": "post",
            "headers": {"Authorization": ["Basic abc"], "x-Trace": ["1", "2"]},
            "actions": {"delete": {"method": "delete"}, "update": {}},
        },
        "delivery": {"success": [200, 201], "discard": [500],
                     "retry": {"initial": 0.5, "max": 60, "giveUpAfter": 3600}},
        "content": {"envelope": True, "document": False},
        "data": {"service": "user", "id": "{id}", "rev": "{revision}", "n": 1.5,
                 "tags": ["a", 1, True]},
        "secret": SECRET,
    }
    fields = parse(raw)
    assert fields["endpoint"] == Endpoint(
        "http://client/wishlist/{id}",
        "POST",
        {"Authorization": ["Basic abc"], "x-Trace": ["1", "2"]},
        {"delete": Action("", "DELETE", {})},  # the empty "update" action is dropped
    )
    assert fields["delivery"] == Delivery([200, 201], [500], Retry(0.5, 60, 3600))
    assert fields["content"] == Content(document=False, envelope=True)
    assert fields["data"] == raw["data"]
    assert fields["secret"] == SECRET


NORMALISED = [
    ("trimmed, braces tightened, slash kept",
     " http://client.com/h/{ id }/ ", "http://client.com/h/{id}/"),
    ("percent-decoded", "http://client.com/h/%7Bid%7D", "http://client.com/h/{id}"),
    ("plus is space", "http://client.com/a+b", "http://client.com/a b"),
    ("resource wildcards, repeated",
     "http://client.com/{order}/{id}/{id}", "http://client.com/{order}/{id}/{id}"),
]


@pytest.mark.parametrize(("url", "stored"), [r[1:] for r in NORMALISED],
                         ids=[r[0] for r in NORMALISED])
def test_parse_normalises_urls(url: str, stored: str) -> None:
    fields = parse(ep(url=url, method="get", actions={"delete": {"url": url, "method": "delete"}}))
    assert fields["endpoint"].url == stored
    assert fields["endpoint"].actions["delete"].url == stored


def test_parse_only_action_urls() -> None:
    fields = parse(ep(actions={n: a | {"method": "put"} for n, a in ACTS.items()}))
    assert fields["endpoint"].url == ""
    assert fields["endpoint"].urls == [URL + "/c", URL + "/u", URL + "/d"]


@pytest.mark.parametrize(("method", "stored"), [
    ("", ""),  # §9.2: empty means GET at delivery; stored as sent
    ("get", "GET"),
    ("Patch", "PATCH"),
    ("DELETE", "DELETE"),
])
def test_parse_methods(method: str, stored: str) -> None:
    assert parse(ep(url=URL, method=method))["endpoint"].method == stored


@pytest.mark.parametrize(("retry", "policy"), [
    ({}, None),
    ({"max": 30}, Retry(None, 30, None)),
    ({"initial": 2, "max": 2}, Retry(2, 2, None)),
])
def test_parse_retry(retry: dict, policy: Retry | None) -> None:
    assert parse(dl(retry=retry))["delivery"].retry == policy


@pytest.mark.parametrize("size", [24, 64])
def test_parse_secret_bounds(size: int) -> None:
    secret = "whsec_" + base64.b64encode(bytes(size)).decode()
    assert parse(body(secret=secret))["secret"] == secret


def test_parse_empty_data_is_none() -> None:
    assert parse(body(data={}))["data"] is None
    assert parse(body(data=None, content={"envelope": False}))["data"] is None


def test_data_may_hold_stray_braces() -> None:
    # Only well-formed {name} are wildcards in data; fill leaves the rest as text (§6).
    assert parse(body(data={"note": "a } b { c"}))["data"] == {"note": "a } b { c"}


def sub(sid: str = "s1", *, url: str = URL, actions: dict | None = None, **kw: Any) -> Subscription:
    fields: dict[str, Any] = {
        "endpoint": Endpoint(url, "POST", {}, actions or {}),
        "delivery": Delivery([200], [500]),
        "content": Content(),
        "data": None,
        "secret": None,
    }
    fields.update(kw)
    return Subscription(id=sid, resource_id="r1", created_at=1291970108, **fields)


ACTION_D = {"delete": Action("http://c.com/d")}
CONFLICTS = [
    # §7 step 5: any url of the new one against any url (top-level or action) of another
    ("same url", [URL], sub(), URL),
    ("new action url against url", ["http://other.com/x", URL], sub(), URL),
    ("new url against action url", ["http://c.com/d"], sub(actions=ACTION_D), "http://c.com/d"),
    ("different", ["http://other.com/x"], sub(actions=ACTION_D), None),
    ("trailing slash differs", [URL + "/"], sub(), None),
]


@pytest.mark.parametrize(("new", "existing", "url"), [r[1:] for r in CONFLICTS],
                         ids=[r[0] for r in CONFLICTS])
def test_subscription_conflict(new: list[str], existing: Subscription, url: str | None) -> None:
    found = subscription_conflict(new, url_index([sub("s0", url="http://zzz.com/"), existing]))
    assert found == (None if url is None else (existing, url))


def test_subscription_conflict_none_existing() -> None:
    assert subscription_conflict([URL], {}) is None


def test_subscription_conflict_first_taken_url_of_the_new_one_wins() -> None:
    # Several urls taken by different subscriptions: the new one's top-level url first.
    a, b = sub("a", url="http://a.com/"), sub("b", url="http://b.com/")
    assert subscription_conflict(["http://b.com/", "http://a.com/"], url_index([a, b])) == (b, "http://b.com/")


def test_url_index_has_action_urls() -> None:
    s = sub(actions=ACTION_D)
    assert url_index([s]) == {URL: s, "http://c.com/d": s}


def test_subscription_json_minimal() -> None:
    # §7: absent or empty optional parts are left out
    s = sub(endpoint=Endpoint(URL, "", {}, {"delete": Action()}))
    assert s.to_json() == {
        "id": "s1",
        "endpoint": {"url": URL},
        "delivery": {"success": [200], "discard": [500]},
        "content": {"document": True, "envelope": True},
        "createdAt": "2010-12-10T08:35:08Z",
    }


def test_subscription_json_full() -> None:
    actions = {"delete": Action("", "DELETE", {}), "update": Action(URL + "/u", "", {"x-A": ["1"]})}
    s = sub(
        endpoint=Endpoint(URL + "/{id}", "POST", {"Authorization": ["Basic x"]}, actions),
        delivery=Delivery([200], [404, 500], Retry(None, 60, 3600)),
        content=Content(document=False, envelope=True),
        data={"service": "user", "id": "{id}"},
        secret=SECRET,
    )
    assert s.to_json() == {
        "id": "s1",
        "endpoint": {
            "url": URL + "/{id}",
            "method": "POST",
            "headers": {"Authorization": ["Basic x"]},  # names kept as sent
            "actions": {
                "delete": {"method": "DELETE"},
                "update": {"url": URL + "/u", "headers": {"x-A": ["1"]}},
            },
        },
        "delivery": {
            "success": [200],
            "discard": [404, 500],
            "retry": {"max": 60, "giveUpAfter": 3600},  # §9.6: only what the client gave
        },
        "content": {"document": False, "envelope": True},
        "data": {"service": "user", "id": "{id}"},
        "createdAt": "2010-12-10T08:35:08Z",
    }
    # §9.6: the secret is never returned
    assert SECRET not in orjson.dumps(s.to_json()).decode()


def test_parsed_fields_build_a_subscription() -> None:
    s = Subscription(id="s9", resource_id="r1", created_at=0, **parse(body(secret=SECRET)))
    assert s.to_json()["endpoint"] == {"url": "http://client.com/hooks/{id}", "method": "POST"}
    assert s.secret == SECRET and "secret" not in s.to_json()


FULL = sub(
    secret=SECRET,
    data={"a": [1, "x", True], "b": 2.5},
    content=Content(False, True),
    delivery=Delivery([200, 204], [500], Retry(1, 300, None)),
    actions={
        "create": Action(URL + "/c", "PUT", {"X": ["1", "2"]}),
        "delete": Action("", "DELETE"),
    },
)


@pytest.mark.parametrize("s", [sub(), FULL], ids=["minimal", "full"])
def test_subscription_record_round_trip(s: Subscription) -> None:
    record = orjson.loads(orjson.dumps(s.to_record()))
    assert record["v"] == 1
    assert record["secret"] == s.secret
    assert Subscription.from_record(record) == s


def test_subscription_record_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        Subscription.from_record(sub().to_record() | {"v": 0})


@pytest.mark.parametrize("raw", [
    ep(url="http://client.com/hooks/{id}?order={order}", method="post"),  # query values: encoded
    ep(url=URL, method="post", headers={"Authorization": ["Bearer x"], "X-Tag": ["a b ~"]}),
    ep(url=URL, method="post", headers={f"X-{n}": ["v"] for n in range(MAX_HEADER_NAMES)}),
    dl(retry={"initial": MIN_RETRY_DELAY, "max": MIN_RETRY_DELAY}),
    dl(success=[100, 599]),
], ids=["query wildcard", "ordinary headers", "header names at the bound", "retry at the bound",
        "status bounds"])
def test_bounds_accept_what_is_within_them(raw: dict) -> None:
    assert parse(raw)["endpoint"]
