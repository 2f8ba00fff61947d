"""The one place Flare sends a notification over HTTP (SPEC §9.2, §9.5, §9.6, §11a).

prepare (pure, tables/request.py) → send (here: the only HTTP client call) → record
(the dispatcher). Every transport failure is translated here, once, into "no status" (STYLE.md
§5): a timeout, a refused connection, a refused target and a protocol error are all
retried the same way, and said at most once per attempt, at debug level, without traceback.

Requests go out through one pooled aiohttp session (DESIGN.md, Performance: httpx's own
pool was the dispatcher's ceiling, and httpx's models over aiohttp cost a quarter of the
sender's CPU, bench/sender_cost.py).

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

Every connection is reset when it is closed (``SO_LINGER`` on, 0 s), also by the kernel when
the process dies: what the kernel still holds of a request is dropped, not sent on. A
graceful close hands it over to the kernel, which goes on sending it for as long as TCP
retries (seconds, ~15 s seen in tests/integration/test_crash.py when the subscriber's accept
queue overflowed): a request the sender gave up on, or one in flight when the process was
killed, then reached the subscriber after the next attempt or a newer revision had — the
same webhook-id twice within one life, older revisions after newer (invariant 3). Bytes the
subscriber's kernel already acknowledged can still be read by it; those arrive at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiohttp
import httpx
from standardwebhooks.webhooks import Webhook

from tables.addresses import is_public_address
from tables.request import OutgoingRequest

log = logging.getLogger("flare.sender")

# Errors that mean "the subscriber did not answer with a status": retried (§9.3).
# aiohttp's whole tree (connection, payload, invalid or non-HTTP URL), the deadline, and
# OSError, so that no transport failure escapes as a crash of the sending task.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
READ_CHUNK = 16 * 1024
#: The trust store httpx used (certifi), so verification is what it was.
SSL_CONTEXT = httpx.create_ssl_context()


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


#: ``SO_LINGER`` on with a 0 s timeout: close (or the process's death) resets the connection.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def outgoing_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory when private targets are allowed: every connection is
    reset when closed (module docstring)."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    return sock


def public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory: a socket only for a public address (SPEC §11a)."""
    sockaddr = addr_info[4]
    if not is_public_address(sockaddr[0]):
        raise TargetRefused(errno.EACCES, f"{sockaddr[0]} is not a public address")
    return outgoing_socket(addr_info)


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
    """aiohttp requests over one pooled session; no redirects; a total deadline per
    attempt; a bounded read of the answer; public addresses only unless ``allow_private``.

    aiohttp directly, not httpx: httpx's request and response models over the
    httpx-aiohttp transport cost about a quarter of the sender's CPU per request and
    brought nothing a notification uses (bench/sender_cost.py, docs/architecture.md).
    """

    def __init__(self, timeout: float, connections: int = 256, *, allow_private: bool = False,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 resolver: aiohttp.abc.AbstractResolver | None = None) -> None:
        self._deadline = timeout
        self._max_response_bytes = max_response_bytes
        self._connections = connections
        self._allow_private = allow_private
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> "Sender":
        return cls(settings.delivery_timeout, settings.delivery_concurrency,
                   allow_private=settings.allow_private_targets,
                   max_response_bytes=settings.delivery_max_response_bytes)

    def _make_session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running loop."""
        connector = aiohttp.TCPConnector(
            limit=self._connections, ssl=SSL_CONTEXT, resolver=self._resolver,
            socket_factory=outgoing_socket if self._allow_private else public_socket)
        # trust_env stays off: no proxy from the environment, where the check would see
        # the proxy's address instead of the subscriber's. The deadline is ours (send).
        return aiohttp.ClientSession(connector=connector, trust_env=False,
                                     timeout=aiohttp.ClientTimeout(total=None),
                                     auto_decompress=False)

    async def send(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> Sent:
        try:
            async with asyncio.timeout(self._deadline):
                return Sent(await self._attempt(request, headers))
        except TRANSPORT_ERRORS as exc:
            reason = _reason(exc)
            log.debug("delivery attempt to %s failed: %s", request.url, reason)
            return Sent(None, reason)

    async def _attempt(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> int:
        if self._session is None:
            self._session = self._make_session()
        response = await self._session.request(request.method, request.url,
                                               headers=headers, data=request.body,
                                               allow_redirects=False, compress=False)
        try:
            read = 0
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                read += len(chunk)
                if read >= self._max_response_bytes:
                    response.close()  # the rest is not read: the connection is closed
                    break
        finally:
            response.release()
        return response.status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
