"""The sender's own CPU per delivery: ``streams.sender.Sender`` against the sender before
issue 13 (httpx requests over the httpx-aiohttp transport), in one process under uvloop,
sending to the Go receiver of bench/e2e.py with 256 requests in flight. Alternating
rounds; CPU µs per request from ``time.process_time`` (this process only).

``python -m bench.sender_cost [N] [ROUNDS]``; the broker is not needed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop
from httpx_aiohttp import AiohttpTransport

from bench.e2e import Receiver
from streams import sender as current
from tables.request import OutgoingRequest

CONCURRENCY = 256


class HttpxSender(current.Sender):
    """streams/sender.py before issue 13: an httpx.Request handed to the httpx-aiohttp
    transport, the answer read through httpx's response stream. The same connector,
    socket check, deadline and response bound."""

    def __init__(self, timeout: float, connections: int = CONCURRENCY, *,
                 allow_private: bool = False,
                 max_response_bytes: int = current.DEFAULT_MAX_RESPONSE_BYTES) -> None:
        super().__init__(timeout, connections, allow_private=allow_private,
                         max_response_bytes=max_response_bytes)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = AiohttpTransport(limits=limits, client=self._make_session)
        self._timeout = httpx.Timeout(timeout).as_dict()

    async def _attempt(self, request: OutgoingRequest, headers: list[tuple[str, str]]) -> int:
        outgoing = httpx.Request(request.method, request.url, headers=headers,
                                 content=request.body, extensions={"timeout": self._timeout})
        response = await self._transport.handle_async_request(outgoing)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= self._max_response_bytes:
                    break
        finally:
            await response.aclose()
        return response.status_code

    async def close(self) -> None:
        await self._transport.aclose()


async def cpu_per_send(make, url: str, n: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s) of ``n`` sends by CONCURRENCY workers."""
    sender = make()
    body = (b'{"id":"http://e2e.test/users/1","action":"update","updatedAt":"2026-01-01T00:00:00Z",'
            b'"document":{"id":1,"version":2,"name":"User number 1"}}')
    headers = [("Content-Type", "application/json"), ("webhook-id", "msg_x"),
               ("webhook-timestamp", "1767225600")]
    requests = [OutgoingRequest("POST", f"{url}/s/{i}", headers, body) for i in range(n)]
    todo = iter(requests)

    async def work() -> None:
        for request in todo:
            sent = await sender.send(request, request.headers)
            assert sent.status == 200, sent

    try:
        await asyncio.gather(*(work() for _ in range(CONCURRENCY)))  # warm: connections made
        todo = iter(requests)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(work() for _ in range(CONCURRENCY)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await sender.close()
    return cpu / n * 1e6, n / wall


def main(n: int = 20_000, rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as work:
        receiver = Receiver(Path(work))
        try:
            kinds = {"httpx over httpx-aiohttp (before)": HttpxSender,
                     "streams.sender.Sender (now)": current.Sender}
            found: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
            for _ in range(rounds):
                for name, cls in kinds.items():
                    make = lambda cls=cls: cls(10.0, CONCURRENCY, allow_private=True)  # noqa: E731
                    found[name].append(uvloop.run(cpu_per_send(make, receiver.url, n)))
            for name, runs in found.items():
                cpu = statistics.median(r[0] for r in runs)
                rate = statistics.median(r[1] for r in runs)
                print(f"{name}: {cpu:.0f} µs CPU per request (rounds: "
                      f"{', '.join(f'{r[0]:.0f}' for r in runs)}), {rate:,.0f} requests/s")
        finally:
            receiver.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
