"""Helpers shared by the notification tests (tests/integration/test_delivery*.py).

A fresh resource per test on a host of its own, subscriptions pointing at a real receiver
(tests/receiver.py), and two small servers tests/receiver.py cannot play: one that answers
3xx with a ``Location`` (§9.2: redirects are not followed) and one that never answers a
path until released (§9.4: a document in flight does not hold up another).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.local_kafka import free_port
from tests.flare_process import poll, unique_name
from tests.receiver import Received, Receiver

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
#: Fast retries for tests that wait on them (§9.6 delivery.retry).
FAST = {"initial": 0.1, "max": 0.3}


def new_resource(flare) -> tuple[str, str]:
    """A resource ``http://<own host>/users/{id}`` with revision field ``version``;
    returns ``(resource id, document base URL without {id})``."""
    host = f"{unique_name('api')}.test"
    answer = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}",
                                            "change": {"field": "version"}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], f"http://{host}/users"


def subscribe(flare, rid: str, url: str | None = None, *, method: str | None = "post",
              success=(200,), discard=(410,), retry: dict | None = None, **extra) -> dict:
    """Create a subscription; ``extra`` goes into the body as is (content, data, secret...)."""
    endpoint = dict(extra.pop("endpoint", {}))
    if url is not None:
        endpoint["url"] = url
    if method is not None:
        endpoint["method"] = method
    delivery = {"success": list(success), "discard": list(discard)}
    if retry is not None:
        delivery["retry"] = retry
    answer = flare.post(f"/resources/{rid}/subscriptions",
                        json={"endpoint": endpoint, "delivery": delivery, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def put(flare, url: str, version: int, **fields) -> dict:
    document = {"version": version, **fields}
    answer = flare.put(f"/documents/{url}", json=document)
    assert answer.status_code == 202, answer.text
    return document


def delete(flare, url: str) -> None:
    answer = flare.delete(f"/documents/{url}")
    assert answer.status_code == 202, answer.text


def wait_count(receiver, path: str, count: int, timeout: float = 20.0) -> list[Received]:
    """The requests to ``path`` once there are at least ``count`` of them."""
    return poll(lambda: (lambda got: got if len(got) >= count else None)(receiver.received(path)),
                timeout=timeout, message=f"{count} request(s) to {path}")


def seen(requests: list[Received]) -> list[tuple[str, int]]:
    """``(action, document version)`` of each enveloped request, in arrival order."""
    return [(r.json()["action"], r.json()["document"]["version"]) for r in requests]


def deliveries(flare, rid: str, sid: str, state: str | None = None) -> list[dict]:
    params = {} if state is None else {"state": state}
    answer = flare.get(f"/resources/{rid}/subscriptions/{sid}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def always(receiver: Receiver, path: str, status: int, times: int = 10_000) -> None:
    receiver.answer(path, *([status] * times))


def stop_scripting(receiver: Receiver, path: str) -> None:
    """From now on ``path`` answers 200 (drops what was scripted and not used)."""
    with receiver._lock:
        receiver.scripted[path].clear()


def now() -> float:
    return time.time()


class Server:
    """A receiver with what tests/receiver.py lacks.

    - ``answer(path, *statuses)``: scripted statuses, then ``default``; a 3xx answer carries
      ``Location: <redirect_to>``;
    - ``hang(path)``: requests to ``path`` get no answer until :meth:`release`.
    """

    def __init__(self, default: int = 200, redirect_to: str = "") -> None:
        self.port = free_port()
        self.default = default
        self.redirect_to = redirect_to
        self.requests: list[Received] = []
        self.scripted: dict[str, deque] = {}
        self.hanging: set[str] = set()
        self.released = threading.Event()
        self.answered: list[str] = []  # paths, in the order their answers went out
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, *statuses: int) -> None:
        with self._lock:
            self.scripted.setdefault(path, deque()).extend(statuses)

    def hang(self, path: str) -> None:
        self.hanging.add(path)

    def release(self) -> None:
        self.released.set()

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def up(self) -> "Server":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(Received(self.command, self.path,
                                                    {k.lower(): v for k, v in self.headers.items()},
                                                    body))
                    queue = server.scripted.get(self.path)
                    status = queue.popleft() if queue else server.default
                if self.path in server.hanging:
                    server.released.wait(60)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", server.redirect_to)
                self.send_header("content-length", "0")
                self.end_headers()
                with server._lock:
                    server.answered.append(self.path)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
