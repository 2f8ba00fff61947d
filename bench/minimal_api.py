"""The API baselines: a minimal Starlette endpoint under the same uvicorn setup as Flare.

``PUT /documents/<url>`` reads the body, decodes it with orjson, checks it is an object
(what Flare's API does before its own checks and the Kafka write) and answers 202. No
validation: the ratio Flare / this shows the cost of Flare's request path. Given a
bootstrap and a topic, it also writes the body to Kafka keyed by the URL with an acks=all
idempotent producer (the settings of Flare's API producer) and answers once the broker
acknowledged it: the floor of an accepting call as SPEC §8 defines it.

Run: ``python -m bench.minimal_api PORT [BOOTSTRAP TOPIC]``.
"""

from __future__ import annotations

import contextlib
import sys

import orjson
import uvicorn
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = len("/documents/")


def create_app(bootstrap: str | None = None, topic: str | None = None) -> Starlette:
    producer: AIOKafkaProducer | None = None

    async def put_document(request: Request) -> Response:
        body = await request.body()
        document = orjson.loads(body)
        if not isinstance(document, dict):
            return Response(status_code=400)
        if producer is not None:
            key = request.scope["raw_path"][PREFIX:]
            await producer.send_and_wait(topic, body, key=key)
        return Response(status_code=202)

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        nonlocal producer
        if bootstrap:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                        enable_idempotence=True, linger_ms=2)
            await producer.start()
        try:
            yield
        finally:
            if producer is not None:
                await producer.stop()

    return Starlette(routes=[Route("/documents/{url:path}", put_document, methods=["PUT"]),
                             Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)


def main() -> None:
    port = int(sys.argv[1])
    bootstrap, topic = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else (None, None)
    # The uvicorn configuration of app/server.py (serve()).
    config = uvicorn.Config(create_app(bootstrap, topic), host="127.0.0.1", port=port,
                            lifespan="on", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
