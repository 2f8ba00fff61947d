"""HTTP mapping of errors, in one place (STYLE.md §6).

Domain errors (tables.errors.FlareError) carry SPEC's title and detail; unknown routes and
wrong methods get SPEC §2's bodies. Handlers never build error JSON by hand.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.responses import json_response
from tables.errors import FlareError

log = logging.getLogger("flare.api")


def error_body(title: str, detail: str | None = None, status: int | None = None) -> dict:
    error: dict = {}
    if status is not None:
        error["status"] = status
    error["title"] = title
    if detail is not None:
        error["detail"] = detail
    return {"error": error}


async def flare_error(request: Request, exc: FlareError) -> Response:
    return json_response(error_body(exc.title, exc.detail), status=exc.status)


async def http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return json_response(error_body("not found", status=404), status=404)
    if exc.status_code == 405:
        return json_response(error_body("method not allowed", status=405), status=405,
                             headers=exc.headers)
    return json_response(error_body(str(exc.detail).lower(), status=exc.status_code),
                         status=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response(error_body("internal error", "the server could not handle the request"),
                         status=500)


HANDLERS = {FlareError: flare_error, HTTPException: http_error, Exception: unexpected_error}
