"""Deliveries of one subscription (SPEC §9.6): list pending or dead ones, redrive the dead.

The deliveries table is partitioned across Flare processes, so the process that answers
asks every other member once (the dispatcher group's assignor knows their URLs,
streams/ownership.py) and merges the answers.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.responses import json_response
from tables.errors import FlareError

FORWARDED = "x-flare-forwarded"
STATES = ("pending", "dead")


def _subscription_or_404(request: Request) -> str:
    resource_id, sub_id = request.path_params["rid"], request.path_params["sid"]
    sub = request.app.state.runtime.view.subscriptions.get(sub_id)
    if sub is None or sub.resource_id != resource_id:
        raise FlareError(404, "error during subscription search",
                         f"subscription '{sub_id}' at resource '{resource_id}', not found")
    return sub_id


def _other_members(request: Request) -> list[str]:
    runtime = request.app.state.runtime
    me = runtime.settings.canonical_url
    return sorted(h.rstrip("/") for h in runtime.dispatcher.members() if h.rstrip("/") != me)


async def _ask_others(request: Request, method: str) -> list:
    if FORWARDED in request.headers:
        return []
    http = request.app.state.runtime.http
    calls = [http.request(method, f"{host}{request.url.path}", params=request.query_params,
                          headers={FORWARDED: "1"}) for host in _other_members(request)]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    return [a for a in answers if not isinstance(a, Exception) and a.status_code < 300]


async def list_deliveries(request: Request) -> Response:
    sub_id = _subscription_or_404(request)
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise FlareError(400, "invalid state", f"state must be pending or dead, not '{state}'")
    found = request.app.state.runtime.dispatcher.local_deliveries(sub_id, state)
    for answer in await _ask_others(request, "GET"):
        found.extend(answer.json()["deliveries"])
    found.sort(key=lambda d: d["document"])
    return json_response({"deliveries": found})


async def redrive(request: Request) -> Response:
    sub_id = _subscription_or_404(request)
    await request.app.state.runtime.dispatcher.redrive_local(sub_id)
    await _ask_others(request, "POST")
    return Response(status_code=202)


routes = [
    Route("/resources/{rid}/subscriptions/{sid}/deliveries", list_deliveries, methods=["GET"]),
    Route("/resources/{rid}/subscriptions/{sid}/deliveries/redrive", redrive, methods=["POST"]),
]
