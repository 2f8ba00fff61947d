"""``flare listen``: a local receiver that prints each notification (SPEC §11).

For trying Flare out and for debugging a subscription, like ``stripe listen``: point a
subscription at ``http://127.0.0.1:<port>/...`` and every request Flare sends is printed —
method and path, action, document id, ``webhook-id``, with ``--headers`` every header —
and answered 200. With ``--secret`` (the subscription's ``whsec_...``) the
``webhook-signature`` is checked as Standard Webhooks do: ``signature ok`` and 200, or
``signature INVALID (<why>)`` and 401, so Flare retries it like any failed delivery.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TextIO

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: Longest document text printed per notification.
MAX_SHOWN = 2000


@dataclass(frozen=True)
class Verdict:
    status: int  # what the receiver answers
    lines: list[str]  # what it prints


def check_signature(secret: str, headers: dict[str, str], body: bytes) -> str | None:
    """None when ``webhook-signature`` is valid for this body, else why not."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as exc:
        return str(exc) or "no matching signature"
    except Exception as exc:  # a malformed header or secret
        return f"{exc.__class__.__name__}: {exc}"
    return None


def _shown(value: object) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"... ({len(text)} chars)"


def describe(method: str, path: str, headers: dict[str, str], body: bytes,
             secret: str | None = None, show_headers: bool = False,
             status: int = 200) -> Verdict:
    """What to print for one request and what to answer (pure: tested without a socket)."""
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and "action" in payload and "id" in payload:
        # The envelope (content.envelope true, SPEC §9.2)
        summary = f"{payload['action']} {payload['id']}"
        shown = payload.get("document", payload.get("data"))
    else:
        summary = "(no envelope)"
        shown = payload if payload is not None else body.decode("utf-8", "replace")
    first = f"{method} {path}  {summary}  webhook-id={headers.get('webhook-id', '-')}"
    if secret is not None:
        why = check_signature(secret, headers, body)
        if why is None:
            first += "  signature ok"
        else:
            first += f"  signature INVALID ({why})"
            status = 401
    lines = [first]
    if show_headers:
        lines += [f"  {name}: {value}" for name, value in sorted(headers.items())]
    if shown not in (None, ""):
        lines.append(f"  {_shown(shown)}")
    return Verdict(status, lines)


def make_server(host: str, port: int, secret: str | None, show_headers: bool, status: int,
                out: TextIO = sys.stdout) -> ThreadingHTTPServer:
    printing = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            verdict = describe(self.command, self.path, dict(self.headers.items()), body,
                               secret, show_headers, status)
            with printing:
                out.write("\n".join(verdict.lines) + "\n")
                out.flush()
            self.send_response(verdict.status)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:  # the lines above say it all
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def listen(host: str, port: int, secret: str | None, show_headers: bool, status: int,
           out: TextIO = sys.stdout, ready: Callable[[], None] | None = None) -> None:
    server = make_server(host, port, secret, show_headers, status, out)
    checking = "checking signatures" if secret else "not checking signatures (no --secret)"
    out.write(f"listening on http://{host}:{server.server_port}, {checking}; Ctrl-C stops\n")
    out.flush()
    if ready is not None:
        ready()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
