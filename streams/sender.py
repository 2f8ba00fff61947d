"""The one place Flare sends a notification over HTTP (SPEC §9.2, §9.5, §9.6).

prepare (pure, tables/request.py) → send (here: the only httpx call) → record (the
dispatcher). Every transport failure is translated here, once, into "no status" (STYLE.md
§5): a timeout, a refused connection and a protocol error are all retried the same way.

httpx's pool slows down as it grows (DESIGN.md, Performance), so requests are spread over
several small clients by key: requests of one key always use the same client.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from tables.request import OutgoingRequest

# Errors that mean "the subscriber did not answer with a status": retried (§9.3).
TRANSPORT_ERRORS = (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol,
                    asyncio.TimeoutError, OSError)


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
    """A few pooled httpx clients; no redirects; a timeout per attempt (§9.2)."""

    def __init__(self, timeout: float, shards: int = 8, connections_per_shard: int = 16) -> None:
        limits = httpx.Limits(max_connections=connections_per_shard,
                              max_keepalive_connections=connections_per_shard)
        self._clients = [
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, limits=limits)
            for _ in range(shards)
        ]

    async def send(self, key: bytes, request: OutgoingRequest,
                   headers: list[tuple[str, str]]) -> Sent:
        client = self._clients[zlib.crc32(key) % len(self._clients)]
        try:
            response = await client.request(request.method, request.url, headers=headers,
                                            content=request.body)
            await response.aclose()
            return Sent(response.status_code)
        except TRANSPORT_ERRORS as exc:
            return Sent(None, exc.__class__.__name__)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
