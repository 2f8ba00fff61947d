"""Process wiring for ``flare start``: uvicorn drives the loop, the stream side runs inside it."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_api
from app.config import Settings
from streams.changes import Changes
from streams.dispatcher import Dispatcher
from streams.registry import Registry
from streams.registry_view import RegistryView
from streams.runtime import Runtime


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiokafka and httpx (a line per delivery) are chatty at info; warnings still show.
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_routine_rebalance)


def _routine_rebalance(record: logging.LogRecord) -> bool:
    """aiokafka warns on every heartbeat that meets a rebalance: that is how a member
    learns of one when a process joins or leaves, not a problem. Shown at info level."""
    if record.levelno == logging.WARNING and "because it is rebalancing" in record.getMessage():
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger("aiokafka").isEnabledFor(logging.INFO)
    return True


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
    configure_logging(settings.log_level)
    logging.getLogger("flare").info("starting with %s", settings.masked())
    runtime = build_runtime(settings)
    api = create_api(runtime)
    config = uvicorn.Config(api, host=settings.http_host, port=settings.http_port,
                            lifespan="on", log_level=settings.log_level, access_log=False,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()
