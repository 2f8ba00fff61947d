"""ASGI middleware that shapes every request before routing."""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


class IgnoreTrailingSlash:
    """SPEC §2: one trailing '/' on a request path is ignored (no redirect).

    Document URLs too: a resource endpoint drops its trailing '/' (SPEC §5 step 2), so a
    document URL with one matches like the same URL without it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope, path=path[:-1])
                raw = scope.get("raw_path")
                if raw and raw.endswith(b"/"):
                    scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)


class BearerAuth:
    """SPEC §2: when tokens are configured, every route but the operations probes needs
    ``Authorization: Bearer <token>``; otherwise 401."""

    OPEN = ("/healthz", "/readyz", "/metrics")

    def __init__(self, app: ASGIApp, tokens: tuple[str, ...]) -> None:
        self.app = app
        self.tokens = {t.encode() for t in tokens}

    def _accepts(self, given: bytes) -> bool:
        # The scheme is case-insensitive (RFC 7235 §2.1); the token is compared exactly.
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return any(hmac.compare_digest(token, t) for t in self.tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The dashboard's pages check the token in a cookie themselves (api/ui.py).
        if (scope["type"] != "http" or not self.tokens or scope["path"] in self.OPEN
                or scope["path"] == "/ui" or scope["path"].startswith("/ui/")):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if self._accepts(given):
            await self.app(scope, receive, send)
            return
        detail = "missing bearer token" if not given else "invalid bearer token"
        body = orjson.dumps({"error": {"title": "unauthorized", "detail": detail}})
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
