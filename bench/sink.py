"""A notification sink for the dispatch benchmarks: an aiohttp server in its own process.

Every request is answered 200 at once and recorded (arrival time, path, webhook-id), so the
benchmark reads arrival times from the receiving side. ``GET /_stats`` returns them;
``POST /_reset`` forgets them. Run: ``python -m bench.sink PORT``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from aiohttp import web


def make_app() -> web.Application:
    arrivals: list[tuple[float, str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append((time.time(), request.path, request.headers.get("webhook-id", "")))
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": len(arrivals), "arrivals": arrivals})

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


class Sink:
    """The sink as a subprocess, stopped by its own PID."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sink":
        self.process = subprocess.Popen([sys.executable, "-m", "bench.sink", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/_stats", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the sink did not start")

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_stats", timeout=30).json()

    def count(self) -> int:
        return self.stats()["count"]

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset", timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
