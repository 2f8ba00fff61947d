"""Process wiring for ``flare start``: uvicorn drives the loop, Faust runs inside it."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_api
from app.config import Settings
from streams.app import build_faust_app
from streams.changes import Changes
from streams.dispatcher import Dispatcher
from streams.registry import Registry, register_registry_agent
from streams.registry_view import RegistryView
from streams.runtime import Runtime


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # Faust, aiokafka and httpx (a line per delivery) are chatty at info; warnings still show.
    for noisy in ("faust", "mode", "aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    for handler in logging.getLogger().handlers:
        handler.addFilter(BrokerDownFilter())


class BrokerDownFilter(logging.Filter):
    """While a broker is down, aiokafka logs an ERROR per connection attempt of every
    client (about 300 lines a second here). streams/runtime.py says once that Kafka is
    unreachable and once that it is back; these lines add nothing to that."""

    REPEATED = ("Unable connect to node", "Unable to update metadata",
                "Unable to request metadata", "Group Coordinator Request failed",
                "Marking the coordinator dead", "Failed fetch offsets")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("aiokafka") and isinstance(record.msg, str)
                    and record.msg.startswith(self.REPEATED))


def build_runtime(settings: Settings) -> Runtime:
    """The stream side: the Faust app with the registry agent, the registry view, and the
    two batch stages (streams/changes.py, streams/dispatcher.py)."""
    app = build_faust_app(settings)
    view = RegistryView(settings)
    registry = Registry(settings, view)
    register_registry_agent(app, settings, registry)
    changes = Changes(settings, view)
    dispatcher = Dispatcher(settings, view)
    changes.offers = dispatcher.offers
    return Runtime(settings, app, view, registry, changes, dispatcher)


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level)
    logging.getLogger("flare").info("starting with %s", settings.masked())
    runtime = build_runtime(settings)
    api = create_api(runtime)
    config = uvicorn.Config(api, host=settings.http_host, port=settings.http_port,
                            lifespan="on", log_level=settings.log_level, access_log=False,
                            timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()
