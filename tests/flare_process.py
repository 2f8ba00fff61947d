"""A real `flare start` subprocess for integration tests, stopped by its own PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, TypeVar

import httpx

from app.local_kafka import free_port

T = TypeVar("T")
FLARE = str(Path(sys.executable).with_name("flare"))


def unique_name(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:10]}"


def poll(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.1,
         message: str = "condition") -> T:
    """Return the first truthy value of ``condition()``, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while a process is starting
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s (last error: {last_error!r})")


async def poll_async(condition: Callable[[], object], timeout: float = 30.0,
                     interval: float = 0.05, message: str = "condition"):
    """:func:`poll` for asyncio tests: ``condition`` may be a coroutine function; the loop
    runs on between two looks."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout}s (last: {last!r})")


class FlareProcess:
    def __init__(self, *, bootstrap: str, data_dir: Path, prefix: str | None = None,
                 app_id: str | None = None, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.prefix = prefix or unique_name("t")
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "FLARE_KAFKA_BOOTSTRAP": bootstrap,
            "FLARE_HTTP_PORT": str(self.port),
            "FLARE_TOPIC_PREFIX": self.prefix,
            "FLARE_APP_ID": app_id or self.prefix,
            "FLARE_DATA_DIR": str(self.data_dir),
            "FLARE_SESSION_TIMEOUT": "6",
            "FLARE_ALLOW_PRIVATE_TARGETS": "true",
            "FLARE_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / f"flare-{self.port}.log"
        self.client = httpx.Client(base_url=self.base_url, timeout=30.0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> "FlareProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([FLARE, "start"], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def readyz(self) -> httpx.Response:
        return self.client.get("/readyz")

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"flare exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            return self.readyz().status_code == 200

        try:
            poll(ready, timeout=timeout, interval=0.2, message="/readyz 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- flare log ---\n{self.log()[-4000:]}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful), SIGKILL if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash at an arbitrary moment."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    # Small conveniences for tests
    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.client.post(path, **kw)

    def put(self, path: str, **kw) -> httpx.Response:
        return self.client.put(path, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.client.delete(path, **kw)
