"""tables.wildcards: one row per SPEC §6 rule."""

from __future__ import annotations

import itertools

import pytest

from tables.wildcards import WildcardError, fill, name_of, parse, values


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("http://api.company.com/users/{id}", ["id"]),  # §1 example
        ("/users/{ id }", ["id"]),  # §6 name trimmed
        ("/users/{*}", ["*"]),  # §6 {*} is an ordinary name
        ("/users/{id}/posts/{post}", ["id", "post"]),  # §6 order of appearance
        ("{a}-{b}", ["a", "b"]),  # §6 one char between wildcards is enough
        ("/users/{id}/again/{id}", ["id"]),  # §6 names reported once (not URL mode)
        ("/users/123", []),  # no wildcard at all
        ("", []),
        ("{Revision}", ["Revision"]),  # §6 the reserved name is case sensitive
        ("{my id}", ["my id"]),  # inner spaces are part of the name
    ],
)
def test_parse_names(template: str, names: list[str]) -> None:
    assert parse(template) == names


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/users/id}", "missing '{'"),  # §6 '}' with no '{'
        ("}{id}", "missing '{'"),  # §6 left to right: the '}' comes first
        ("/users/{id}}", "missing '{'"),  # §6 a stray '}' after a good wildcard
        ("/users/{id", "missing '}'"),  # §6 '{' with no '}'
        ("/users/{id}/{", "missing '}'"),  # §6 after a good wildcard
        ("/users/{a{b}", "found a '{' inside a wildcard"),  # §6
        ("/users/{{id}}", "found a '{' inside a wildcard"),  # §6
        ("/users/{}", "missing the wildcard id"),  # §6 empty name
        ("/users/{  }", "missing the wildcard id"),  # §6 empty once trimmed
        ("/users/{a}{b}", "there must be at least one char between wildcard"),  # §6 '}{'
        ("/users/{a}{}", "missing the wildcard id"),  # §6 the empty name is seen first
        ("/users/{revision}", "'revision' is a reserved wildcard"),  # §6 reserved
        ("/users/{ revision }", "'revision' is a reserved wildcard"),  # §6 reserved, trimmed
        ("/{revision}/{a", "'revision' is a reserved wildcard"),  # §6 left to right
        ("/{a}{b}/{revision}", "there must be at least one char between wildcard"),  # §6
    ],
)
def test_parse_structure_errors(template: str, message: str) -> None:
    with pytest.raises(WildcardError) as info:
        parse(template)
    assert str(info.value) == message
    with pytest.raises(WildcardError) as info:  # URL mode sees the same error first
        parse(template, url_mode=True)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("http://api.company.com/users/{id}", ["id"]),  # §6 'http://' is not a segment
        ("https://api.company.com:8080/users/{id}/posts/{*}", ["id", "*"]),  # port, https
        ("/users/{id}", ["id"]),  # a bare path works too
        ("//api/users/{id}", ["id"]),  # authority without scheme is cut off
        ("http://h/a/{ id }/b", ["id"]),  # spaces inside the braces are still alone
    ],
)
def test_parse_url_mode_accepts(template: str, names: list[str]) -> None:
    assert parse(template, url_mode=True) == names


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("http://h/users/{id}/x/{id}", "'id' is present more then one time"),  # §6 URL mode
        ("http://h/users/{ id }/x/{id}", "'id' is present more then one time"),  # trimmed
        # §6 duplicate is found as the scan reaches it, before later structure errors
        ("http://h/{id}/{id}/{revision}", "'id' is present more then one time"),
        ("http://h/users/x{id}", "wildcard must appear alone at a path fragment 'x{id}'"),
        ("http://h/users/{id}x", "wildcard must appear alone at a path fragment '{id}x'"),
        ("http://h/u/{a}-{b}", "wildcard must appear alone at a path fragment '{a}-{b}'"),
        ("http://h/u/{a/b}", "wildcard must appear alone at a path fragment '{a'"),  # spans '/'
        # §6 the duplicate check runs before the 'alone' check
        ("http://h/x{id}/{id}", "'id' is present more then one time"),
    ],
)
def test_parse_url_mode_errors(template: str, message: str) -> None:
    with pytest.raises(WildcardError) as info:
        parse(template, url_mode=True)
    assert str(info.value) == message


def test_parse_url_mode_off_allows_duplicates_and_mixed_segments() -> None:
    # §6: duplicates and the 'alone' rule are URL mode only (subscription urls, data)
    assert parse("http://client/{id}/x{id}?q={id}") == ["id"]


def test_wildcard_error_is_a_value_error() -> None:
    assert issubclass(WildcardError, ValueError)


def test_parse_never_raises_anything_else() -> None:
    # §6, §12.11: unbalanced braces are a 400 (WildcardError), never a crash.
    # Every string of up to 5 chars over "{}a/ ", in both modes.
    for n in range(1, 6):
        for chars in itertools.product("{}a/ ", repeat=n):
            for url_mode in (False, True):
                try:
                    names = parse("http://h/" + "".join(chars), url_mode=url_mode)
                except WildcardError:
                    continue
                assert all(names)


@pytest.mark.parametrize(
    ("segment", "name"),
    [("{id}", "id"), ("{ id }", "id"), ("{*}", "*"), ("{}", None), ("x{id}", None), ("id", None)],
)
def test_name_of(segment: str, name: str | None) -> None:
    assert name_of(segment) == name


@pytest.mark.parametrize(
    ("template", "concrete", "expected"),
    [
        ("/users/{id}", "/users/123", {"id": "123"}),  # §6 example
        ("/users/{id}/posts/{post}", "/users/1/posts/2", {"id": "1", "post": "2"}),  # §6
        ("/users/{ id }", "/users/123", {"id": "123"}),  # name trimmed
        ("/users/{*}", "/users/abc", {"*": "abc"}),  # {*} is a name
        ("http://api/users/{id}", "http://api/users/123", {"id": "123"}),  # §9.2 whole URLs
        ("/users/{id}", "/users/a%20b", {"id": "a%20b"}),  # text taken as given
        ("/users/list", "/users/list", {}),  # no wildcard
        ("/users/{id}", "/users", {}),  # missing segment: nothing to take
        ("/users/{id}", "/users/1/extra", {"id": "1"}),  # extra segments ignored
    ],
)
def test_values(template: str, concrete: str, expected: dict[str, str]) -> None:
    assert values(template, concrete) == expected


@pytest.mark.parametrize(
    ("template", "given", "expected"),
    [
        # §9.2 example: resource /users/{id} + document /users/123 → client /feed/123
        ("http://client/feed/{id}", {"id": "123"}, "http://client/feed/123"),
        ("http://client/feed/{ id }", {"id": "123"}, "http://client/feed/123"),  # spaces
        ("{id}-{id}", {"id": "7"}, "7-7"),  # every occurrence
        ("{id}/{other}", {"id": "7"}, "7/{other}"),  # §6 without a value: left as is
        ("{ other }", {}, "{ other }"),  # left exactly as written
        ("v{revision}", {"revision": "42"}, "v42"),  # §9.2 {revision} in data
        ("{a}", {"a": "{b}", "b": "x"}, "{b}"),  # replaced text is not scanned again
        ("{a", {"a": "x"}, "{a"),  # unbalanced braces are left alone
        ("a}{b}", {"b": "x"}, "a}x"),
        ("no wildcard", {"id": "1"}, "no wildcard"),
    ],
)
def test_fill(template: str, given: dict[str, str], expected: str) -> None:
    assert fill(template, given) == expected
