"""Wildcards: ``{name}`` placeholders in endpoint templates (SPEC §6).

Pure string work, no URL parsing beyond finding the path for the URL-mode "alone" rule.
The structure scan follows the original Go service left to right, but never crashes on
unbalanced braces: every malformed template is a :class:`WildcardError` (SPEC §12.11).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

RESERVED = frozenset({"revision"})

# A well-formed ``{...}`` with no brace inside; the name is trimmed where it is used.
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# ``scheme://authority`` at the start of a full URL: not part of the path (URL mode).
_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^/?#]*")


class WildcardError(ValueError):
    """A malformed template; ``str()`` is SPEC §6's message, e.g. ``missing '}'``."""


def parse(template: str, *, url_mode: bool = False) -> list[str]:
    """The wildcard names of ``template``, trimmed, each once, in order of appearance.

    SPEC §6: structure errors are found scanning left to right; ``url_mode`` (resource
    endpoints) also rejects a name used twice (checked as the scan reaches it, like the Go
    service), then a path segment holding a brace that is not exactly one ``{...}``.
    """
    names: list[str] = []
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
        if name in names:
            if url_mode:
                raise WildcardError(f"'{name}' is present more then one time")
        else:
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
