"""The data every benchmark sends: one registry, one document shape, deterministic.

A registry of a few resources on several hosts (so resource matching does real work, as it
would in a deployment), documents of about 250 bytes, and change messages exactly as
SPEC §10 describes them (key: the document URL; value: ``{"action","id","document"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import orjson

from tables.documents import change_value
from tables.resources import Resource

HOST = "bench-api.test"
ENDPOINT = f"http://{HOST}/users/{{id}}"
#: Resources that never match the benchmark's documents, but are compared on every lookup.
DECOYS = 19


def resources() -> list[Resource]:
    """The registry: the resource the documents belong to, and decoys around it."""
    found = [Resource(id="bench-users", endpoint=ENDPOINT, field="version", format="",
                      created_at=1_700_000_000)]
    for i in range(DECOYS):
        # Same host with other shapes, and other hosts with the same shape.
        endpoint = (f"http://{HOST}/kind{i}/{{id}}/items/{{item}}" if i % 2
                    else f"http://api{i}.bench.test/users/{{id}}")
        found.append(Resource(id=f"bench-decoy-{i}", endpoint=endpoint, field="version",
                              format="", created_at=1_700_000_000 + i))
    return found


def url(i: int) -> str:
    return f"http://{HOST}/users/{i}"


def document(i: int, revision: int) -> dict:
    return {
        "id": i,
        "version": revision,
        "name": f"User number {i}",
        "email": f"user{i}@example.com",
        "active": i % 3 != 0,
        "roles": ["reader", "writer"] if i % 2 else ["reader"],
        "address": {"street": f"{i} Main Street", "city": "Springfield", "zip": f"{i % 100000:05d}"},
        "score": i * 1.5,
    }


def body(i: int, revision: int) -> bytes:
    """A PUT body."""
    return orjson.dumps(document(i, revision))


@dataclass(frozen=True)
class Change:
    key: bytes
    value: bytes
    url: str
    revision: int


def changes(total: int, documents: int) -> list[Change]:
    """``total`` puts over ``documents`` URLs, revisions rising: round r puts revision r of
    every document, so each message changes the table and each key's order matters."""
    out: list[Change] = []
    revision = 0
    while len(out) < total:
        revision += 1
        for i in range(documents):
            if len(out) == total:
                break
            u = url(i)
            out.append(Change(u.encode(), change_value("put", u, document(i, revision)), u, revision))
    return out


def puts(start: int, stop: int, revision: int = 1) -> Iterator[Change]:
    """Revision ``revision`` of documents ``start`` … ``stop - 1``, lazily: one new
    document each, so the documents table grows by one key per change (bench/state.py)."""
    for i in range(start, stop):
        u = url(i)
        yield Change(u.encode(), change_value("put", u, document(i, revision)), u, revision)
