"""Deliveries of one subscription (SPEC §9.6): list pending or dead ones, redrive the dead.

The deliveries table is partitioned across Flare processes, so the process that answers
asks every other member once (the dispatcher group's assignor knows their URLs,
streams/ownership.py), with the first configured token, and merges the answers. A member
that does not answer is named, never silently left out: the list says so in
``unanswered``; a redrive answers 503 naming them (what was asked of the others stays
asked; a redrive again is harmless).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.documents import FORWARDED, internal_headers
from api.responses import json_response
from tables.errors import FlareError

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


async def _ask_others(request: Request, method: str) -> tuple[list, list[str]]:
    """The other members' ``(url, answer)`` pairs, and the members that did not answer
    (or failed)."""
    if FORWARDED in request.headers:
        return [], []
    runtime = request.app.state.runtime
    hosts = _other_members(request)
    headers = internal_headers(runtime.settings)
    calls = [runtime.http.request(method, f"{host}{request.url.path}",
                                  params=request.query_params, headers=headers)
             for host in hosts]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    good, missing = [], []
    for host, answer in zip(hosts, answers):
        if isinstance(answer, Exception) or answer.status_code >= 300:
            missing.append(host)
        else:
            good.append((host, answer))
    return good, missing


async def list_deliveries(request: Request) -> Response:
    sub_id = _subscription_or_404(request)
    state = request.query_params.get("state")
    if state is not None and state not in STATES:
        raise FlareError(400, "invalid state", f"state must be pending or dead, not '{state}'")
    found = request.app.state.runtime.dispatcher.local_deliveries(sub_id, state)
    answers, missing = await _ask_others(request, "GET")
    for host, answer in answers:
        try:
            theirs = answer.json()["deliveries"]
            if not isinstance(theirs, list):
                raise TypeError(type(theirs).__name__)
        except (ValueError, KeyError, TypeError):  # not a Flare answer: say so
            missing.append(host)
            continue
        found.extend(theirs)
    found.sort(key=lambda d: d["document"])
    body: dict = {"deliveries": found}
    if missing:
        body["unanswered"] = missing
    return json_response(body)


async def redrive(request: Request) -> Response:
    sub_id = _subscription_or_404(request)
    await request.app.state.runtime.dispatcher.redrive_local(sub_id)
    _, missing = await _ask_others(request, "POST")
    if missing:
        raise FlareError(503, "service unavailable",
                         "redrive asked here, but these processes did not answer: "
                         + ", ".join(missing))
    return Response(status_code=202)


routes = [
    Route("/resources/{rid}/subscriptions/{sid}/deliveries", list_deliveries, methods=["GET"]),
    Route("/resources/{rid}/subscriptions/{sid}/deliveries/redrive", redrive, methods=["POST"]),
]
