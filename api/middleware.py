"""ASGI middleware that shapes every request before routing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class IgnoreTrailingSlash:
    """SPEC §2: one trailing '/' on a request path is ignored (no redirect).

    Document URLs are excluded: their path is data (SPEC §8), read from the raw target.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/") and not path.startswith("/documents/"):
                scope = dict(scope, path=path[:-1])
                raw = scope.get("raw_path")
                if raw and raw.endswith(b"/"):
                    scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)
