"""URLs: resource endpoints (SPEC §5 steps 2-5) and document URLs (SPEC §8).

The checks and their order are the original Go service's, which ran them on Go's
``url.Parse`` result. :func:`_split` reproduces the parts of that parse the checks read
(scheme, opaque, user, host, path, query, fragment) and never raises, so any input ends
in a :class:`FlareError` with SPEC's title, never a 500. Go failed to parse a host with
characters a host cannot have (``{``, a space, a non-numeric port); that is reported as
``invalid host '<host>'`` right after the ``missing host`` check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from tables import wildcards
from tables.errors import FlareError

UNESCAPE = "error during content unescape"
INVALID_CONTENT = "invalid body content"
INVALID_ID = "invalid id"
SCHEMES = ("http", "https")
# Stands for any wildcard in an endpoint shape; no literal segment can hold a brace.
WILDCARD = "{}"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What Go accepts in a host (plus any non-ASCII), and an optional numeric port.
_HOST_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%\x80-\U0010ffff]*")
_PORT = re.compile(r"(?::[0-9]*)?")


@dataclass(frozen=True)
class _Parts:
    scheme: str = ""
    opaque: str = ""
    user: bool = False
    host: str = ""
    path: str = ""
    query: str | None = None  # None: no '?' at all
    fragment: str | None = None  # None: no '#' at all


def _split(raw: str) -> _Parts:
    """Go's ``url.Parse`` split, minus its errors: fragment, scheme, query, then either
    opaque (a scheme not followed by ``/``) or ``//authority`` and path."""
    rest, hash_sign, fragment = raw.partition("#")
    scheme = ""
    if match := _SCHEME.match(rest):
        scheme, rest = match.group(0)[:-1].lower(), rest[match.end() :]
    rest, question, query = rest.partition("?")
    found = {"query": query if question else None, "fragment": fragment if hash_sign else None}
    if scheme and not rest.startswith("/"):
        return _Parts(scheme=scheme, opaque=rest, **found)
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority, slash, path = rest[2:].partition("/")
        _, at, host = authority.rpartition("@")
        return _Parts(scheme=scheme, user=bool(at), host=host, path=slash + path, **found)
    return _Parts(scheme=scheme, path=rest, **found)


def _valid_host(host: str) -> bool:
    if not _HOST_CHARS.fullmatch(host):
        return False
    if host.startswith("["):
        close = host.find("]")
        return close != -1 and bool(_PORT.fullmatch(host[close + 1 :]))
    colon = host.rfind(":")
    return colon == -1 or bool(_PORT.fullmatch(host[colon:]))


def _problem(parts: _Parts, *, root_is_missing: bool, name_scheme: bool) -> str | None:
    """The first broken rule of SPEC §5 step 4 / §8, in their shared order."""
    if parts.opaque:
        return f"should not have opaque content '{parts.opaque}'"
    if parts.user:
        return "should not have user"
    if not parts.host:
        return "missing host"
    if not _valid_host(parts.host):
        return f"invalid host '{parts.host}'"
    if not parts.path or (root_is_missing and parts.path == "/"):
        return "missing path"
    # A bare '?' or '#' is refused too: it would make two ids for one document.
    if parts.query is not None:
        return f"should not have query string '{parts.query}'"
    if parts.fragment is not None:
        return f"should not have fragment '{parts.fragment}'"
    if not parts.scheme:
        return "missing scheme"
    if parts.scheme not in SCHEMES:
        return f"unknown scheme '{parts.scheme}'" if name_scheme else "unknown scheme"
    return None


def _segments(path: str) -> list[str]:
    """Path segments without the empty one before the leading ``/``."""
    if not path:
        return []
    segments = path.split("/")
    return segments[1:] if segments[0] == "" else segments


def normalise_endpoint(raw: str) -> str:
    """SPEC §5 step 2: trim, ``{ id }`` → ``{id}``, drop one trailing ``/``.

    Only well-formed ``{...}`` are touched; unbalanced braces are left for step 4 to report.
    """
    endpoint = raw.strip()
    endpoint = wildcards.PLACEHOLDER.sub(lambda m: "{" + m.group(1).strip() + "}", endpoint)
    return endpoint[:-1] if endpoint.endswith("/") else endpoint


def unescape(s: str) -> str:
    """SPEC §5 step 3: percent-decode with ``+`` as a space, like Go's ``url.QueryUnescape``.

    A ``%`` not followed by two hex digits is a 400 naming it; bytes that are not UTF-8
    become U+FFFD (Go kept them, and its JSON encoder then replaced them the same way).
    """
    if bad := _BAD_ESCAPE.search(s):
        escape = s[bad.start() : bad.start() + 3]
        raise FlareError(400, UNESCAPE, f'invalid URL escape "{escape}"')
    return unquote_plus(s, errors="replace")


def validate_resource_endpoint(endpoint: str) -> str:
    """SPEC §5 step 4 on a normalised, decoded endpoint; returns it unchanged.

    URL rules first (``/`` alone is a missing path), then ``missing wildcard`` when the path
    has no brace, then the URL-mode wildcard rules of §6.
    """
    parts = _split(endpoint)
    problem = _problem(parts, root_is_missing=True, name_scheme=False)
    if problem is None and "{" not in parts.path and "}" not in parts.path:
        problem = "missing wildcard"
    if problem is None:
        try:
            wildcards.parse(parts.path, url_mode=True)
        except wildcards.WildcardError as exc:
            problem = f"can't have duplicated wildcards: {exc}"
    if problem is not None:
        raise FlareError(400, INVALID_CONTENT, f"invalid endpoint: {problem}")
    return endpoint


def validate_document_url(url: str) -> tuple[str, str, str]:
    """SPEC §8: ``(scheme, host, path)`` of a document URL, or 400 ``invalid id``.

    The scheme is lower-cased (as Go did); host and path are returned as written.
    """
    parts = _split(url)
    problem = _problem(parts, root_is_missing=False, name_scheme=True)
    if problem is not None:
        raise FlareError(400, INVALID_ID, problem)
    return parts.scheme, parts.host, parts.path


def endpoint_shape(endpoint: str) -> tuple[str, str, tuple[str, ...]]:
    """``(scheme, host, segments)`` with every wildcard as :data:`WILDCARD` (SPEC §5 step 5).

    ``/users/{id}`` and ``/users/{*}`` have one shape, so they conflict. Scheme and host
    are lower-cased: they name the same origin whatever their case.
    """
    parts = _split(endpoint)
    segments = tuple(
        WILDCARD if "{" in segment or "}" in segment else segment
        for segment in _segments(parts.path)
    )
    return parts.scheme, parts.host.lower(), segments


def match_resource(document_url: str, resources: Iterable[tuple[str, str]]) -> str | None:
    """The id of the resource whose endpoint matches ``document_url`` (SPEC §8), or ``None``.

    Same scheme and host; as many segments; literals equal, a wildcard takes any one
    non-empty segment. Among several, a literal beats a wildcard at the first segment where
    they differ (the smallest tuple of "is a wildcard" flags); a tie keeps the first given.
    Document segments are decoded like resource endpoints were (§5 step 3, but tolerant).
    """
    doc = _split(document_url)
    host = doc.host.lower()
    segments = [unquote_plus(segment) for segment in _segments(doc.path)]
    best: tuple[tuple[int, ...], str] | None = None
    for resource_id, endpoint in resources:
        scheme, resource_host, shape = endpoint_shape(endpoint)
        if (scheme, resource_host) != (doc.scheme, host) or len(shape) != len(segments):
            continue
        flags = _match_flags(shape, segments)
        if flags is not None and (best is None or flags < best[0]):
            best = (flags, resource_id)
    return None if best is None else best[1]


def _match_flags(shape: tuple[str, ...], segments: list[str]) -> tuple[int, ...] | None:
    """Per segment 0 for a literal, 1 for a wildcard; ``None`` when they do not match."""
    flags = []
    for pattern, text in zip(shape, segments):
        if pattern == WILDCARD and text:
            flags.append(1)
        elif pattern != WILDCARD and pattern == text:
            flags.append(0)
        else:
            return None
    return tuple(flags)
