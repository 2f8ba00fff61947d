"""Wildcards: ``{name}`` placeholders in endpoint templates (SPEC §6).

Pure string work, no URL parsing beyond finding the path for the URL-mode "alone" rule.
The structure scan follows the original Go service left to right, but never crashes on
unbalanced braces: every malformed template is a :class:`WildcardError` (SPEC §12.11).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

RESERVED = frozenset({"revision"})

# A well-formed ``{...}`` with no brace inside; the name is trimmed where it is used.
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# ``scheme://authority`` at the start of a full URL: not part of the path (URL mode).
_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?#]*")


class WildcardError(ValueError):
    """A malformed template; ``str()`` is SPEC §6's message, e.g. ``missing '}'``."""


class UnsafeFill(ValueError):
    """Filling a subscriber URL would change more than its path's segments (SPEC §11a)."""


# RFC 3986 pchar minus the unreserved characters ``quote`` always keeps: what may stand
# in a path segment as it is. ``/``, ``?``, ``#`` and ``%`` are encoded.
_SEGMENT_SAFE = "!$&'()*+,;=:@"
_DOT_SEGMENTS = frozenset({"", ".", ".."})
# In a query value: ``&``, ``=``, ``+``, ``#`` and ``%`` are encoded as well.
_QUERY_SAFE = "!$'()*,;:@/?"


def parse(template: str, *, url_mode: bool = False) -> list[str]:
    """The wildcard names of ``template``, trimmed, each once, in order of appearance.

    SPEC §6: structure errors are found scanning left to right; ``url_mode`` (resource
    endpoints) also rejects a name used twice (checked as the scan reaches it, like the Go
    service), then a path segment holding a brace that is not exactly one ``{...}``.
    """
    names: list[str] = []
    seen: set[str] = set()  # a set: a long endpoint of many names stays linear (§11a)
    pos = 0
    last_close = -1
    while True:
        start = template.find("{", pos)
        end = template.find("}", pos)
        if start == -1 and end == -1:
            break
        if start == -1 or (end != -1 and end < start):
            raise WildcardError("missing '{'")
        if end == -1:
            raise WildcardError("missing '}'")
        inner = template[start + 1 : end]
        if "{" in inner:
            raise WildcardError("found a '{' inside a wildcard")
        name = inner.strip()
        if not name:
            raise WildcardError("missing the wildcard id")
        if last_close != -1 and start == last_close + 1:
            raise WildcardError("there must be at least one char between wildcard")
        if name in RESERVED:
            raise WildcardError(f"'{name}' is a reserved wildcard")
        if name in seen:
            if url_mode:
                raise WildcardError(f"'{name}' is present more then one time")
        else:
            seen.add(name)
            names.append(name)
        last_close = end
        pos = end + 1
    if url_mode:
        _check_alone(template)
    return names


def _check_alone(template: str) -> None:
    """SPEC §6 URL mode: a path segment with a brace must be exactly one ``{...}``.

    Only the path counts, so ``http://host`` in front is cut off first.
    """
    path = _AUTHORITY.sub("", template, count=1)
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    for segment in path.split("/"):
        if ("{" in segment or "}" in segment) and not PLACEHOLDER.fullmatch(segment):
            raise WildcardError(f"wildcard must appear alone at a path fragment '{segment}'")


def name_of(segment: str) -> str | None:
    """The trimmed name when ``segment`` is exactly one ``{name}``, else ``None``."""
    match = PLACEHOLDER.fullmatch(segment)
    if match is None:
        return None
    return match.group(1).strip() or None


def values(template_path: str, concrete_path: str) -> dict[str, str]:
    """Wildcard values by aligning ``/``-segments (SPEC §6: ``/users/{id}`` + ``/users/123``).

    Works on paths or on whole URLs of the same form. Segments are taken as given (no
    decoding), so a raw document path yields URL-safe values to fill subscriber URLs with.
    Extra segments on either side are ignored; matching is ``tables.urls``' job.
    """
    result: dict[str, str] = {}
    for pattern, text in zip(template_path.split("/"), concrete_path.split("/")):
        name = name_of(pattern)
        if name is not None:
            result[name] = text
    return result


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``{name}`` (spaces inside tolerated) that has a value (SPEC §6, §9.2).

    Others, and unbalanced braces, stay as they are; replaced text is not scanned again.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        return str(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(replace, template)


def split_path(url: str) -> tuple[str, str, str]:
    """``(scheme://authority, path, ?query#fragment)`` of a URL template, never raising."""
    head = match.group(0) if (match := _AUTHORITY.match(url)) else ""
    rest = url[len(head):]
    cut = re.search(r"[?#]", rest)
    if cut is None:
        return head, rest, ""
    return head, rest[: cut.start()], rest[cut.start():]


def outside_path(url: str) -> bool:
    """Whether a ``{...}`` stands where a value could change where the request goes:
    scheme, user info, host, port, or the fragment (SPEC §11a). Path segments and query
    values may hold wildcards; their values are encoded so they cannot leave them."""
    head, _, tail = split_path(url)
    fragment = tail.partition("#")[2]
    return "{" in head or "}" in head or "{" in fragment or "}" in fragment


def encode_segment(value: str) -> str:
    """A wildcard value as the text of one path segment (SPEC §11a).

    Values come from document URL segments, already URL text: decoded once, then encoded
    again so that ``/``, ``?``, ``#`` and ``%`` cannot cut the segment (``a%2Fb`` stays
    ``a%2Fb``). An empty value, ``.`` and ``..`` (``%2e%2e`` too) are refused.
    """
    text = unquote(value)
    if text in _DOT_SEGMENTS:
        raise UnsafeFill(f"the value '{value}' cannot fill a path segment")
    return quote(text, safe=_SEGMENT_SAFE)


def fill_url(template: str, values: Mapping[str, str]) -> str:
    """A subscriber URL with its path's wildcards filled, each value as one encoded
    segment (SPEC §9.2, §11a); raises :class:`UnsafeFill` when a wildcard stands outside
    the path (a subscription stored before that rule) or a filled segment would read as
    ``.`` or ``..``."""
    if outside_path(template):
        raise UnsafeFill("a wildcard stands outside the URL's path")
    head, path, tail = split_path(template)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        return encode_segment(str(values[name])) if name in values else match.group(0)

    def replace_in_query(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in values:
            return match.group(0)
        return quote(unquote(str(values[name])), safe=_QUERY_SAFE)

    before = path.split("/")
    after = [PLACEHOLDER.sub(replace, segment) for segment in before]
    for old, new in zip(before, after):
        if new != old and unquote(new) in _DOT_SEGMENTS:
            raise UnsafeFill(f"the filled segment '{new}' would change the URL's path")
    query, hash_sign, fragment = tail.partition("#")
    return head + "/".join(after) + PLACEHOLDER.sub(replace_in_query, query) + hash_sign + fragment
