"""Issue: subscriptions API. SPEC §7 (and §2, §6 wildcards) against a real `flare start`:
every step in order with its exact detail, method upper-casing, defaults, the JSON shape,
conflicts on any shared url, 404s, and the non-public address rule."""

from __future__ import annotations

import base64
import copy
import uuid
from datetime import datetime, timezone

import pytest

from tests.flare_process import FlareProcess, unique_name

pytestmark = pytest.mark.integration

PARSE = "error during body parse"


def err(title: str, detail: str) -> dict:
    return {"error": {"title": title, "detail": detail}}


def invalid(msg: str) -> dict:
    return err(PARSE, f"invalid body content: {msg}")


def assert_json(response, status: int, body: dict) -> None:
    assert (response.status_code, response.json()) == (status, body), response.text
    assert response.headers["content-type"] == "application/json"


def new_resource(flare, path: str = "/users/{id}/orders/{order}") -> str:
    answer = flare.post("/resources", json={"endpoint": f"http://{unique_name('api')}.test{path}",
                                            "change": {"field": "version"}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


@pytest.fixture(scope="module")
def rid(flare) -> str:
    """A resource with the wildcards `id` and `order`, for the validation tables."""
    return new_resource(flare)


def valid(**overrides) -> dict:
    body = {"endpoint": {"url": f"http://client.test/{unique_name('hook')}/{{id}}", "method": "post"},
            "delivery": {"success": [200], "discard": [500]}}
    body.update(overrides)
    return body


def post(flare, resource_id: str, body) -> object:
    path = f"/resources/{resource_id}/subscriptions"
    if isinstance(body, (bytes, str)):
        return flare.post(path, content=body)
    return flare.post(path, json=body)


# -- step 1: the resource -------------------------------------------------------------

@pytest.mark.parametrize("resource_id", [str(uuid.uuid4()), "nope"])
@pytest.mark.parametrize("body", [valid(), b"", b"not json", {"endpoint": 1}])
def test_unknown_resource_is_404_before_the_body(flare, resource_id, body):
    assert_json(post(flare, resource_id, body), 404,
                err("error during resource search", f"resource '{resource_id}' not found"))


def test_deleted_resource_is_404(flare):
    gone = new_resource(flare)
    assert flare.delete(f"/resources/{gone}").status_code == 204
    assert_json(post(flare, gone, valid()), 404,
                err("error during resource search", f"resource '{gone}' not found"))


# -- step 2: decoding -----------------------------------------------------------------

@pytest.mark.parametrize("body, detail", [
    (b"", "EOF"),
    (b"[]", "json: cannot unmarshal array into an object"),
    (b'"x"', "json: cannot unmarshal string into an object"),
    ({"endpoint": "http://client.test/x"}, "json: cannot unmarshal string into field 'endpoint' of type object"),
    ({"endpoint": {"url": 1}}, "json: cannot unmarshal number into field 'endpoint.url' of type string"),
    ({"endpoint": {"url": "http://c.test/x", "method": ["post"]}},
     "json: cannot unmarshal array into field 'endpoint.method' of type string"),
    ({"endpoint": {"url": "http://c.test/x", "headers": ["a"]}},
     "json: cannot unmarshal array into field 'endpoint.headers' of type object"),
    ({"endpoint": {"url": "http://c.test/x", "headers": {"Authorization": "Basic abc"}}},
     "json: cannot unmarshal string into field 'endpoint.headers.Authorization' of type array of strings"),
    ({"endpoint": {"url": "http://c.test/x", "headers": {"X-N": [1]}}},
     "json: cannot unmarshal array into field 'endpoint.headers.X-N' of type array of strings"),
    ({"endpoint": {"url": "http://c.test/x", "actions": {"delete": {"headers": {"A": "b"}}}}},
     "json: cannot unmarshal string into field 'endpoint.actions.delete.headers.A' of type array of strings"),
    ({"endpoint": {"url": "http://c.test/x", "actions": []}},
     "json: cannot unmarshal array into field 'endpoint.actions' of type object"),
    ({"endpoint": {"url": "http://c.test/x", "actions": {"delete": "x"}}},
     "json: cannot unmarshal string into field 'endpoint.actions.delete' of type object"),
    ({"endpoint": {"url": "http://c.test/x"}, "delivery": {"success": "200"}},
     "json: cannot unmarshal string into field 'delivery.success' of type array"),
    ({"endpoint": {"url": "http://c.test/x"}, "delivery": {"success": ["200"]}},
     "json: cannot unmarshal string into field 'delivery.success' of type array of integers"),
    ({"endpoint": {"url": "http://c.test/x"}, "delivery": {"success": [200], "discard": [True]}},
     "json: cannot unmarshal bool into field 'delivery.discard' of type array of integers"),
    ({"endpoint": {"url": "http://c.test/x"}, "content": {"envelope": "yes"}},
     "json: cannot unmarshal string into field 'content.envelope' of type bool"),
    ({"endpoint": {"url": "http://c.test/x"}, "content": {"document": 1}},
     "json: cannot unmarshal number into field 'content.document' of type bool"),
    ({"endpoint": {"url": "http://c.test/x"}, "data": ["a"]},
     "json: cannot unmarshal array into field 'data' of type object"),
    # Decoding comes before every step-3 rule: no url, no delivery, but a type error.
    ({"endpoint": {"headers": {"A": "b"}}},
     "json: cannot unmarshal string into field 'endpoint.headers.A' of type array of strings"),
    # Bad escapes in urls: same title.
    ({"endpoint": {"url": "http://c.test/%zz/{id}"}},
     "error during endpoint.url unescape: invalid URL escape \"%zz\""),
    ({"endpoint": {"url": "http://c.test/x", "actions": {"delete": {"url": "http://c.test/%g"}}}},
     "error during endpoint.actions.delete.url unescape: invalid URL escape \"%g\""),
])
def test_body_not_decodable(flare, rid, body, detail):
    assert_json(post(flare, rid, body), 400, err(PARSE, detail))


# -- step 3: validation, in order -----------------------------------------------------

D = {"success": [200], "discard": [500]}
ALL_ACTIONS = {"create": {"url": "http://c.test/c/{id}", "method": "post"},
               "update": {"url": "http://c.test/u/{id}", "method": "put"},
               "delete": {"url": "http://c.test/d/{id}", "method": "delete"}}


def without(name: str) -> dict:
    actions = copy.deepcopy(ALL_ACTIONS)
    del actions[name]
    return actions


def url_less(name: str) -> dict:
    actions = copy.deepcopy(ALL_ACTIONS)
    del actions[name]["url"]
    return actions


@pytest.mark.parametrize("body, msg", [
    # url presence
    ({"delivery": D}, "invalid endpoint: 'endpoint.url' not found"),
    ({"endpoint": {}, "delivery": D}, "invalid endpoint: 'endpoint.url' not found"),
    ({"endpoint": {"url": "", "method": "post"}, "delivery": D}, "invalid endpoint: 'endpoint.url' not found"),
    ({"endpoint": {"url": "   "}, "delivery": D}, "invalid endpoint: 'endpoint.url' not found"),
    ({"endpoint": {"actions": {}}}, "invalid endpoint: 'endpoint.url' not found"),  # before delivery
    ({"endpoint": {"actions": without("create")}, "delivery": D},
     "invalid endpoint: 'endpoint.url' not found while the 'endpoint.actions.create.url' is not present"),
    ({"endpoint": {"actions": without("update")}, "delivery": D},
     "invalid endpoint: 'endpoint.url' not found while the 'endpoint.actions.update.url' is not present"),
    ({"endpoint": {"actions": without("delete")}, "delivery": D},
     "invalid endpoint: 'endpoint.url' not found while the 'endpoint.actions.delete.url' is not present"),
    ({"endpoint": {"actions": url_less("update")}, "delivery": D},
     "invalid endpoint: 'endpoint.url' not found while the 'endpoint.actions.update.url' is not present"),
    ({"endpoint": {"actions": {"delete": ALL_ACTIONS["delete"]}}, "delivery": D},  # create first
     "invalid endpoint: 'endpoint.url' not found while the 'endpoint.actions.create.url' is not present"),
    # wildcards: structure, then names the resource lacks; url first, then each action url
    ({"endpoint": {"url": "http://c.test/{id"}, "delivery": D},
     "invalid endpoint: invalid wildcard: missing '}'"),
    ({"endpoint": {"url": "http://c.test/id}"}, "delivery": D},
     "invalid endpoint: invalid wildcard: missing '{'"),
    ({"endpoint": {"url": "http://c.test/{a{b}"}, "delivery": D},
     "invalid endpoint: invalid wildcard: found a '{' inside a wildcard"),
    ({"endpoint": {"url": "http://c.test/{ }"}, "delivery": D},
     "invalid endpoint: invalid wildcard: missing the wildcard id"),
    ({"endpoint": {"url": "http://c.test/{id}{order}"}, "delivery": D},
     "invalid endpoint: invalid wildcard: there must be at least one char between wildcard"),
    ({"endpoint": {"url": "http://c.test/{revision}"}, "delivery": D},
     "invalid endpoint: invalid wildcard: 'revision' is a reserved wildcard"),
    ({"endpoint": {"url": "http://c.test/{name}"}, "delivery": D},
     "invalid endpoint: endpoint.url has a wildcard 'name' that is not at the resource"),
    ({"endpoint": {"url": "http://c.test/{id}/{order}/{ user }"}, "delivery": D},
     "invalid endpoint: endpoint.url has a wildcard 'user' that is not at the resource"),
    ({"endpoint": {"url": "http://c.test/{id}",
                   "actions": {"delete": {"url": "http://c.test/d/{x", "method": "delete"}}}, "delivery": D},
     "invalid endpoint: invalid wildcard: missing '}'"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "post",
                   "actions": {"delete": {"url": "http://c.test/d/{x}"}}}, "delivery": D},
     "invalid endpoint: endpoint.delete.url has a wildcard 'x' that is not at the resource"),
    ({"endpoint": {"url": "http://c.test/{bad}",  # url before actions
                   "actions": {"create": {"url": "http://c.test/d/{x"}}}, "delivery": D},
     "invalid endpoint: endpoint.url has a wildcard 'bad' that is not at the resource"),
    ({"endpoint": {"actions": {"create": {"url": "http://c.test/c/{ok}", "method": "post"},  # create first
                               "update": {"url": "http://c.test/u/{id}", "method": "put"},
                               "delete": {"url": "http://c.test/d/{no}", "method": "delete"}}}, "delivery": D},
     "invalid endpoint: endpoint.create.url has a wildcard 'ok' that is not at the resource"),
    ({"endpoint": {"url": "http://c.test/{nope}", "method": "fetch"}},  # wildcards before methods
     "invalid endpoint: endpoint.url has a wildcard 'nope' that is not at the resource"),
    # methods: actions first, then top-level, then an action lacking one
    ({"endpoint": {"url": "http://c.test/{id}", "method": "fetch"}, "delivery": D},
     "invalid method: invalid endpoint.Method 'FETCH'"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "HEAD"}, "delivery": D},
     "invalid method: invalid endpoint.Method 'HEAD'"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": " post"}, "delivery": D},
     "invalid method: invalid endpoint.Method ' POST'"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "post",
                   "actions": {"delete": {"method": "remove"}}}, "delivery": D},
     "invalid method: invalid endpoint.delete.Method 'REMOVE'"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "fetch",  # actions before top-level
                   "actions": {"update": {"method": "options"}}}, "delivery": D},
     "invalid method: invalid endpoint.update.Method 'OPTIONS'"),
    ({"endpoint": {"url": "http://c.test/{id}", "actions": {"delete": {"url": "http://c.test/d/{id}"}}},
      "delivery": D},
     "invalid method: 'endpoint.method' not found while the 'endpoint.actions.delete.Method' is not present"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "",
                   "actions": {"update": {"headers": {"A": ["b"]}}}}, "delivery": D},
     "invalid method: 'endpoint.method' not found while the 'endpoint.actions.update.Method' is not present"),
    ({"endpoint": {"url": "http://c.test/{id}", "method": "fetch"}},  # methods before delivery
     "invalid method: invalid endpoint.Method 'FETCH'"),
    # delivery
    ({"endpoint": {"url": "http://c.test/{id}"}}, "missing delivery.Success"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": {}}, "missing delivery.Success"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": {"success": [], "discard": [500]}},
     "missing delivery.Success"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": {"success": [200]}}, "missing delivery.Discard"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": {"success": [200], "discard": []},
      "data": {"x": {}}},  # delivery before data
     "missing delivery.Discard"),
    # data
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "content": {"envelope": False},
      "data": {"service": "user"}},
     "could not have data while content.envelope is false"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "content": {"envelope": False},
      "data": {"bad": {"nested": 1}}},  # envelope first
     "could not have data while content.envelope is false"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"ok": "x", "bad": {"nested": 1}}},
     "invalid data content at key 'bad'"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"bad": [1, {"a": 2}]}},
     "invalid data content at key 'bad'"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"bad": [[1]]}},
     "invalid data content at key 'bad'"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"bad": None}},
     "invalid data content at key 'bad'"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"w": "{name}", "bad": {}}},
     "invalid data content at key 'bad'"),  # content before wildcards
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"svc": "user-{name}"}},
     "data.'svc' has a wildcard 'name' that is not at the resource"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "data": {"svc": "{ name }"}},
     "data.'svc' has a wildcard 'name' that is not at the resource"),
    # extensions (SPEC §9.6): the secret
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D, "secret": "nope"}, "invalid secret"),
    ({"endpoint": {"url": "http://c.test/{id}"}, "delivery": D,
      "secret": "whsec_" + base64.b64encode(b"x" * 23).decode()}, "invalid secret"),
])
def test_invalid_body_content(flare, rid, body, msg):
    assert_json(post(flare, rid, body), 400, invalid(msg))


# -- steps 4 and 6: defaults, the 201 and the JSON shape ------------------------------

def _created_at_ok(text: str, before: datetime, after: datetime) -> bool:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return before.replace(microsecond=0) <= moment <= after


def test_full_subscription_json(flare, rid):
    url = f"http://client.test/{unique_name('wish')}/{{id}}"
    before = datetime.now(timezone.utc)
    answer = post(flare, rid, {
        "id": "mine",
        "endpoint": {"url": url, "method": "post",
                     "headers": {"Authorization": ["Basic abc"], "x-Custom-HEADER": ["a", "b"]},
                     "actions": {"delete": {"method": "delete"},
                                 "update": {"url": f"{url}/u", "method": "Patch",
                                            "headers": {"content-type": ["text/plain"]}}}},
        "delivery": {"success": [200, 201, 204], "discard": [500, 404]},
        "content": {"envelope": True, "document": True},
        "data": {"service": "user", "id": "{id}", "rev": "{revision}", "n": 1.5, "on": False,
                 "list": ["a", 2, True]},
        "unknown": {"ignored": True}})
    after = datetime.now(timezone.utc)
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    sid = body["id"]
    assert sid != "mine" and uuid.UUID(sid).version == 4
    assert answer.headers["location"] == f"/resources/{rid}/subscriptions/{sid}"
    assert body == {
        "id": sid,
        "endpoint": {"url": url, "method": "POST",
                     "headers": {"Authorization": ["Basic abc"], "x-Custom-HEADER": ["a", "b"]},
                     "actions": {"delete": {"method": "DELETE"},
                                 "update": {"url": f"{url}/u", "method": "PATCH",
                                            "headers": {"content-type": ["text/plain"]}}}},
        "delivery": {"success": [200, 201, 204], "discard": [500, 404]},
        "content": {"document": True, "envelope": True},
        "data": {"service": "user", "id": "{id}", "rev": "{revision}", "n": 1.5, "on": False,
                 "list": ["a", 2, True]},
        "createdAt": body["createdAt"],
    }
    assert _created_at_ok(body["createdAt"], before, after), body["createdAt"]
    assert_json(flare.get(f"/resources/{rid}/subscriptions/{sid}"), 200, body)
    listed = flare.get(f"/resources/{rid}/subscriptions", params={"limit": 1000}).json()
    assert body in listed["subscriptions"]


def test_minimal_subscription_leaves_optional_parts_out(flare, rid):
    url = f"http://client.test/{unique_name('min')}"
    answer = post(flare, rid, {"endpoint": {"url": url, "headers": {}, "actions": {}},
                               "delivery": {"success": [200], "discard": [500]}, "data": {}})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    # No method (empty means GET at delivery), headers, actions or data; defaults true.
    assert body == {"id": body["id"], "endpoint": {"url": url},
                    "delivery": {"success": [200], "discard": [500]},
                    "content": {"document": True, "envelope": True},
                    "createdAt": body["createdAt"]}


@pytest.mark.parametrize("content, expected", [
    (None, {"document": True, "envelope": True}),
    ({}, {"document": True, "envelope": True}),
    ({"document": False}, {"document": False, "envelope": True}),
    ({"envelope": False}, {"document": True, "envelope": False}),
    ({"document": False, "envelope": False}, {"document": False, "envelope": False}),
    ({"document": None, "envelope": None}, {"document": True, "envelope": True}),
])
def test_content_flags_default_to_true(flare, rid, content, expected):
    body = valid()
    if content is not None:
        body["content"] = content
    answer = post(flare, rid, body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["content"] == expected


@pytest.mark.parametrize("sent, stored", [
    ("get", "GET"), ("post", "POST"), ("Put", "PUT"), ("pAtCh", "PATCH"), ("delete", "DELETE"),
])
def test_methods_are_upper_cased(flare, rid, sent, stored):
    answer = post(flare, rid, {
        "endpoint": {"url": f"http://client.test/{unique_name('m')}", "method": sent,
                     "actions": {"create": {"method": sent}}},
        "delivery": {"success": [200], "discard": [500]}})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"]["method"] == stored
    assert answer.json()["endpoint"]["actions"] == {"create": {"method": stored}}


def test_actions_only_without_a_top_level_url(flare, rid):
    tag = unique_name("act")
    actions = {"create": {"url": f"http://c.test/{tag}/c/{{id}}", "method": "post"},
               "update": {"url": f"http://c.test/{tag}/u/{{order}}", "method": "put"},
               "delete": {"url": f"http://c.test/{tag}/d/{{ id }}", "method": "delete"}}
    answer = post(flare, rid, {"endpoint": {"actions": actions}, "delivery": D})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"] == {"actions": {
        "create": {"url": f"http://c.test/{tag}/c/{{id}}", "method": "POST"},
        "update": {"url": f"http://c.test/{tag}/u/{{order}}", "method": "PUT"},
        "delete": {"url": f"http://c.test/{tag}/d/{{id}}", "method": "DELETE"}}}


def test_an_empty_action_is_left_out(flare, rid):
    url = f"http://client.test/{unique_name('e')}"
    answer = post(flare, rid, {"endpoint": {"url": url, "method": "post", "actions": {"delete": {}}},
                               "delivery": D})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"] == {"url": url, "method": "POST"}


def test_a_url_shared_within_one_subscription_is_no_conflict(flare, rid):
    url = f"http://client.test/{unique_name('same')}/{{id}}"
    answer = post(flare, rid, {"endpoint": {"url": url, "method": "post",
                                            "actions": {"delete": {"url": url, "method": "delete"}}},
                               "delivery": D})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"]["actions"] == {"delete": {"url": url, "method": "DELETE"}}


def test_url_is_trimmed_and_percent_decoded(flare, rid):
    tag = unique_name("n")
    answer = post(flare, rid, {"endpoint": {"url": f"  http://client.test/{tag}/%7B id %7D/{{ order }}  "},
                               "delivery": D})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"]["url"] == f"http://client.test/{tag}/{{id}}/{{order}}"


def test_secret_is_never_returned(flare, rid):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    answer = post(flare, rid, valid(secret=secret))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert "secret" not in body and secret not in answer.text
    got = flare.get(f"/resources/{rid}/subscriptions/{body['id']}")
    assert_json(got, 200, body)
    assert secret not in got.text
    listed = flare.get(f"/resources/{rid}/subscriptions", params={"limit": 1000})
    assert body in listed.json()["subscriptions"]
    assert secret not in listed.text


def test_list_and_get_agree_with_the_201(flare):
    resource_id = new_resource(flare)
    made = [post(flare, resource_id, valid()).json() for _ in range(3)]
    listed = flare.get(f"/resources/{resource_id}/subscriptions")
    assert listed.json() == {"pagination": {"limit": 30, "offset": 0, "total": 3}, "subscriptions": made}
    for sub in made:
        assert_json(flare.get(f"/resources/{resource_id}/subscriptions/{sub['id']}"), 200, sub)


# -- step 5: conflicts on any shared url ----------------------------------------------

def test_any_shared_url_is_a_409(flare):
    resource_id = new_resource(flare)
    tag = unique_name("dup")
    top, act = f"http://c.test/{tag}/{{id}}", f"http://c.test/{tag}/delete/{{id}}"
    first = post(flare, resource_id, {
        "endpoint": {"url": top, "method": "post", "actions": {"delete": {"url": act, "method": "delete"}}},
        "delivery": D}).json()

    def conflict(url: str) -> dict:
        return err("error during subscription create",
                   f"already exists a subscription '{first['id']}' with the endpoint.URL '{url}'")

    cases = [
        ({"url": top}, top),                                                   # top = top
        ({"url": f" http://c.test/{tag}/{{ id }} "}, top),                     # after normalising
        ({"url": act}, act),                                                   # top = their action
        ({"url": f"http://c.test/{tag}/other", "method": "post",
          "actions": {"update": {"url": top, "method": "put"}}}, top),         # action = their top
        ({"url": f"http://c.test/{tag}/other2", "method": "post",
          "actions": {"create": {"url": act, "method": "put"}}}, act),         # action = their action
        ({"actions": {"create": {"url": f"http://c.test/{tag}/c", "method": "post"},
                      "update": {"url": f"http://c.test/{tag}/u", "method": "post"},
                      "delete": {"url": act, "method": "delete"}}}, act),
    ]
    for endpoint, url in cases:
        assert_json(post(flare, resource_id, {"endpoint": endpoint, "delivery": D}), 409, conflict(url))
    # Validation (step 3) wins over the conflict (step 5).
    assert_json(post(flare, resource_id, {"endpoint": {"url": top}, "delivery": {"success": [200]}}),
                400, invalid("missing delivery.Discard"))
    # Nothing was created by the refused requests.
    listed = flare.get(f"/resources/{resource_id}/subscriptions").json()
    assert listed["subscriptions"] == [first]
    # Urls differing in anything (even a trailing slash) are other urls.
    assert post(flare, resource_id, {"endpoint": {"url": top + "/"}, "delivery": D}).status_code == 201
    # The same url on another resource is no conflict.
    other = new_resource(flare)
    assert post(flare, other, {"endpoint": {"url": top}, "delivery": D}).status_code == 201
    # Once the first is deleted, its urls are free again.
    assert flare.delete(f"/resources/{resource_id}/subscriptions/{first['id']}").status_code == 204
    again = post(flare, resource_id, {"endpoint": {"url": act}, "delivery": D})
    assert again.status_code == 201, again.text


# -- GET and DELETE -------------------------------------------------------------------

def test_get_and_delete_unknown_subscription(flare, rid):
    for sid in (str(uuid.uuid4()), "nope"):
        detail = f"subscription '{sid}' at resource '{rid}', not found"
        assert_json(flare.get(f"/resources/{rid}/subscriptions/{sid}"), 404,
                    err("error during subscription search", detail))
        assert_json(flare.delete(f"/resources/{rid}/subscriptions/{sid}"), 404,
                    err("error during subscription delete", detail))


def test_subscription_under_another_resource_is_404(flare, rid):
    sub = post(flare, rid, valid()).json()
    for other in (new_resource(flare), str(uuid.uuid4())):
        detail = f"subscription '{sub['id']}' at resource '{other}', not found"
        assert_json(flare.get(f"/resources/{other}/subscriptions/{sub['id']}"), 404,
                    err("error during subscription search", detail))
        assert_json(flare.delete(f"/resources/{other}/subscriptions/{sub['id']}"), 404,
                    err("error during subscription delete", detail))
    assert_json(flare.get(f"/resources/{rid}/subscriptions/{sub['id']}"), 200, sub)  # untouched


def test_delete_then_get_is_404(flare):
    resource_id = new_resource(flare)
    keep = post(flare, resource_id, valid()).json()
    sub = post(flare, resource_id, valid()).json()
    deleted = flare.delete(f"/resources/{resource_id}/subscriptions/{sub['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    detail = f"subscription '{sub['id']}' at resource '{resource_id}', not found"
    assert_json(flare.get(f"/resources/{resource_id}/subscriptions/{sub['id']}"), 404,
                err("error during subscription search", detail))
    assert_json(flare.delete(f"/resources/{resource_id}/subscriptions/{sub['id']}"), 404,
                err("error during subscription delete", detail))
    assert flare.get(f"/resources/{resource_id}/subscriptions").json()["subscriptions"] == [keep]


# -- the non-public address rule (extension): a process that refuses private targets ----

@pytest.fixture(scope="module")
def strict(kafka_bootstrap, tmp_path_factory):
    process = FlareProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path_factory.mktemp("strict"),
                           env={"FLARE_ALLOW_PRIVATE_TARGETS": "false"})
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def strict_rid(strict) -> str:
    return new_resource(strict)


# No traffic is ever sent to these: no document is written on this process.
@pytest.mark.parametrize("endpoint, host", [
    ({"url": "http://127.0.0.1/hook/{id}"}, "127.0.0.1"),
    ({"url": "http://127.0.0.1:9/hook"}, "127.0.0.1"),
    ({"url": "http://10.0.0.1/hook/{id}"}, "10.0.0.1"),
    ({"url": "https://192.168.1.20/x"}, "192.168.1.20"),
    ({"url": "http://172.16.0.5/x"}, "172.16.0.5"),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "169.254.169.254"),
    ({"url": "http://localhost:8080/x"}, "localhost"),
    ({"url": "http://[::1]:8080/x"}, "::1"),
    ({"url": "http://0.0.0.0/x"}, "0.0.0.0"),
    ({"url": "http://1.1.1.1/ok/{id}", "method": "post",
      "actions": {"delete": {"url": "http://10.0.0.1/d/{id}", "method": "delete"}}}, "10.0.0.1"),
])
def test_private_targets_are_refused(strict, strict_rid, endpoint, host):
    answer = post(strict, strict_rid, {"endpoint": endpoint, "delivery": D})
    assert_json(answer, 400, invalid(f"invalid endpoint: '{host}' is not a public address"))


def test_public_address_rule_comes_after_the_other_checks(strict, strict_rid):
    answer = post(strict, strict_rid, {"endpoint": {"url": "http://127.0.0.1/{id}"},
                                       "delivery": {"success": [200]}})
    assert_json(answer, 400, invalid("missing delivery.Discard"))
    answer = post(strict, strict_rid, {"endpoint": {"url": "http://10.0.0.1/{nope}"}, "delivery": D})
    assert_json(answer, 400, invalid(
        "invalid endpoint: endpoint.url has a wildcard 'nope' that is not at the resource"))


def test_a_public_address_is_accepted(strict, strict_rid):
    # A literal public address needs no name resolution; nothing is ever sent to it here.
    answer = post(strict, strict_rid, {"endpoint": {"url": "http://1.1.1.1/hook/{id}"}, "delivery": D})
    assert answer.status_code == 201, answer.text
    assert strict.get(f"/resources/{strict_rid}/subscriptions").json()["subscriptions"] == [answer.json()]


def test_private_targets_allowed_by_configuration(flare, rid):
    # The module's process runs with FLARE_ALLOW_PRIVATE_TARGETS=true.
    answer = post(flare, rid, {"endpoint": {"url": f"http://127.0.0.1:9/{unique_name('p')}"}, "delivery": D})
    assert answer.status_code == 201, answer.text
