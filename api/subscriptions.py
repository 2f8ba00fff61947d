"""Subscriptions routes (SPEC §7): validate in tables/, apply through the registry command."""

from __future__ import annotations

import asyncio
import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import read_body
from api.hosts import is_public_host
from api.pagination import parse_page
from api.responses import json_response
from tables.errors import FlareError
from tables.subscriptions import Subscription, parse_subscription_body


async def list_subscriptions(request: Request) -> Response:
    page = parse_page(request.query_params)
    subs = request.app.state.runtime.view.subscriptions_of(request.path_params["rid"])
    items = [s.to_json() for s in page.slice(subs)]
    return json_response(page.body("subscriptions", items, len(subs)))


async def create_subscription(request: Request) -> Response:
    runtime = request.app.state.runtime
    resource_id = request.path_params["rid"]
    # Step 1
    resource = runtime.view.resource(resource_id)
    if resource is None:
        raise FlareError(404, "error during resource search", f"resource '{resource_id}' not found")
    body = await read_body(request)
    # Steps 2-4; in a thread when the public-address rule resolves names (else the hop to
    # the thread costs more than the check).
    allow_private = request.app.state.settings.allow_private_targets
    if allow_private:
        fields = parse_subscription_body(body, resource, is_public_host=is_public_host,
                                         allow_private=True)
    else:
        fields = await asyncio.to_thread(parse_subscription_body, body, resource,
                                         is_public_host=is_public_host, allow_private=False)
    sub = Subscription(id=str(uuid.uuid4()), resource_id=resource_id,
                       created_at=int(time.time()), **fields)
    # Steps 5-6
    reply = await runtime.registry.execute(
        {"kind": "create_subscription", "subscription": sub.to_record()}
    )
    created = Subscription.from_record(reply["record"])
    return json_response(created.to_json(), status=201, headers={
        "Location": f"/resources/{resource_id}/subscriptions/{created.id}"})


async def get_subscription(request: Request) -> Response:
    resource_id, sub_id = request.path_params["rid"], request.path_params["sid"]
    sub = request.app.state.runtime.view.subscriptions.get(sub_id)
    if sub is None or sub.resource_id != resource_id:
        raise FlareError(404, "error during subscription search",
                         f"subscription '{sub_id}' at resource '{resource_id}', not found")
    return json_response(sub.to_json())


async def delete_subscription(request: Request) -> Response:
    await request.app.state.runtime.registry.execute({
        "kind": "delete_subscription", "resource_id": request.path_params["rid"],
        "object_id": request.path_params["sid"],
    })
    return Response(status_code=204)


async def subscriptions(request: Request) -> Response:
    if request.method == "POST":
        return await create_subscription(request)
    return await list_subscriptions(request)


async def subscription(request: Request) -> Response:
    if request.method == "DELETE":
        return await delete_subscription(request)
    return await get_subscription(request)


routes = [
    Route("/resources/{rid}/subscriptions", subscriptions, methods=["GET", "POST"]),
    Route("/resources/{rid}/subscriptions/{sid}", subscription, methods=["GET", "DELETE"]),
]
