"""The one place Flare sends a notification over HTTP (SPEC §9.2, §9.5, §9.6).

prepare (pure, tables/request.py) → send (here: the only httpx call) → record (the
dispatcher). Every transport failure is translated here, once, into "no status" (STYLE.md
§5): a timeout, a refused connection and a protocol error are all retried the same way.

httpx keeps the request and response API; its own transport is the dispatcher's ceiling
(DESIGN.md, Performance: measured in bench/dispatch.py at about a tenth of raw aiohttp
here), so requests go through the httpx-aiohttp transport: one pooled aiohttp session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from standardwebhooks.webhooks import Webhook

from tables.request import OutgoingRequest

# Errors that mean "the subscriber did not answer with a status": retried (§9.3).
# httpx-aiohttp maps the common aiohttp errors to httpx ones; the rest of aiohttp's tree
# is caught too so that no transport failure escapes as a crash of the sending task.
TRANSPORT_ERRORS = (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol,
                    aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True)
class Sent:
    status: int | None  # None: no HTTP status (transport error or timeout)
    error: str | None = None


def signed_headers(request: OutgoingRequest, message_id: str, timestamp: int,
                   secret: str | None) -> list[tuple[str, str]]:
    """Add webhook-id, webhook-timestamp and, with a secret, webhook-signature (§9.5, §9.6)."""
    headers = [*request.headers, ("webhook-id", message_id), ("webhook-timestamp", str(timestamp))]
    if secret:
        when = datetime.fromtimestamp(timestamp, timezone.utc)
        signature = Webhook(secret).sign(message_id, when, request.body.decode("utf-8"))
        headers.append(("webhook-signature", signature))
    return headers


class Sender:
    """httpx requests over the httpx-aiohttp transport (one pooled aiohttp session); no
    redirects; a timeout per attempt.

    Requests go to the transport directly (``handle_async_request``, httpx's public
    transport API) rather than through ``httpx.AsyncClient``: the client's layers are
    auth, redirects, cookies and base-URL merging, none of which a notification uses (no
    redirects by SPEC §9.2, absolute URLs, no cookies kept between subscribers), and they
    cost about half of the dispatcher's CPU per request (py-spy, bench/dispatch.py).
    """

    def __init__(self, timeout: float, connections: int = 256) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = AiohttpTransport(limits=limits)
        self._timeout = httpx.Timeout(timeout).as_dict()

    async def send(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> Sent:
        try:
            outgoing = httpx.Request(request.method, request.url, headers=headers,
                                     content=request.body,
                                     extensions={"timeout": self._timeout})
            response = await self._transport.handle_async_request(outgoing)
            try:
                await response.aread()  # read to the end: the connection goes back to the pool
            finally:
                await response.aclose()
            return Sent(response.status_code)
        except TRANSPORT_ERRORS as exc:
            return Sent(None, exc.__class__.__name__)

    async def close(self) -> None:
        await self._transport.aclose()
