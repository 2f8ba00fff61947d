"""The API baseline: a minimal Starlette endpoint under the same uvicorn setup as Flare.

``PUT /documents/<url>`` reads the body, decodes it with orjson, checks it is an object
(what Flare's API does before its own checks and the Kafka write) and answers 202. No
Kafka, no validation: the ratio Flare / this shows the cost of Flare's request path.

Run: ``python -m bench.minimal_api PORT``.
"""

from __future__ import annotations

import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def put_document(request: Request) -> Response:
    document = orjson.loads(await request.body())
    if not isinstance(document, dict):
        return Response(status_code=400)
    return Response(status_code=202)


async def healthz(request: Request) -> Response:
    return Response(b"ok")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/documents/{url:path}", put_document, methods=["PUT"]),
                             Route("/healthz", healthz, methods=["GET"])])


def main() -> None:
    port = int(sys.argv[1])
    # The uvicorn configuration of app/server.py (serve()).
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, lifespan="on",
                            log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
