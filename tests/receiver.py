"""A real HTTP receiver on 127.0.0.1 for notification tests.

It records every request and answers with the statuses a test scripts per path (``default``,
200, when nothing is scripted); a 3xx answer carries ``Location: <redirect_to>``. ``hang(path)``
holds that path's answers until ``release()``. ``down()`` closes the listening socket
(connection refused), ``up()`` opens it again on the same port.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from app.local_kafka import free_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A sender that resets its connections (streams/sender.py) or is killed: no
        # traceback per connection, the request simply did not arrive whole.
        if isinstance(sys.exc_info()[1], ConnectionResetError):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.time() when it was read in full, and the client's (host, port)
    at: float = 0.0
    client: tuple = ()

    def json(self):
        return orjson.loads(self.body) if self.body else None


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    scripted: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    default: int = 200
    redirect_to: str = ""
    hanging: set[str] = field(default_factory=set)
    released: threading.Event = field(default_factory=threading.Event)
    #: paths, in the order their answers went out
    answered: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, *statuses: int) -> None:
        """The next requests to ``path`` get these statuses, in order; then 200."""
        with self._lock:
            self.scripted[path].extend(statuses)

    def stop_scripting(self, path: str) -> None:
        """Forget the statuses still scripted for ``path``: it answers ``default`` again."""
        with self._lock:
            self.scripted.pop(path, None)

    def hang(self, path: str) -> None:
        self.hanging.add(path)

    def release(self) -> None:
        self.released.set()

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def up(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(Received(self.command, self.path,
                                                      {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.time(), self.client_address))
                    queue = receiver.scripted.get(self.path)
                    status = queue.popleft() if queue else receiver.default
                if self.path in receiver.hanging:
                    receiver.released.wait(60)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", receiver.redirect_to)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver._lock:
                    receiver.answered.append(self.path)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:  # quiet
                pass

        self.released.clear()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
