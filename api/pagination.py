"""Pagination of the list routes (SPEC §4): offset before limit, exact titles and details."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

from tables.errors import FlareError
from tables.limits import MAX_QUERY_INTEGER

DEFAULT_LIMIT = 30
MAX_LIMIT = 1000
_INTEGER = re.compile(r"[+-]?[0-9]+")
#: Digits beyond this are out of range whatever they say (and ``int()`` of thousands of
#: digits is refused by Python itself, or slow).
_MAX_DIGITS = len(str(MAX_QUERY_INTEGER)) + 1

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int

    def slice(self, items: Sequence[T]) -> list[T]:
        return list(items[self.offset:self.offset + self.limit])

    def body(self, key: str, items: Sequence, total: int) -> dict:
        return {"pagination": {"limit": self.limit, "offset": self.offset, "total": total},
                key: list(items)}


def _integer(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":  # `?limit=` gives no limit, as in the original service
        return default
    if not _INTEGER.fullmatch(raw):
        shown = raw if len(raw) <= 64 else raw[:64] + "..."
        raise FlareError(400, "error during pagination parse",
                         f"error during parameter '{name}' parse with value '{shown}'")
    digits = raw.lstrip("+-").lstrip("0")
    if len(digits) > _MAX_DIGITS or abs(int(raw)) > MAX_QUERY_INTEGER:
        shown = raw if len(raw) <= 32 else raw[:32] + "..."
        raise FlareError(400, "invalid pagination",
                         f"invalid {name} '{shown}': out of range (at most {MAX_QUERY_INTEGER})")
    return int(raw)


def parse_page(params: Mapping[str, str]) -> Page:
    offset = _integer(params, "offset", 0)
    if offset < 0:
        raise FlareError(400, "invalid pagination", f"invalid offset '{offset}'")
    limit = _integer(params, "limit", DEFAULT_LIMIT)
    if limit < 0 or limit > MAX_LIMIT:
        raise FlareError(400, "invalid pagination", f"invalid limit '{limit}'")
    return Page(offset, limit)
