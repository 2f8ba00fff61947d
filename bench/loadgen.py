"""A closed-loop HTTP/1.1 load generator on asyncio protocols (no HTTP client library).

``connections`` keep-alive connections each keep exactly one request in flight; a request
is built by ``make_request(n)`` (the n-th request, as bytes). Responses are parsed just
enough to find their end (``Content-Length``) and status. Client-side cost per request is
a few microseconds, so the server, not the generator, sets the pace (httpx or aiohttp
clients would spend more CPU than the minimal server they measure).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class _Shared:
    def __init__(self, make_request: Callable[[int], bytes]) -> None:
        self.make_request = make_request
        self.next = 0
        self.counting = False
        self.stopping = False
        self.result = LoadResult(0, 0.0)
        self.idle = 0
        self.all_idle = asyncio.Event()
        self.connections = 0
        #: count mode (:func:`run_count`): requests to send in all, and when each answer came
        self.limit: int | None = None
        self.done_at: list[float] = []


class _Connection(asyncio.Protocol):
    def __init__(self, shared: _Shared) -> None:
        self.shared = shared
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        shared = self.shared
        if shared.stopping or (shared.limit is not None and shared.next >= shared.limit):
            shared.idle += 1
            if shared.idle == shared.connections:
                shared.all_idle.set()
            return
        n = shared.next
        shared.next += 1
        self.sent_at = time.perf_counter()
        self.transport.write(shared.make_request(n))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15: line_end if line_end >= 0 else None])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            status = int(self.buffer[9:12])
            self.buffer = self.buffer[end:]
            shared = self.shared
            if shared.counting:
                now = time.perf_counter()
                shared.result.requests += 1
                shared.result.statuses[status] += 1
                shared.result.latencies_ms.append((now - self.sent_at) * 1000)
                if shared.limit is not None:
                    shared.done_at.append(now)
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def run_load(host: str, port: int, make_request: Callable[[int], bytes], *,
                   connections: int, warmup: float, duration: float) -> LoadResult:
    """Warm up for ``warmup`` seconds, then count completed requests for ``duration``."""
    loop = asyncio.get_running_loop()
    shared = _Shared(make_request)
    shared.connections = connections
    made = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(shared), host, port)
        made.append(protocol)
    await asyncio.sleep(warmup)
    shared.counting = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    shared.counting = False
    shared.result.seconds = time.perf_counter() - started
    shared.stopping = True
    try:
        await asyncio.wait_for(shared.all_idle.wait(), timeout=30)
    except asyncio.TimeoutError:
        pass
    for protocol in made:
        if protocol.transport is not None:
            protocol.transport.close()
    return shared.result


async def run_count(host: str, port: int, make_request: Callable[[int], bytes], *,
                    connections: int, total: int,
                    timeout: float = 3600.0) -> tuple[LoadResult, list[float]]:
    """Send exactly ``total`` requests (closed loop, ``connections`` in flight); return the
    result and when each answer came (``time.perf_counter()``, in order of arrival)."""
    loop = asyncio.get_running_loop()
    shared = _Shared(make_request)
    shared.connections = connections
    shared.limit = total
    shared.counting = True
    started = time.perf_counter()
    made = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(shared), host, port)
        made.append(protocol)
    try:
        await asyncio.wait_for(shared.all_idle.wait(), timeout=timeout)
    finally:
        shared.result.seconds = time.perf_counter() - started
        for protocol in made:
            if protocol.transport is not None:
                protocol.transport.close()
    return shared.result, [started] + shared.done_at
