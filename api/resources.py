"""Resources routes (SPEC §5): validate in tables/, apply through the registry command."""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import read_body
from api.pagination import parse_page
from api.responses import json_response
from tables.errors import FlareError
from tables.resources import Resource, parse_resource_body


def _not_found(title: str, resource_id: str) -> FlareError:
    return FlareError(404, title, f"resource '{resource_id}' not found")


async def list_resources(request: Request) -> Response:
    page = parse_page(request.query_params)
    resources = list(request.app.state.runtime.view.resources.values())
    items = [r.to_json() for r in page.slice(resources)]
    return json_response(page.body("resources", items, len(resources)))


async def create_resource(request: Request) -> Response:
    endpoint, field, fmt = parse_resource_body(await read_body(request))
    resource = Resource(id=str(uuid.uuid4()), endpoint=endpoint, field=field, format=fmt,
                        created_at=int(time.time()))
    reply = await request.app.state.runtime.registry.execute(
        {"kind": "create_resource", "resource": resource.to_record()}
    )
    created = Resource.from_record(reply["record"])
    return json_response(created.to_json(), status=201,
                         headers={"Location": f"/resources/{created.id}"})


async def get_resource(request: Request) -> Response:
    resource_id = request.path_params["rid"]
    resource = request.app.state.runtime.view.resource(resource_id)
    if resource is None:
        raise _not_found("error during resource search", resource_id)
    return json_response(resource.to_json())


async def delete_resource(request: Request) -> Response:
    await request.app.state.runtime.registry.execute(
        {"kind": "delete_resource", "object_id": request.path_params["rid"]}
    )
    return Response(status_code=204)


async def resources(request: Request) -> Response:
    if request.method == "POST":
        return await create_resource(request)
    return await list_resources(request)


async def resource(request: Request) -> Response:
    if request.method == "DELETE":
        return await delete_resource(request)
    return await get_resource(request)


routes = [
    Route("/resources", resources, methods=["GET", "POST"]),
    Route("/resources/{rid}", resource, methods=["GET", "DELETE"]),
]
