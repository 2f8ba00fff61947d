"""Receivers that misbehave, on 127.0.0.1, for SPEC §11a tests (threads, raw sockets).

- ``SlowLoris``: answers the status line and headers, then one body byte every
  ``interval`` seconds, for ever (a per-read timeout never fires).
- ``HugeBody``: answers 200 with a body that never ends, as fast as it is read.
Each counts the connections it accepted, and stops by itself when ``stop()`` is called.
"""

from __future__ import annotations

import socket
import threading

from app.local_kafka import free_port


class _Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            self.serve(conn)
        except OSError:
            pass  # the sender gave up: what these receivers are for
        finally:
            conn.close()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class SlowLoris(_Server):
    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self.interval = interval

    def serve(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        # A byte whenever ``interval`` passes without the receiver being stopped; the
        # sender hanging up ends it too (sendall raises).
        while not self._stop.wait(self.interval):
            conn.sendall(b"x")


class HugeBody(_Server):
    def serve(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        while not self._stop.is_set():
            conn.sendall(chunk)
