"""api.body: SPEC §2 and §11a, bodies over max_body_bytes are 413, never a 500."""

from __future__ import annotations

import pytest

from api.body import read_asgi_body
from tables.errors import FlareError


def receiver(*chunks: bytes):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0)

    return receive


def scope(length: bytes | None) -> dict:
    return {"headers": [] if length is None else [(b"content-length", length)]}


@pytest.mark.parametrize("length", [b"11", b"9" * 20, b"9" * 5000])
async def test_a_declared_length_over_the_limit_is_413_before_reading(length):
    with pytest.raises(FlareError) as info:
        await read_asgi_body(scope(length), receiver(b"x"), 10)
    assert info.value.status == 413
    assert "10 bytes" in info.value.detail


async def test_a_body_arriving_past_the_limit_is_413():
    with pytest.raises(FlareError) as info:
        await read_asgi_body(scope(None), receiver(b"x" * 6, b"x" * 5), 10)
    assert info.value.status == 413


async def test_a_body_at_the_limit_is_read():
    assert await read_asgi_body(scope(b"10"), receiver(b"x" * 4, b"x" * 6), 10) == b"x" * 10
