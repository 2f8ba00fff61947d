"""Operations routes (SPEC §11): version, liveness, readiness."""

from __future__ import annotations

import platform

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.responses import json_response
from app import __version__


async def root(request: Request) -> Response:
    return json_response({"version": __version__, "python": platform.python_version()})


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    ready, reason = request.app.state.runtime.readiness()
    return json_response({"status": "ready" if ready else "not ready", "reason": reason},
                         status=200 if ready else 503)


routes = [
    Route("/", root, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
