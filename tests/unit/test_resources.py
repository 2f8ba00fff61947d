"""tables.resources: SPEC §5 rule by rule, the JSON shape and the stored record."""

from __future__ import annotations

import orjson
import pytest

from tables.errors import FlareError
from tables.limits import MAX_FIELD, MAX_FORMAT, MAX_URL
from tables.resources import Resource, parse_resource_body, resource_conflict, rfc3339

PARSE = "error during body parse"
INVALID = "invalid body content"
UNESCAPE = "error during content unescape"


def body(endpoint: object = "http://api.com/users/{id}", **change: object) -> bytes:
    change = change or {"field": "updatedAt"}
    return orjson.dumps({"endpoint": endpoint, "change": change})


# One row per rule; the first failure wins, so some rows break two rules on purpose.
FAILURES = [
    # §5 step 1: not a JSON object, or a field of the wrong JSON type
    ("empty body", b"", PARSE, "EOF"),
    ("blank body", b"  \n", PARSE, "EOF"),
    ("array", b"[1]", PARSE, "json: cannot unmarshal array into an object"),
    ("string", b'"x"', PARSE, "json: cannot unmarshal string into an object"),
    ("endpoint number", body(1), PARSE,
     "json: cannot unmarshal number into field 'endpoint' of type string"),
    ("change list", b'{"endpoint": "http://a/{id}", "change": []}', PARSE,
     "json: cannot unmarshal array into field 'change' of type object"),
    ("field number", body(field=1), PARSE,
     "json: cannot unmarshal number into field 'change.field' of type string"),
    ("format bool", body(field="f", format=True), PARSE,
     "json: cannot unmarshal bool into field 'change.format' of type string"),
    ("type error before anything else", b'{"endpoint": 1, "change": {"field": ""}}', PARSE,
     "json: cannot unmarshal number into field 'endpoint' of type string"),
    # §5 step 3: percent-decoding
    ("bad escape", body("http://api.com/users/{id}%zz"), UNESCAPE, 'invalid URL escape "%zz"'),
    ("bad escape before validation", body("ftp://api.com/users%zz"), UNESCAPE,
     'invalid URL escape "%zz"'),
    # §5 step 4, in SPEC's order
    ("opaque", body("mailto:team/{id}"), INVALID,
     "invalid endpoint: should not have opaque content 'team/{id}'"),
    ("user", body("http://me@api.com/users/{id}"), INVALID,
     "invalid endpoint: should not have user"),
    ("user before query", body("http://me@api.com/users/{id}?a=1"), INVALID,
     "invalid endpoint: should not have user"),
    ("no host", body("/users/{id}"), INVALID, "invalid endpoint: missing host"),
    ("missing endpoint", b'{"change": {"field": "f"}}', INVALID, "invalid endpoint: missing host"),
    ("null endpoint", b'{"endpoint": null, "change": {"field": "f"}}', INVALID,
     "invalid endpoint: missing host"),
    ("empty path", body("http://api.com"), INVALID, "invalid endpoint: missing path"),
    ("root path", body("http://api.com/"), INVALID, "invalid endpoint: missing path"),
    ("query", body("http://api.com/users/{id}?a=1"), INVALID,
     "invalid endpoint: should not have query string 'a=1'"),
    ("fragment", body("http://api.com/users/{id}#top"), INVALID,
     "invalid endpoint: should not have fragment 'top'"),
    ("no scheme", body("//api.com/users/{id}"), INVALID, "invalid endpoint: missing scheme"),
    ("unknown scheme", body("ftp://api.com/users/{id}"), INVALID,
     "invalid endpoint: unknown scheme"),
    ("no wildcard", body("http://api.com/users/1"), INVALID, "invalid endpoint: missing wildcard"),
    ("duplicated wildcard", body("http://api.com/users/{id}/x/{id}"), INVALID,
     "invalid endpoint: can't have duplicated wildcards: 'id' is present more then one time"),
    ("unbalanced brace", body("http://api.com/users/{id"), INVALID,
     "invalid endpoint: can't have duplicated wildcards: missing '}'"),
    ("reserved wildcard", body("http://api.com/users/{revision}"), INVALID,
     "invalid endpoint: can't have duplicated wildcards: 'revision' is a reserved wildcard"),
    ("wildcard not alone", body("http://api.com/users/x{id}"), INVALID,
     "invalid endpoint: can't have duplicated wildcards: "
     "wildcard must appear alone at a path fragment 'x{id}'"),
    ("missing change field", body(field=""), INVALID, "missing change field"),
    ("missing change", b'{"endpoint": "http://api.com/users/{id}"}', INVALID,
     "missing change field"),
    ("endpoint before change field", body("http://api.com/users/1", field=""), INVALID,
     "invalid endpoint: missing wildcard"),
    # §11a bounds, checked right after decoding
    ("long endpoint", body("http://api.com/users/{id}/" + "a" * MAX_URL), INVALID,
     f"endpoint longer than {MAX_URL}"),
    ("long field", body(field="f" * (MAX_FIELD + 1)), INVALID,
     f"change.field longer than {MAX_FIELD}"),
    ("long format", body(field="f", format="2" * (MAX_FORMAT + 1)), INVALID,
     f"change.format longer than {MAX_FORMAT}"),
]


def test_many_wildcard_names_are_checked_in_linear_time() -> None:
    # §11a: duplicates are found with a set; 400 names within the URL bound parse at once.
    names = "/".join(f"{{a{n}}}" for n in range(400))
    endpoint, _, _ = parse_resource_body(body(f"http://api.com/{names}"))
    assert endpoint.endswith("{a399}")


@pytest.mark.parametrize(("raw", "title", "detail"), [r[1:] for r in FAILURES],
                         ids=[r[0] for r in FAILURES])
def test_parse_resource_body_failures(raw: bytes, title: str, detail: str) -> None:
    with pytest.raises(FlareError) as info:
        parse_resource_body(raw)
    assert (info.value.status, info.value.title, info.value.detail) == (400, title, detail)


@pytest.mark.parametrize("raw", [b"{", b'{"endpoint": }', b"nul", b'{"a": 1} x'])
def test_parse_resource_body_decoder_error(raw: bytes) -> None:
    # §5 step 1: the detail is the decoder's own message.
    with pytest.raises(FlareError) as info:
        parse_resource_body(raw)
    assert (info.value.status, info.value.title) == (400, PARSE)
    assert info.value.detail and info.value.detail != "EOF"


USERS = "http://api.com/users/{id}"
SUCCESSES = [
    ("plain", body(), (USERS, "updatedAt", "")),
    ("format kept", body(field="at", format="2006-01-02T15:04:05Z07:00"),
     (USERS, "at", "2006-01-02T15:04:05Z07:00")),
    # §5 step 2: trim, spaces inside braces, one trailing slash
    ("normalised", body("  http://api.com/users/{ id }/  "), (USERS, "updatedAt", "")),
    # §5 step 3: percent-decoding, '+' is a space
    ("decoded braces", body("http://api.com/users/%7Bid%7D"), (USERS, "updatedAt", "")),
    ("plus is space", body("http://api.com/a+b/{id}"),
     ("http://api.com/a b/{id}", "updatedAt", "")),
    ("https", body("https://api.com/users/{*}"), ("https://api.com/users/{*}", "updatedAt", "")),
    # §2: an id in the body and unknown fields are ignored
    ("id and unknown ignored",
     b'{"id": "mine", "extra": [1], "endpoint": "http://a.com/u/{id}",'
     b' "change": {"field": "v", "x": 1}}',
     ("http://a.com/u/{id}", "v", "")),
]


@pytest.mark.parametrize(("raw", "expected"), [r[1:] for r in SUCCESSES],
                         ids=[r[0] for r in SUCCESSES])
def test_parse_resource_body_accepts(raw: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_resource_body(raw) == expected


def res(rid: str, endpoint: str) -> Resource:
    return Resource(id=rid, endpoint=endpoint, field="v", format="", created_at=0)


CONFLICTS = [
    # §5 step 5: same scheme, host and path; wildcards by position, not by name
    ("same endpoint", "http://api.com/users/{id}", "http://api.com/users/{id}", True),
    ("other wildcard name", "http://api.com/users/{id}", "http://api.com/users/{*}", True),
    ("other host", "http://api.com/users/{id}", "http://web.com/users/{id}", False),
    ("other scheme", "http://api.com/users/{id}", "https://api.com/users/{id}", False),
    ("other literal", "http://api.com/users/{id}", "http://api.com/people/{id}", False),
    ("longer path", "http://api.com/users/{id}", "http://api.com/users/{id}/x", False),
    ("wildcard moved", "http://api.com/users/{id}", "http://api.com/{id}/users", False),
]


@pytest.mark.parametrize(("existing", "new", "conflicts"), [r[1:] for r in CONFLICTS],
                         ids=[r[0] for r in CONFLICTS])
def test_resource_conflict(existing: str, new: str, conflicts: bool) -> None:
    other = res("r-old", existing)
    found = resource_conflict(new, [res("r-x", "http://x.com/a/{b}"), other])
    assert found == (other if conflicts else None)


def test_resource_conflict_returns_the_first_match() -> None:
    first, second = res("r1", "http://a.com/u/{id}"), res("r2", "http://a.com/u/{x}")
    assert resource_conflict("http://a.com/u/{y}", [first, second]) is first
    assert resource_conflict("http://a.com/u/{y}", []) is None


@pytest.mark.parametrize(("ts", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (1291970108, "2010-12-10T08:35:08Z"),
])
def test_rfc3339(ts: int, text: str) -> None:
    # §2: UTC, seconds precision, Z suffix
    assert rfc3339(ts) == text


def test_resource_json_leaves_out_empty_format() -> None:
    r = Resource("r1", "http://api.com/users/{id}", "updatedAt", "", 1291970108)
    assert r.to_json() == {
        "id": "r1",
        "endpoint": "http://api.com/users/{id}",
        "change": {"field": "updatedAt"},
        "createdAt": "2010-12-10T08:35:08Z",
    }


def test_resource_json_with_format() -> None:
    r = Resource("r1", "http://api.com/users/{id}", "at", "2006-01-02", 0)
    assert r.to_json()["change"] == {"field": "at", "format": "2006-01-02"}


@pytest.mark.parametrize("fmt", ["", "2006-01-02T15:04:05Z07:00"])
def test_resource_record_round_trip(fmt: str) -> None:
    r = Resource("r1", "http://api.com/users/{id}", "updatedAt", fmt, 1291970108)
    record = orjson.loads(orjson.dumps(r.to_record()))
    assert record["v"] == 1
    assert Resource.from_record(record) == r


def test_resource_record_unknown_version() -> None:
    record = res("r1", "http://a.com/u/{id}").to_record() | {"v": 2}
    with pytest.raises(ValueError, match="version"):
        Resource.from_record(record)
