"""The Starlette application: routes of every API module joined in one place."""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from api import backfill, deliveries, documents, metrics, openapi, ops, resources, subscriptions, ui
from api.errors import HANDLERS
from api.middleware import BearerAuth, IgnoreTrailingSlash
from streams.runtime import Runtime

log = logging.getLogger("flare")


def create_api(runtime: Runtime) -> Starlette:
    """The API over a runtime; the runtime starts and stops with the app's lifespan."""
    @contextlib.asynccontextmanager
    async def lifespan(api: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            log.info("flare stopped cleanly")

    registry = metrics.Metrics(runtime)
    api = Starlette(
        # Documents first: nearly every request is a PUT there, and Starlette tries the
        # routes in order (no other route starts with /documents/).
        routes=[*documents.routes, *ops.routes, *resources.routes, *subscriptions.routes,
                *deliveries.routes, *backfill.routes, *metrics.routes, *ui.routes, *openapi.routes],
        # HttpMetrics after IgnoreTrailingSlash (which copies the scope) so that it sees the
        # route the router records in the scope; before BearerAuth so that 401s count.
        middleware=[Middleware(IgnoreTrailingSlash),
                    Middleware(metrics.HttpMetrics, counter=registry.http_requests),
                    Middleware(BearerAuth, tokens=runtime.settings.api_tokens)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    api.state.runtime = runtime
    api.state.settings = runtime.settings
    api.state.metrics = registry
    api.router.redirect_slashes = False
    return api
