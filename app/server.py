"""Process wiring for ``flare start``: uvicorn drives the loop, the stream side runs inside it."""

from __future__ import annotations

import logging
import os

import uvicorn

from api.app import create_api
from app.config import Settings
from app.logs import configure_logging, private_targets_line
from streams.changes import Changes
from streams.dispatcher import Dispatcher
from streams.registry import Registry
from streams.registry_view import RegistryView
from streams.runtime import Runtime


def build_runtime(settings: Settings) -> Runtime:
    """The stream side: the registry view, the registry (streams/registry.py) and the two
    batch stages (streams/changes.py, streams/dispatcher.py)."""
    view = RegistryView(settings)
    registry = Registry(settings, view)
    changes = Changes(settings, view)
    dispatcher = Dispatcher(settings, view)
    changes.offers = dispatcher.offers
    return Runtime(settings, view, registry, changes, dispatcher)


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("flare")
    log.info("%s", private_targets_line(settings.allow_private_targets))
    log.info("starting with %s", settings.masked())
    runtime = build_runtime(settings)
    api = create_api(runtime)
    # uvloop and httptools: a third less CPU per delivery (docs/benchmarks.md, issue 13).
    # For experiments (not settings): FLARE_UVICORN_LOOP=asyncio, FLARE_UVICORN_HTTP=h11.
    # httptools drops a target's #fragment, which api/protocol.py keeps (SPEC §8).
    loop = os.environ.get("FLARE_UVICORN_LOOP", "uvloop")
    http: object = os.environ.get("FLARE_UVICORN_HTTP", "httptools")
    if http == "httptools":
        from api.protocol import FragmentKeepingHttpTools
        http = FragmentKeepingHttpTools
    log.info("uvicorn loop %s, http %s", loop, getattr(http, "__name__", http))
    config = uvicorn.Config(api, host=settings.http_host, port=settings.http_port,
                            lifespan="on", log_level=settings.log_level, access_log=False,
                            log_config=None, loop=loop, http=http,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()
