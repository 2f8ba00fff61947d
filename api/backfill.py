"""``POST /resources/{rid}/subscriptions/{sid}/backfill`` (SPEC §11): offer the current
revision of every live document of the resource to one subscription, as ``create``.

The documents table is partitioned across Flare processes: the process that answers does
its part (streams/backfill.py) and asks every other member of the changes group once
(``x-flare-forwarded``), with the first API token when tokens are set. The 202 comes only
when every partition was offered by some member and every offer is in Kafka; a member
that does not answer, or a partition nobody holds (a rebalance), is a 503 that says so.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.documents import FORWARDED, internal_headers
from api.responses import json_response
from streams.backfill import backfill_local
from tables.errors import FlareError



def _check(request: Request) -> tuple[str, str]:
    """404 with SPEC's titles for an unknown resource or subscription."""
    view = request.app.state.runtime.view
    resource_id, sub_id = request.path_params["rid"], request.path_params["sid"]
    if view.resource(resource_id) is None:
        raise FlareError(404, "error during resource search", f"resource '{resource_id}' not found")
    sub = view.subscriptions.get(sub_id)
    if sub is None or sub.resource_id != resource_id:
        raise FlareError(404, "error during subscription search",
                         f"subscription '{sub_id}' at resource '{resource_id}', not found")
    return resource_id, sub_id


async def _ask(request: Request, host: str) -> dict:
    runtime = request.app.state.runtime
    answer = await runtime.http.post(f"{host}{request.url.path}",
                                     headers=internal_headers(runtime.settings))
    if answer.status_code != 200:
        raise RuntimeError(f"answered {answer.status_code}: {answer.text[:200]}")
    return answer.json()


async def backfill(request: Request) -> Response:
    resource_id, sub_id = _check(request)
    runtime = request.app.state.runtime
    mine = await backfill_local(runtime, resource_id, sub_id)
    if FORWARDED in request.headers:
        return json_response(mine.to_json())
    me = runtime.settings.canonical_url.rstrip("/")
    others = sorted({h.rstrip("/") for h in runtime.changes.members()} - {me})
    answers = await asyncio.gather(*(_ask(request, host) for host in others),
                                   return_exceptions=True)
    covered, offered = set(mine.partitions), mine.offered
    for host, answer in zip(others, answers):
        if isinstance(answer, BaseException):
            raise FlareError(503, "error during backfill",
                             f"member {host} did not answer: {answer}")
        covered.update(answer["partitions"])
        offered += answer["offered"]
    unheld = sorted(set(range(runtime.changes.partitions)) - covered)
    if unheld:
        raise FlareError(503, "error during backfill",
                         f"documents partitions {unheld} have no owner now (a rebalance?): "
                         "try again")
    return json_response({"offered": offered}, status=202)


routes = [
    Route("/resources/{rid}/subscriptions/{sid}/backfill", backfill, methods=["POST"]),
]
