"""Headless Debian Chromium for the dashboard test: found, or installed with apt-get once.

``chromium()`` returns the binary's path, or raises ``pytest.skip`` with the reason when
it is missing and cannot be installed (no root, no apt-get, no package source).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.flare_process import poll_async

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAMES = ("chromium", "chromium-browser")


def _found() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def install() -> tuple[str | None, str]:
    """(path, why not) after trying ``apt-get install chromium``."""
    if shutil.which("apt-get") is None:
        return None, "no apt-get on this machine"
    if os.geteuid() != 0:
        return None, "not root: cannot apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update", "-q"],
             ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0 and step[1] == "install":
            return None, f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"
    path = _found()
    return path, "" if path else "chromium installed but not on PATH"


def chromium() -> str:
    path = _found()
    if path is None:
        path, why = install()
        if path is None:
            pytest.skip(f"Debian's chromium is needed for the dashboard test: {why}")
    return path


def run(binary: str, *args: str, profile: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """One headless Chromium run with its own profile directory (stopped by its own PID
    through subprocess's timeout)."""
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp's websocket client):
    navigate, evaluate JavaScript in the page, take screenshots. ``async with`` starts it
    with its own profile and stops it by its own PID."""

    def __init__(self, binary: str, profile: Path, width: int = 1280, height: int = 860) -> None:
        self.binary, self.profile = binary, Path(profile)
        self.size = (width, height)
        self.process: subprocess.Popen | None = None
        self._session = None
        self._ws = None
        self._next_id = 0

    async def __aenter__(self) -> "Browser":
        import aiohttp

        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", f"--window-size={self.size[0]},{self.size[1]}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        def port_written() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode}")
            return port_file.exists() and bool(port_file.read_text().strip())

        await poll_async(port_written, timeout=30, interval=0.1,
                         message="chromium opened its DevTools port")
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        await self.call("Emulation.setDeviceMetricsOverride", width=self.size[0],
                        height=self.size[1], deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def call(self, method: str, **params) -> dict:
        """One DevTools command; events that arrive meanwhile are dropped."""
        import json

        self._next_id += 1
        ident = self._next_id
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = await self._ws.receive_json(timeout=60)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (None while it reloads)."""
        try:
            result = await self.call("Runtime.evaluate", expression=expression,
                                     returnByValue=True, awaitPromise=True)
        except RuntimeError:
            return None  # the page was navigating: its context went away
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> None:
        import base64

        shot = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
