"""Reading request bodies within the configured limit (SPEC §2: 413 over the limit)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from tables.errors import FlareError


def _too_large(limit: int) -> FlareError:
    return FlareError(413, "request entity too large", f"the body is larger than {limit} bytes")


async def read_body(request: Request) -> bytes:
    """The whole body of a Starlette request, within ``max_body_bytes``."""
    return await read_asgi_body(request.scope, request.receive,
                                request.app.state.settings.max_body_bytes)


async def read_asgi_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused early (Content-Length) or while arriving past ``limit``.
    Plain ASGI, so the documents endpoint (api/documents.py) needs no Request."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A length of many digits is too large whatever it says (and int() of
            # thousands of digits is refused by Python: no 500 here).
            if value.isdigit() and (len(value) > 19 or int(value) > limit):
                raise _too_large(limit)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
