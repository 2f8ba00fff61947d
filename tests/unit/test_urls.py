"""tables.urls: one row per rule of SPEC §5 steps 2-5 and §8."""

from __future__ import annotations

import itertools

import pytest

from tables.errors import FlareError
from tables.urls import (
    WILDCARD,
    endpoint_shape,
    match_resource,
    normalise_endpoint,
    unescape,
    validate_document_url,
    validate_resource_endpoint,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://h/users/{id}", "http://h/users/{id}"),  # already normal
        ("  http://h/users/{id}\n", "http://h/users/{id}"),  # §5.2 trim whitespace
        ("http://h/users/{ id }", "http://h/users/{id}"),  # §5.2 spaces inside braces
        ("http://h/{ a }/x/{\tb }", "http://h/{a}/x/{b}"),  # §5.2 every wildcard
        ("http://h/users/{id}/", "http://h/users/{id}"),  # §5.2 one trailing '/'
        ("http://h/users/{id}//", "http://h/users/{id}/"),  # §5.2 only one
        (" http://h/users/{ id }/ ", "http://h/users/{id}"),  # §5.2 all three, in order
        ("http://h/", "http://h"),  # then §5.4 says missing path
        ("http://h/users/{ id", "http://h/users/{ id"),  # unbalanced: left for §5.4
        ("http://h/users/ id }", "http://h/users/ id }"),
        ("", ""),  # missing endpoint stays empty
        ("/", ""),
    ],
)
def test_normalise_endpoint(raw: str, expected: str) -> None:
    assert normalise_endpoint(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://h/users/%7Bid%7D", "http://h/users/{id}"),  # §5.3 percent-decoded
        ("http://h/a+b/{id}", "http://h/a b/{id}"),  # §5.3 '+' is a space
        ("http://h/a%2Bb", "http://h/a+b"),  # an encoded '+' stays a '+'
        ("http://h/caf%C3%A9", "http://h/café"),  # UTF-8
        ("http://h/%ff", "http://h/\ufffd"),  # not UTF-8: replacement char
        ("%41%42", "AB"),  # upper and lower hex
        ("%4a", "J"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_unescape(raw: str, expected: str) -> None:
    assert unescape(raw) == expected


@pytest.mark.parametrize(
    ("raw", "escape"),
    [
        ("http://h/%zz", '"%zz"'),  # §5.3 bad escape, named
        ("http://h/%", '"%"'),  # '%' at the end
        ("http://h/%4", '"%4"'),  # one hex digit
        ("http://h/%4g/x", '"%4g"'),
        ("ok%20then%", '"%"'),  # the first bad one is named
    ],
)
def test_unescape_bad_escape(raw: str, escape: str) -> None:
    with pytest.raises(FlareError) as info:
        unescape(raw)
    assert info.value == FlareError(
        400, "error during content unescape", f"invalid URL escape {escape}"
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://api.company.com/users/{id}",  # §1 example
        "https://api.company.com/users/{id}",  # §5.4 https
        "HTTP://api.company.com/users/{id}",  # scheme case does not matter
        "http://api.company.com:8080/users/{id}",  # port
        "http://[::1]:8080/users/{id}",  # IPv6 literal
        "http://h/users/{*}",  # §6 {*}
        "http://h/users/{id}/posts/{post}",
        "http://h/users/{id}/posts",
        "http://h/{id}",
        "http://h/a b/{id}",  # decoded spaces stay in the path
    ],
)
def test_validate_resource_endpoint_accepts(endpoint: str) -> None:
    assert validate_resource_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "detail"),
    [
        # §5.4 opaque: a scheme followed by something other than '/'
        ("mailto:x", "should not have opaque content 'x'"),
        ("http:host/users/{id}", "should not have opaque content 'host/users/{id}'"),
        ("localhost:8080/users/{id}", "should not have opaque content '8080/users/{id}'"),
        ("http:x?q=1", "should not have opaque content 'x'"),  # opaque before query
        # §5.4 user info
        ("http://user:pass@h/users/{id}", "should not have user"),
        ("http://@h/users/{id}", "should not have user"),
        ("http://user@/users/{id}", "should not have user"),  # user before host
        # §5.4 no host, also for a missing endpoint
        ("", "missing host"),
        ("api.company.com/users/{id}", "missing host"),
        ("/users/{id}", "missing host"),
        ("http:///users/{id}", "missing host"),
        ("http:", "missing host"),
        # a host Go's url.Parse refused (resolved: reported after 'missing host')
        ("http://{tenant}.h/users/{id}", "invalid host '{tenant}.h'"),
        ("http://h:port/users/{id}", "invalid host 'h:port'"),
        ("http://[::1/users/{id}", "invalid host '[::1'"),
        # §5.4 empty path or '/'
        ("http://h", "missing path"),
        ("http://h/", "missing path"),
        ("http://h?q=1", "missing path"),  # path before query
        # §5.4 query
        ("http://h/users/{id}?a=1", "should not have query string 'a=1'"),
        ("http://h/users/{id}?", "should not have query string ''"),  # a bare '?' too
        ("http://h/users/{id}?a=1#f", "should not have query string 'a=1'"),  # before fragment
        # §5.4 fragment
        ("http://h/users/{id}#top", "should not have fragment 'top'"),
        ("http://h/users/{id}#", "should not have fragment ''"),
        # §5.4 no scheme
        ("//h/users/{id}", "missing scheme"),
        # §5.4 scheme not http/https (no name in this detail)
        ("ftp://h/users/{id}", "unknown scheme"),
        ("ws://h/users/{id}", "unknown scheme"),
        # §5.4 no wildcard at all
        ("http://h/users/123", "missing wildcard"),
        ("http://h/users", "missing wildcard"),
        # §5.4 a §6 URL-mode wildcard error
        ("http://h/users/{id", "can't have duplicated wildcards: missing '}'"),
        ("http://h/users/id}", "can't have duplicated wildcards: missing '{'"),
        (
            "http://h/users/{a{b}",
            "can't have duplicated wildcards: found a '{' inside a wildcard",
        ),
        ("http://h/users/{}", "can't have duplicated wildcards: missing the wildcard id"),
        (
            "http://h/users/{a}{b}",
            "can't have duplicated wildcards: there must be at least one char between wildcard",
        ),
        (
            "http://h/users/{revision}",
            "can't have duplicated wildcards: 'revision' is a reserved wildcard",
        ),
        (
            "http://h/users/{id}/posts/{id}",
            "can't have duplicated wildcards: 'id' is present more then one time",
        ),
        (
            "http://h/users/x{id}",
            "can't have duplicated wildcards: "
            "wildcard must appear alone at a path fragment 'x{id}'",
        ),
    ],
)
def test_validate_resource_endpoint_rejects(endpoint: str, detail: str) -> None:
    with pytest.raises(FlareError) as info:
        validate_resource_endpoint(endpoint)
    assert info.value == FlareError(400, "invalid body content", f"invalid endpoint: {detail}")


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        # §5 steps 2-4 chained as the API runs them
        ("  http://h/users/{ id }/  ", None),
        ("http://h/users/%7Bid%7D", None),  # braces may arrive encoded
        ("http://h/users/{id}%3Fa=1", "should not have query string 'a=1'"),  # decoded first
        ("http://h/", "missing path"),  # trailing '/' dropped, then nothing left
        ("   ", "missing host"),  # blank is a missing endpoint
    ],
)
def test_resource_endpoint_pipeline(raw: str, detail: str | None) -> None:
    def run() -> str:
        return validate_resource_endpoint(unescape(normalise_endpoint(raw)))

    if detail is None:
        assert "{id}" in run()
    else:
        with pytest.raises(FlareError) as info:
            run()
        assert info.value.detail == f"invalid endpoint: {detail}"


def test_resource_endpoint_never_raises_anything_else() -> None:
    # §6, §12.11: whatever the braces, slashes and escapes, the answer is a FlareError (400)
    for n in range(1, 6):
        for chars in itertools.product("{}a/%?", repeat=n):
            raw = "http://h/" + "".join(chars)
            try:
                validate_resource_endpoint(unescape(normalise_endpoint(raw)))
            except FlareError as exc:
                assert exc.status == 400


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://api.company.com/users/123", ("http", "api.company.com", "/users/123")),  # §8
        ("https://api.company.com/users/123", ("https", "api.company.com", "/users/123")),
        ("HTTP://Api.Company.com/users/1", ("http", "Api.Company.com", "/users/1")),
        ("http://h:8080/users/1", ("http", "h:8080", "/users/1")),  # port kept in the host
        ("http://h/users/a%20b", ("http", "h", "/users/a%20b")),  # path as written
        ("http://h/", ("http", "h", "/")),  # only an empty path is missing (Go)
        ("http://h/users/{id}", ("http", "h", "/users/{id}")),
    ],
)
def test_validate_document_url_accepts(url: str, expected: tuple[str, str, str]) -> None:
    assert validate_document_url(url) == expected


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("mailto:someone", "should not have opaque content 'someone'"),  # §8 opaque
        ("http:h/users/1", "should not have opaque content 'h/users/1'"),  # §8 opaque
        ("http://u:p@h/users/1", "should not have user"),  # §8 user
        ("", "missing host"),  # §8 host
        ("api.company.com/users/1", "missing host"),  # §8 host (no '//')
        ("http:///users/1", "missing host"),
        ("http://bad host/users/1", "invalid host 'bad host'"),  # Go could not parse it
        ("http://h:x/users/1", "invalid host 'h:x'"),
        ("http://h", "missing path"),  # §8 path
        ("http://h?a=1", "missing path"),  # §8 path before query
        ("http://h/users/1?a=1", "should not have query string 'a=1'"),  # §8 query, §12.5
        ("http://h/users/1?", "should not have query string ''"),  # a bare '?' too
        ("http://h/users/1?a#b", "should not have query string 'a'"),  # query before fragment
        ("http://h/users/1#b", "should not have fragment 'b'"),  # §8 fragment
        ("//h/users/1", "missing scheme"),  # §8 scheme
        ("ftp://h/users/1", "unknown scheme 'ftp'"),  # §8 unknown scheme, named
        ("FTP://h/users/1", "unknown scheme 'ftp'"),  # named lower-cased, like Go
    ],
)
def test_validate_document_url_rejects(url: str, detail: str) -> None:
    with pytest.raises(FlareError) as info:
        validate_document_url(url)
    assert info.value == FlareError(400, "invalid id", detail)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://h/users/{id}", "http://h/users/{*}", True),  # §5.5 example
        ("http://h/users/{id}/x/{y}", "http://h/users/{a}/x/{b}", True),  # by position
        ("http://h/users/{id}", "http://h/users/{ id }", True),  # spaces do not matter
        ("http://H/users/{id}", "http://h/users/{x}", True),  # host case does not matter
        ("http://h/users/{id}", "https://h/users/{id}", False),  # scheme differs
        ("http://h/users/{id}", "http://h:8080/users/{id}", False),  # host differs
        ("http://h/users/{id}", "http://h/users/{id}/posts", False),  # length differs
        ("http://h/users/{id}", "http://h/people/{id}", False),  # literal differs
        ("http://h/users/{id}/x", "http://h/users/x/{id}", False),  # position differs
    ],
)
def test_endpoint_shape(a: str, b: str, same: bool) -> None:
    assert (endpoint_shape(a) == endpoint_shape(b)) is same


def test_endpoint_shape_value() -> None:
    assert endpoint_shape("https://API.com:8443/users/{id}/posts") == (
        "https",
        "api.com:8443",
        ("users", WILDCARD, "posts"),
    )


RESOURCES = [
    ("users", "http://api.company.com/users/{id}"),
    ("me", "http://api.company.com/users/me"),  # has no wildcard, but literals win anyway
    ("posts", "http://api.company.com/users/{id}/posts/{post}"),
    ("user-latest", "http://api.company.com/users/{id}/posts/latest"),
    ("any-latest", "http://api.company.com/{kind}/{id}/posts/latest"),
    ("secure", "https://api.company.com/accounts/{id}"),
    ("ported", "http://api.company.com:8080/users/{id}"),
    ("other", "http://other.com/users/{id}"),
    ("spaced", "http://api.company.com/a b/{id}"),  # stored decoded (§5.3)
]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://api.company.com/users/123", "users"),  # §8 wildcard takes one segment
        ("http://api.company.com/users/{x}", "users"),
        ("http://api.company.com/users/me", "me"),  # §8 literal wins over wildcard
        ("http://api.company.com/users/1/posts/2", "posts"),  # §8 equal segment count
        ("http://api.company.com/users/1/posts/latest", "user-latest"),  # first difference
        ("http://api.company.com/items/1/posts/latest", "any-latest"),
        ("http://api.company.com/users/1/posts", None),  # §8 count must be equal
        ("http://api.company.com/users", None),
        ("http://api.company.com/users/", None),  # a wildcard takes no empty segment
        ("http://api.company.com/users//posts/2", None),
        ("http://api.company.com/accounts/1", None),  # §8 scheme must be the same
        ("https://api.company.com/accounts/1", "secure"),
        ("http://api.company.com:8080/users/1", "ported"),  # §8 host includes the port
        ("http://other.com/users/1", "other"),  # §8 every resource of the host is seen
        ("http://unknown.com/users/1", None),
        ("http://API.company.com/users/1", "users"),  # host case does not matter
        ("http://api.company.com/a%20b/1", "spaced"),  # decoded like the endpoint was
        ("http://api.company.com/a+b/1", "spaced"),  # '+' as in §5.3
        ("http://api.company.com/%75sers/me", "me"),  # escapes compare decoded
        ("http://api.company.com/users/1%2F2", "users"),  # %2F stays inside its segment
        ("http://api.company.com/users/%zz", "users"),  # bad escape: compared as written
    ],
)
def test_match_resource(url: str, expected: str | None) -> None:
    assert match_resource(url, RESOURCES) == expected


@pytest.mark.parametrize(
    ("url", "resources", "expected"),
    [
        # §8 the first differing segment decides, not the number of literals
        ("http://h/a/b/c", [("late", "http://h/{a}/b/c"), ("early", "http://h/a/{b}/c")], "early"),
        ("http://h/a/b/c", [("early", "http://h/a/{b}/c"), ("late", "http://h/{a}/b/c")], "early"),
        (
            "http://h/a/b/c",
            [("late", "http://h/{a}/b/c"), ("early", "http://h/a/{b}/{x}")],
            "early",
        ),
        # the same shape twice (kept apart by §5.5, but possible across processes): first given
        ("http://h/u/1", [("first", "http://h/u/{id}"), ("second", "http://h/u/{*}")], "first"),
        ("http://h/u/1", [("second", "http://h/u/{*}"), ("first", "http://h/u/{id}")], "second"),
        ("http://h/u/1", [], None),
    ],
)
def test_match_resource_tie_breaks(
    url: str, resources: list[tuple[str, str]], expected: str | None
) -> None:
    assert match_resource(url, iter(resources)) == expected
