"""Issue: resources API. SPEC §2 (conventions), §5 (resources) and §6 (wildcards, URL mode)
against a real `flare start`: every validation step with its exact detail, normalisation,
conflicts by shape, the 201 shape, 404/409 on read and delete, body limits, routing and
bearer auth."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

import orjson
import pytest

from tests.flare_process import FlareProcess, unique_name

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
RFC3339_UTC_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def host() -> str:
    """A host of its own, so tests sharing one process never conflict (SPEC §5 step 5)."""
    return f"{unique_name('api')}.test"


def err(title: str, detail: str) -> dict:
    return {"error": {"title": title, "detail": detail}}


def invalid(detail: str) -> dict:
    return err("invalid body content", detail)


def assert_json(response, status: int, body: dict) -> None:
    assert (response.status_code, response.json()) == (status, body), response.text
    assert response.headers["content-type"] == "application/json"


def create(flare, endpoint: str, change: dict | None = None) -> dict:
    answer = flare.post("/resources", json={"endpoint": endpoint,
                                            "change": change or {"field": "version"}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def subscribe(flare, resource_id: str, url: str) -> dict:
    answer = flare.post(f"/resources/{resource_id}/subscriptions", json={
        "endpoint": {"url": url, "method": "post"},
        "delivery": {"success": [200], "discard": [500]}})
    assert answer.status_code == 201, answer.text
    return answer.json()


# -- §5 step 6: the 201 ---------------------------------------------------------------

def test_create_answers_201_with_location_and_resource_json(flare):
    endpoint = f"http://{host()}/users/{{id}}"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    answer = flare.post("/resources", json={
        "endpoint": endpoint,
        "change": {"field": "updatedAt", "format": "2006-01-02T15:04:05Z07:00"}})
    after = datetime.now(timezone.utc)
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert uuid.UUID(body["id"]).version == 4
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert answer.headers["location"] == f"/resources/{body['id']}"
    assert body == {"id": body["id"], "endpoint": endpoint,
                    "change": {"field": "updatedAt", "format": "2006-01-02T15:04:05Z07:00"},
                    "createdAt": body["createdAt"]}
    # §2: RFC 3339, UTC, seconds precision, Z suffix; and it is the creation time.
    assert RFC3339_UTC_SECONDS.fullmatch(body["createdAt"]), body["createdAt"]
    created_at = datetime.strptime(body["createdAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= created_at <= after
    # Braces appear literally, not escaped.
    assert '"endpoint":"' + endpoint + '"' in answer.text.replace(" ", "")
    got = flare.get(f"/resources/{body['id']}")
    assert_json(got, 200, body)


def test_format_is_left_out_when_empty(flare):
    for change in ({"field": "version"}, {"field": "version", "format": ""}):
        body = create(flare, f"http://{host()}/users/{{id}}", change)
        assert body["change"] == {"field": "version"}
        assert set(body) == {"id", "endpoint", "change", "createdAt"}


def test_id_in_body_is_ignored(flare):
    chosen = str(uuid.uuid4())
    answer = flare.post("/resources", json={"id": chosen, "endpoint": f"http://{host()}/u/{{id}}",
                                            "change": {"field": "version"}})
    assert answer.status_code == 201
    assert answer.json()["id"] != chosen
    assert uuid.UUID(answer.json()["id"]).version == 4
    assert_json(flare.get(f"/resources/{chosen}"), 404,
                err("error during resource search", f"resource '{chosen}' not found"))


def test_unknown_fields_are_ignored(flare):
    endpoint = f"http://{host()}/u/{{id}}"
    answer = flare.post("/resources", json={
        "endpoint": endpoint, "change": {"field": "version", "kind": "date", "extra": [1]},
        "createdAt": "1999-01-01T00:00:00Z", "owner": {"team": "x"}})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body == {"id": body["id"], "endpoint": endpoint, "change": {"field": "version"},
                    "createdAt": body["createdAt"]}
    assert body["createdAt"] != "1999-01-01T00:00:00Z"


# -- §5 step 1: body parse ------------------------------------------------------------

@pytest.mark.parametrize("raw, detail", [
    (b"", "EOF"),
    (b"   \n", "EOF"),
    (b"[]", "json: cannot unmarshal array into an object"),
    (b'"text"', "json: cannot unmarshal string into an object"),
    (b"12", "json: cannot unmarshal number into an object"),
    (b"null", "json: cannot unmarshal null into an object"),
    (b"true", "json: cannot unmarshal bool into an object"),
])
def test_body_that_is_not_an_object(flare, raw, detail):
    answer = flare.post("/resources", content=raw, headers={"content-type": "application/json"})
    assert_json(answer, 400, err("error during body parse", detail))


@pytest.mark.parametrize("raw", [b"{", b"{'endpoint': 1}", b'{"endpoint": "x",}', b"nope",
                                 b'{"endpoint": "\xff"}', b'{"a": 1} {"b": 2}'])
def test_body_that_is_not_json_carries_the_decoder_error(flare, raw):
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        decoder_error = str(exc)
    answer = flare.post("/resources", content=raw)
    assert_json(answer, 400, err("error during body parse", decoder_error))


@pytest.mark.parametrize("body, detail", [
    ({"endpoint": 5, "change": {"field": "v"}},
     "json: cannot unmarshal number into field 'endpoint' of type string"),
    ({"endpoint": ["http://a.test/{id}"], "change": {"field": "v"}},
     "json: cannot unmarshal array into field 'endpoint' of type string"),
    ({"endpoint": "http://a.test/{id}", "change": "version"},
     "json: cannot unmarshal string into field 'change' of type object"),
    ({"endpoint": "http://a.test/{id}", "change": {"field": 1}},
     "json: cannot unmarshal number into field 'change.field' of type string"),
    ({"endpoint": "http://a.test/{id}", "change": {"field": "v", "format": True}},
     "json: cannot unmarshal bool into field 'change.format' of type string"),
    # Step 1 comes before step 4: the type error wins over an invalid endpoint.
    ({"endpoint": "ftp://nowhere", "change": {"field": {}}},
     "json: cannot unmarshal object into field 'change.field' of type string"),
])
def test_field_of_the_wrong_json_type_is_a_body_parse_error(flare, body, detail):
    assert_json(flare.post("/resources", json=body), 400, err("error during body parse", detail))


# -- §5 steps 2 and 3: normalisation and percent-decoding ------------------------------

@pytest.mark.parametrize("sent, stored", [
    ("  http://{h}/users/{{id}}  ", "http://{h}/users/{{id}}"),
    ("\thttp://{h}/users/{{ id }}\n", "http://{h}/users/{{id}}"),
    ("http://{h}/users/{{  id}}/orders/{{order }}", "http://{h}/users/{{id}}/orders/{{order}}"),
    ("http://{h}/users/{{id}}/", "http://{h}/users/{{id}}"),
    (" http://{h}/users/{{ id }}/ ", "http://{h}/users/{{id}}"),
    ("http://{h}/my%20users/{{id}}", "http://{h}/my users/{{id}}"),
    ("http://{h}/my+users/{{id}}", "http://{h}/my users/{{id}}"),
    ("http://{h}/users/%7Bid%7D", "http://{h}/users/{{id}}"),
    ("http://{h}/caf%C3%A9/{{id}}", "http://{h}/café/{{id}}"),
    ("http://{h}/users/{{*}}", "http://{h}/users/{{*}}"),
    ("HTTP://{h}/users/{{id}}", "HTTP://{h}/users/{{id}}"),
])
def test_endpoint_is_normalised_then_decoded(flare, sent, stored):
    h = host()
    answer = flare.post("/resources", json={"endpoint": sent.format(h=h),
                                            "change": {"field": "version"}})
    assert answer.status_code == 201, answer.text
    assert answer.json()["endpoint"] == stored.format(h=h)
    assert flare.get(f"/resources/{answer.json()['id']}").json()["endpoint"] == stored.format(h=h)


def test_only_one_trailing_slash_is_dropped(flare):
    # `//` → `/`: the path is then `/users/{id}/`, still valid and kept with its slash.
    h = host()
    body = create(flare, f"http://{h}/users/{{id}}//")
    assert body["endpoint"] == f"http://{h}/users/{{id}}/"


@pytest.mark.parametrize("endpoint, detail", [
    ("http://h.test/%zz/{id}", 'invalid URL escape "%zz"'),
    ("http://h.test/users/{id}%", 'invalid URL escape "%"'),
    ("http://h.test/users/%4/{id}", 'invalid URL escape "%4/"'),
])
def test_bad_escape(flare, endpoint, detail):
    answer = flare.post("/resources", json={"endpoint": endpoint, "change": {"field": "v"}})
    assert_json(answer, 400, err("error during content unescape", detail))


def test_bad_escape_wins_over_validation(flare):
    # Step 3 before step 4: no wildcard and no field, but the escape is reported.
    answer = flare.post("/resources", json={"endpoint": "ftp://h.test/%g0"})
    assert_json(answer, 400, err("error during content unescape", 'invalid URL escape "%g0"'))


# -- §5 step 4: validation, in order --------------------------------------------------

@pytest.mark.parametrize("body, detail", [
    ({"endpoint": "mailto:users/{id}", "change": {"field": "v"}},
     "invalid endpoint: should not have opaque content 'users/{id}'"),
    ({"endpoint": "http:h.test/{id}", "change": {"field": "v"}},
     "invalid endpoint: should not have opaque content 'h.test/{id}'"),
    ({"endpoint": "http://user:pass@h.test/users/{id}", "change": {"field": "v"}},
     "invalid endpoint: should not have user"),
    ({"endpoint": "http://user@h.test/users/{id}"},  # user before missing field
     "invalid endpoint: should not have user"),
    ({"endpoint": "/users/{id}", "change": {"field": "v"}}, "invalid endpoint: missing host"),
    ({"endpoint": "", "change": {"field": "v"}}, "invalid endpoint: missing host"),
    ({"endpoint": "   ", "change": {"field": "v"}}, "invalid endpoint: missing host"),
    ({"change": {"field": "v"}}, "invalid endpoint: missing host"),
    ({"endpoint": None, "change": {"field": "v"}}, "invalid endpoint: missing host"),
    ({}, "invalid endpoint: missing host"),  # host before field
    ({"endpoint": "http://h.test", "change": {"field": "v"}}, "invalid endpoint: missing path"),
    ({"endpoint": "http://h.test/", "change": {"field": "v"}}, "invalid endpoint: missing path"),
    ({"endpoint": "http://h.test//", "change": {"field": "v"}}, "invalid endpoint: missing path"),
    ({"endpoint": "http://h.test?a=1", "change": {"field": "v"}},  # path before query
     "invalid endpoint: missing path"),
    ({"endpoint": "http://h.test/users/{id}?a=1", "change": {"field": "v"}},
     "invalid endpoint: should not have query string 'a=1'"),
    ({"endpoint": "http://h.test/users/{id}?", "change": {"field": "v"}},
     "invalid endpoint: should not have query string ''"),
    ({"endpoint": "http://h.test/users/{id}?a=1#top", "change": {"field": "v"}},  # query first
     "invalid endpoint: should not have query string 'a=1'"),
    # Decoding (step 3) comes before validation (step 4): escaped `?` and `#` count.
    ({"endpoint": "http://h.test/users/{id}%3Fa=1", "change": {"field": "v"}},
     "invalid endpoint: should not have query string 'a=1'"),
    ({"endpoint": "http://h.test/users/{id}%23top", "change": {"field": "v"}},
     "invalid endpoint: should not have fragment 'top'"),
    ({"endpoint": "http://h.test/users/{id}#top", "change": {"field": "v"}},
     "invalid endpoint: should not have fragment 'top'"),
    ({"endpoint": "//h.test/users/{id}", "change": {"field": "v"}}, "invalid endpoint: missing scheme"),
    ({"endpoint": "//h.test/users/{id}#x", "change": {"field": "v"}},  # fragment first
     "invalid endpoint: should not have fragment 'x'"),
    ({"endpoint": "ftp://h.test/users/{id}", "change": {"field": "v"}}, "invalid endpoint: unknown scheme"),
    ({"endpoint": "ftp://h.test/users", "change": {"field": "v"}},  # scheme before wildcard
     "invalid endpoint: unknown scheme"),
    ({"endpoint": "http://h.test/users", "change": {"field": "v"}}, "invalid endpoint: missing wildcard"),
    ({"endpoint": "http://h.test/users/123"}, "invalid endpoint: missing wildcard"),
    # §6 structure errors, then the URL-mode rules.
    ({"endpoint": "http://h.test/users/id}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: missing '{'"),
    ({"endpoint": "http://h.test/users/{id", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: missing '}'"),
    ({"endpoint": "http://h.test/users/{a{b}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: found a '{' inside a wildcard"),
    ({"endpoint": "http://h.test/users/{}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: missing the wildcard id"),
    ({"endpoint": "http://h.test/users/{  }", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: missing the wildcard id"),
    ({"endpoint": "http://h.test/users/{a}{b}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: there must be at least one char between wildcard"),
    ({"endpoint": "http://h.test/users/{revision}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: 'revision' is a reserved wildcard"),
    ({"endpoint": "http://h.test/users/{id}/orders/{id}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: 'id' is present more then one time"),
    ({"endpoint": "http://h.test/users/{id}/orders/{ id }", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: 'id' is present more then one time"),
    ({"endpoint": "http://h.test/users/x{id}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: wildcard must appear alone at a path fragment 'x{id}'"),
    ({"endpoint": "http://h.test/users/{a}-{b}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: wildcard must appear alone at a path fragment '{a}-{b}'"),
    # Left to right: the duplicate is met before the segment that is not alone.
    ({"endpoint": "http://h.test/{id}/{id}/x{y}", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: 'id' is present more then one time"),
    # Structure errors (the whole scan) before the "alone" rule.
    ({"endpoint": "http://h.test/x{id}/{b", "change": {"field": "v"}},
     "invalid endpoint: can't have duplicated wildcards: missing '}'"),
    # Wildcard rules before the change field.
    ({"endpoint": "http://h.test/users/{id"}, "invalid endpoint: can't have duplicated wildcards: missing '}'"),
    ({"endpoint": "http://h.test/users/{id}"}, "missing change field"),
    ({"endpoint": "http://h.test/users/{id}", "change": {}}, "missing change field"),
    ({"endpoint": "http://h.test/users/{id}", "change": {"field": ""}}, "missing change field"),
    ({"endpoint": "http://h.test/users/{id}", "change": None}, "missing change field"),
    ({"endpoint": "http://h.test/users/{id}", "change": {"format": "2006"}}, "missing change field"),
])
def test_invalid_body_content(flare, body, detail):
    assert_json(flare.post("/resources", json=body), 400, invalid(detail))


@pytest.mark.parametrize("endpoint", [
    "}", "{", "{{", "}}", "}{", "{id}}", "{{id}",
    "http://h.test/}", "http://h.test/{", "http://h.test/users/{id}}", "http://h.test/users/{{id}",
    "http://h.test/users/{id}/}{", "http://h.test/{/}", "http://h.test/users/%7B",
    "http://h.{x}.test/users/{id}", "http://h.test/users/{i}d}",
])
def test_unbalanced_braces_are_a_400_never_a_500(flare, endpoint):
    # SPEC §6, §12.11. Every one of these must be refused before the registry.
    answer = flare.post("/resources", json={"endpoint": endpoint, "change": {"field": "v"}})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["title"] == "invalid body content"
    assert answer.json()["error"]["detail"].startswith("invalid endpoint: ")


@pytest.mark.parametrize("endpoint, detail", [
    ("http://h.test/users/{id}}", "missing '{'"),
    ("http://h.test/users/{{id}", "found a '{' inside a wildcard"),
    # `{/}` is structurally one wildcard named "/", but no segment holds it alone.
    ("http://h.test/{/}", "wildcard must appear alone at a path fragment '{'"),
    ("http://h.test/users/{i}d}", "missing '{'"),
])
def test_unbalanced_braces_exact_detail(flare, endpoint, detail):
    answer = flare.post("/resources", json={"endpoint": endpoint, "change": {"field": "v"}})
    assert_json(answer, 400, invalid(f"invalid endpoint: can't have duplicated wildcards: {detail}"))


# -- §5 step 5: conflicts by shape ----------------------------------------------------

def test_conflicts_compare_wildcards_by_position_not_name(flare):
    h = host()
    first = create(flare, f"http://{h}/users/{{id}}")
    conflict = err("error during resource create",
                   f"endpoint already associated to another resource '{first['id']}'")
    for same_shape in (f"http://{h}/users/{{id}}", f"http://{h}/users/{{*}}",
                       f"http://{h}/users/{{ other }}/", f"  http://{h}/users/{{x}}",
                       f"http://{h}/users/%7Bx%7D", f"http://{h.upper()}/users/{{id}}",
                       f"HTTP://{h}/users/{{id}}"):
        answer = flare.post("/resources", json={"endpoint": same_shape, "change": {"field": "other"}})
        assert_json(answer, 409, conflict)
    # Other scheme, other host, other literal, other segment count: no conflict.
    for other_shape in (f"https://{h}/users/{{id}}", f"http://other.{h}/users/{{id}}",
                        f"http://{h}/people/{{id}}", f"http://{h}/users/{{id}}/orders/{{order}}",
                        f"http://{h}/{{tenant}}/users"):
        create(flare, other_shape)
    listed = [r["id"] for r in flare.get("/resources", params={"limit": 1000}).json()["resources"]]
    assert listed.count(first["id"]) == 1


def test_validation_wins_over_conflict(flare):
    h = host()
    create(flare, f"http://{h}/users/{{id}}")
    answer = flare.post("/resources", json={"endpoint": f"http://{h}/users/{{id}}"})
    assert_json(answer, 400, invalid("missing change field"))


def test_delete_frees_the_endpoint(flare):
    h = host()
    first = create(flare, f"http://{h}/users/{{id}}")
    assert flare.delete(f"/resources/{first['id']}").status_code == 204
    second = create(flare, f"http://{h}/users/{{*}}")
    assert second["id"] != first["id"]


# -- GET and DELETE -------------------------------------------------------------------

@pytest.mark.parametrize("resource_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_get_and_delete_unknown_resource(flare, resource_id):
    assert_json(flare.get(f"/resources/{resource_id}"), 404,
                err("error during resource search", f"resource '{resource_id}' not found"))
    assert_json(flare.delete(f"/resources/{resource_id}"), 404,
                err("error during resource delete", f"resource '{resource_id}' not found"))


def test_delete_answers_204_then_404(flare):
    body = create(flare, f"http://{host()}/users/{{id}}")
    deleted = flare.delete(f"/resources/{body['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_json(flare.get(f"/resources/{body['id']}"), 404,
                err("error during resource search", f"resource '{body['id']}' not found"))
    assert_json(flare.delete(f"/resources/{body['id']}"), 404,
                err("error during resource delete", f"resource '{body['id']}' not found"))
    listed = flare.get("/resources", params={"limit": 1000}).json()["resources"]
    assert body["id"] not in [r["id"] for r in listed]


def test_delete_with_subscriptions_is_409_until_they_are_gone(flare):
    body = create(flare, f"http://{host()}/users/{{id}}")
    rid = body["id"]
    first = subscribe(flare, rid, "http://client.test/a/{id}")
    second = subscribe(flare, rid, "http://client.test/b/{id}")
    busy = err("error during resource delete",
               f"there are subscriptions associated with this resource '{rid}'")
    assert_json(flare.delete(f"/resources/{rid}"), 409, busy)
    assert flare.delete(f"/resources/{rid}/subscriptions/{first['id']}").status_code == 204
    assert_json(flare.delete(f"/resources/{rid}"), 409, busy)
    assert_json(flare.get(f"/resources/{rid}"), 200, body)  # still there
    assert flare.delete(f"/resources/{rid}/subscriptions/{second['id']}").status_code == 204
    deleted = flare.delete(f"/resources/{rid}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert flare.get(f"/resources/{rid}").status_code == 404


# -- §2: body limit -------------------------------------------------------------------

def _padded(endpoint: str, size: int) -> bytes:
    """A valid resource body of exactly ``size`` bytes."""
    base = orjson.dumps({"endpoint": endpoint, "change": {"field": "v"}, "pad": ""})
    assert len(base) <= size
    return orjson.dumps({"endpoint": endpoint, "change": {"field": "v"},
                         "pad": "x" * (size - len(base))})


TOO_LARGE = err("request entity too large", f"the body is larger than {MIB} bytes")


def test_body_of_exactly_the_default_limit_is_accepted(flare):
    body = _padded(f"http://{host()}/users/{{id}}", MIB)
    assert len(body) == MIB
    answer = flare.post("/resources", content=body)
    assert answer.status_code == 201, answer.text


def test_body_over_the_default_limit_is_413(flare):
    h = host()
    body = _padded(f"http://{h}/users/{{id}}", MIB + 1)
    assert_json(flare.post("/resources", content=body), 413, TOO_LARGE)
    # Nothing was created.
    listed = flare.get("/resources", params={"limit": 1000}).json()["resources"]
    assert [r for r in listed if h in r["endpoint"]] == []


def test_streamed_body_over_the_limit_is_413(flare):
    # No Content-Length (chunked): refused while reading.
    def chunks():
        for _ in range(17):
            yield b" " * (64 * 1024)
        yield b"{}"

    assert_json(flare.post("/resources", content=chunks()), 413, TOO_LARGE)


def test_subscription_body_over_the_limit_is_413(flare):
    rid = create(flare, f"http://{host()}/users/{{id}}")["id"]
    body = b'{"pad": "' + b"x" * MIB + b'"}'
    assert_json(flare.post(f"/resources/{rid}/subscriptions", content=body), 413, TOO_LARGE)


# -- §2: routing ----------------------------------------------------------------------

def test_one_trailing_slash_is_ignored_on_every_route(flare):
    h = host()
    created = flare.post("/resources/", json={"endpoint": f"http://{h}/u/{{id}}",
                                              "change": {"field": "v"}})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert created.headers["location"] == f"/resources/{rid}"
    listed = flare.get("/resources/", params={"limit": 1000})
    assert listed.status_code == 200
    assert rid in [r["id"] for r in listed.json()["resources"]]
    assert_json(flare.get(f"/resources/{rid}/"), 200, created.json())
    sub = flare.post(f"/resources/{rid}/subscriptions/", json={
        "endpoint": {"url": "http://client.test/{id}"},
        "delivery": {"success": [200], "discard": [500]}})
    assert sub.status_code == 201, sub.text
    sid = sub.json()["id"]
    assert flare.get(f"/resources/{rid}/subscriptions/").json()["subscriptions"] == [sub.json()]
    assert_json(flare.get(f"/resources/{rid}/subscriptions/{sid}/"), 200, sub.json())
    assert flare.delete(f"/resources/{rid}/subscriptions/{sid}/").status_code == 204
    assert flare.delete(f"/resources/{rid}/").status_code == 204
    assert flare.get(f"/resources/{rid}").status_code == 404
    assert flare.get("/healthz/").status_code == 200


NOT_FOUND = {"error": {"status": 404, "title": "not found"}}
NOT_ALLOWED = {"error": {"status": 405, "title": "method not allowed"}}


@pytest.mark.parametrize("path", [
    "/resourcesx", "/resource", "/resources//", "/resources/x/y", "/resources/x/subscriptions/y/z/w",
    "/resources/x/subscription", "/nope/",
])
def test_unknown_route_is_404(flare, path):
    for method in ("GET", "POST", "DELETE"):
        assert_json(flare.client.request(method, path), 404, NOT_FOUND)


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/resources", {"GET", "HEAD", "POST"}),
    ("DELETE", "/resources", {"GET", "HEAD", "POST"}),
    ("PATCH", "/resources/", {"GET", "HEAD", "POST"}),
    ("POST", "/resources/abc", {"GET", "HEAD", "DELETE"}),
    ("PUT", "/resources/abc/", {"GET", "HEAD", "DELETE"}),
    ("DELETE", "/resources/abc/subscriptions", {"GET", "HEAD", "POST"}),
    ("PATCH", "/resources/abc/subscriptions/def", {"GET", "HEAD", "DELETE"}),
    ("POST", "/resources/abc/subscriptions/def/", {"GET", "HEAD", "DELETE"}),
])
def test_wrong_method_is_405_with_allow(flare, method, path, allowed):
    answer = flare.client.request(method, path, json={})
    assert_json(answer, 405, NOT_ALLOWED)
    assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed


# -- §2: bearer auth (a process of its own, with a small body limit too) ---------------

@pytest.fixture(scope="module")
def guarded(kafka_bootstrap, tmp_path_factory):
    process = FlareProcess(bootstrap=kafka_bootstrap, data_dir=tmp_path_factory.mktemp("guarded"),
                           env={"FLARE_API_TOKENS": "secret1,secret2",
                                "FLARE_MAX_BODY_BYTES": "300"})
    process.start()
    yield process
    process.stop()


UNAUTHORIZED_MISSING = {"error": {"title": "unauthorized", "detail": "missing bearer token"}}
UNAUTHORIZED_INVALID = {"error": {"title": "unauthorized", "detail": "invalid bearer token"}}


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/resources"), ("POST", "/resources"), ("GET", "/resources/x"),
    ("DELETE", "/resources/x"), ("GET", "/resources/x/subscriptions"),
    ("POST", "/resources/x/subscriptions"), ("GET", "/resources/x/subscriptions/y"),
    ("DELETE", "/resources/x/subscriptions/y"), ("GET", "/resources/"), ("GET", "/nope"),
])
def test_routes_need_a_bearer_token(guarded, method, path):
    assert_json(guarded.client.request(method, path), 401, UNAUTHORIZED_MISSING)
    for wrong in ("Bearer nope", "secret1", "Bearer secret1x", "Basic c2VjcmV0MQ==", "Bearer",
                  "Bearer  secret1", "Bearer secret1 secret2"):
        answer = guarded.client.request(method, path, headers={"Authorization": wrong})
        assert_json(answer, 401, UNAUTHORIZED_INVALID)
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer secret1", "Bearer secret2", "bearer secret1",
                                    "BEARER secret2"])
def test_a_configured_token_opens_the_routes(guarded, header):
    # The scheme is case-insensitive (RFC 7235 §2.1); the token is not.
    auth = {"Authorization": header}
    assert guarded.get("/resources", headers=auth).status_code == 200
    created = guarded.post("/resources", headers=auth, json={
        "endpoint": f"http://{host()}/users/{{id}}", "change": {"field": "v"}})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert_json(guarded.get(f"/resources/{rid}", headers=auth), 200, created.json())
    assert guarded.delete(f"/resources/{rid}", headers=auth).status_code == 204
    # The routing answers still come, once authenticated.
    assert_json(guarded.get("/nope", headers=auth), 404, NOT_FOUND)
    assert_json(guarded.client.put("/resources", headers=auth), 405, NOT_ALLOWED)


def test_operation_probes_are_open(guarded):
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/healthz/").status_code == 200
    assert guarded.get("/readyz").status_code == 200
    assert guarded.get("/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 200
    # /metrics is open too (SPEC §2): whatever it answers, never 401.
    assert guarded.get("/metrics").status_code != 401


def test_configured_body_limit(guarded):
    auth = {"Authorization": "Bearer secret1"}
    ok = _padded(f"http://{host()}/users/{{id}}", 300)
    assert guarded.post("/resources", headers=auth, content=ok).status_code == 201
    big = _padded(f"http://{host()}/users/{{id}}", 301)
    assert_json(guarded.post("/resources", headers=auth, content=big), 413,
                err("request entity too large", "the body is larger than 300 bytes"))
    # Authentication comes first: no token, too large → 401.
    assert_json(guarded.post("/resources", content=big), 401, UNAUTHORIZED_MISSING)
