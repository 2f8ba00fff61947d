"""The one place Flare sends a notification over HTTP (SPEC §9.2, §9.5, §9.6, §11a).

prepare (pure, tables/request.py) → send (here: the only httpx call) → record (the
dispatcher). Every transport failure is translated here, once, into "no status" (STYLE.md
§5): a timeout, a refused connection, a refused target and a protocol error are all
retried the same way, and said at most once per attempt, at debug level, without traceback.

httpx keeps the request and response API; its own transport is the dispatcher's ceiling
(DESIGN.md, Performance: measured in bench/dispatch.py at about a tenth of raw aiohttp
here), so requests go through the httpx-aiohttp transport: one pooled aiohttp session.

Hostile receivers (SPEC §11a, DESIGN.md invariant 8):

- the address is checked when the socket is made (aiohttp's ``socket_factory`` gets the
  address it is about to connect to, after any resolution, for names and literals alike),
  so a name that resolved to a public address when the subscription was created and to
  127.0.0.1 now (DNS rebinding) is refused; ``allow_private_targets`` turns this off;
- an attempt, from connect to the last byte read, ends after ``delivery_timeout`` seconds
  (the transport's own timeouts are per connect and per read: one byte every few seconds
  would never end);
- at most ``max_response_bytes`` of the answer are read; only the status is kept (§9.3).
  A connection whose answer was not read to its end is closed, not pooled.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from standardwebhooks.webhooks import Webhook

from tables.addresses import is_public_address
from tables.request import OutgoingRequest

log = logging.getLogger("flare.sender")

# Errors that mean "the subscriber did not answer with a status": retried (§9.3).
# httpx-aiohttp maps the common aiohttp errors to httpx ones; the rest of aiohttp's tree
# is caught too so that no transport failure escapes as a crash of the sending task.
TRANSPORT_ERRORS = (httpx.TransportError, httpx.InvalidURL, httpx.UnsupportedProtocol,
                    aiohttp.ClientError, asyncio.TimeoutError, OSError)

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024


class TargetRefused(PermissionError):
    """The address a notification was about to be connected to is not public (§11a)."""


@dataclass(frozen=True)
class Sent:
    status: int | None  # None: no HTTP status (transport error, timeout, refused target)
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


def public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory: a socket only for a public address (SPEC §11a)."""
    family, type_, proto, _, sockaddr = addr_info
    if not is_public_address(sockaddr[0]):
        raise TargetRefused(errno.EACCES, f"{sockaddr[0]} is not a public address")
    return socket.socket(family=family, type=type_, proto=proto)


def _reason(exc: BaseException) -> str:
    """A short name for a failed attempt: the refused target when that is the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TargetRefused):
            return f"TargetRefused: {seen.strerror}"
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(seen.os_error, TargetRefused):
            return f"TargetRefused: {seen.os_error.strerror}"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, TimeoutError):
        return "Timeout"
    return exc.__class__.__name__


class Sender:
    """httpx requests over the httpx-aiohttp transport (one pooled aiohttp session); no
    redirects; a total deadline per attempt; a bounded read of the answer; public
    addresses only unless ``allow_private``.

    Requests go to the transport directly (``handle_async_request``, httpx's public
    transport API) rather than through ``httpx.AsyncClient``: the client's layers are
    auth, redirects, cookies and base-URL merging, none of which a notification uses (no
    redirects by SPEC §9.2, absolute URLs, no cookies kept between subscribers), and they
    cost about half of the dispatcher's CPU per request (py-spy, bench/dispatch.py).
    """

    def __init__(self, timeout: float, connections: int = 256, *, allow_private: bool = False,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self._deadline = timeout
        self._max_response_bytes = max_response_bytes
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = AiohttpTransport(
            limits=limits, client=self._session_factory(connections, allow_private, resolver))
        self._timeout = httpx.Timeout(timeout).as_dict()

    @classmethod
    def from_settings(cls, settings: Any) -> "Sender":
        return cls(settings.delivery_timeout, settings.delivery_concurrency,
                   allow_private=settings.allow_private_targets,
                   max_response_bytes=settings.delivery_max_response_bytes)

    @staticmethod
    def _session_factory(connections: int, allow_private: bool,
                         resolver: aiohttp.abc.AbstractResolver | None
                         ) -> Callable[[], aiohttp.ClientSession]:
        """Made on first use, inside the running loop (as the transport does itself)."""

        def make() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=connections, ssl=httpx.create_ssl_context(), resolver=resolver,
                socket_factory=None if allow_private else public_socket)
            # trust_env stays off: no proxy from the environment, where the check would
            # see the proxy's address instead of the subscriber's.
            return aiohttp.ClientSession(connector=connector, trust_env=False)

        return make

    async def send(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> Sent:
        try:
            async with asyncio.timeout(self._deadline):
                return Sent(await self._attempt(request, headers))
        except TRANSPORT_ERRORS as exc:
            reason = _reason(exc)
            log.debug("delivery attempt to %s failed: %s", request.url, reason)
            return Sent(None, reason)

    async def _attempt(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> int:
        outgoing = httpx.Request(request.method, request.url, headers=headers,
                                 content=request.body, extensions={"timeout": self._timeout})
        response = await self._transport.handle_async_request(outgoing)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= self._max_response_bytes:
                    break  # the rest is not read: the connection is closed, not pooled
        finally:
            await response.aclose()
        return response.status_code

    async def close(self) -> None:
        await self._transport.aclose()
