"""``/metrics`` (SPEC §11): Prometheus text format, open without a token (SPEC §2).

- HTTP requests by method, route template and status: :class:`HttpMetrics`, one counter
  increment per request (the labelled child is looked up in a dict of its own).
- Changes rejected by reason class, delivery attempts by outcome and the delivery latency
  histogram: counted by the stages as they go (streams/metrics.py).
- Everything else is read from the runtime when Prometheus asks (:class:`RuntimeCollector`):
  changes accepted, table sizes, pending, dead and in-flight deliveries, consumer lag per
  stage and partition, stage readiness, failures and restarts. Nothing is kept per event.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable

from prometheus_client import (CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams import metrics as stream_metrics
from tables.delivery import DEAD, PENDING, record_kind

UNMATCHED = "unmatched"
# No ``*_created`` series beside every counter: Prometheus does not need them here.
disable_created_metrics()


def http_requests_counter() -> Counter:
    return Counter("flare_http_requests", "HTTP requests answered, by method, route template"
                   " and status.", ["method", "route", "status"], registry=None)


class HttpMetrics:
    """Counts every answered request by route template (``/documents/{url:path}``, never
    the URL itself) and status. A request no route took (404, or a 401 before routing)
    is labelled with the route it would have taken, or ``unmatched``."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter
        self._children: dict[tuple[str, str, int], Any] = {}

    def _count(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        template = route.path if route is not None else self._template(scope)
        key = (scope["method"], template, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.counter.labels(key[0], template, str(status))
        child.inc()

    @staticmethod
    def _template(scope: Scope) -> str:
        app = scope.get("app")
        for route in getattr(app, "routes", ()):
            with contextlib.suppress(Exception):
                if route.matches(scope)[0] is not Match.NONE:
                    return route.path
        return UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._count(scope, status)


class RuntimeCollector(Collector):
    """Reads the runtime when Prometheus asks. Consumer positions come from aiokafka's
    async API, so :meth:`refresh_lag` runs in the /metrics handler just before."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        #: stage label → {partition: lag}, filled by refresh_lag
        self.lag: dict[str, dict[int, int]] = {}

    def _stages(self) -> list[tuple[str, Any]]:
        runtime = self.runtime
        return [(name, stage) for name in ("changes", "dispatcher")
                if (stage := getattr(runtime, name, None)) is not None]

    async def refresh_lag(self) -> None:
        """Processed offsets against the last fetched high watermark (streams/stage.py)."""
        self.lag = {name: stage.lag() for name, stage in self._stages()}

    def collect(self) -> Iterable[Any]:
        stages = self._stages()
        accepted = CounterMetricFamily(
            "flare_changes_accepted", "Changes read from the documents topic that passed the"
            " checks of SPEC §8 (API and direct producers), since this process started.")
        accepted.add_metric([], getattr(getattr(self.runtime, "changes", None), "accepted", 0))
        yield accepted

        records = GaugeMetricFamily("flare_table_records",
                                    "Records in the tables of the partitions this process owns"
                                    " (RocksDB's estimate with table_store = rocksdb).",
                                    labels=["table"])
        ready = GaugeMetricFamily("flare_stage_ready", "1 when the stage has joined its group"
                                  " and read its table.", labels=["stage"])
        failed = GaugeMetricFamily("flare_stage_failed", "1 while the stage restarts after"
                                   " a failure not tied to a message (see /readyz).",
                                   labels=["stage"])
        restarts = CounterMetricFamily("flare_stage_restarts", "Restarts of a stage inside"
                                       " this process.", labels=["stage"])
        rebalances = CounterMetricFamily("flare_stage_rebalances", "Partition revocations and"
                                         " assignments seen by the stage.", labels=["stage"])
        parked = CounterMetricFamily("flare_stage_parked", "Messages a stage could not"
                                     " handle and parked with their reason (invariant 6).",
                                     labels=["stage"])
        recovered = CounterMetricFamily(
            "flare_stage_changelog_read", "Changelog records read to recover tables since this"
            " process started (with local stores kept, only the changelog's tail).",
            labels=["stage"])
        table_names = {"changes": "documents", "dispatcher": "deliveries"}
        for name, stage in stages:
            tables = getattr(stage, "tables", {})
            records.add_metric([table_names[name]], sum(len(t) for t in list(tables.values())))
            ready.add_metric([name], 1 if stage.readiness() is None else 0)
            failed.add_metric([name], 1 if stage.failure() is not None else 0)
            restarts.add_metric([name], stage.restarts)
            rebalances.add_metric([name], stage.rebalances)
            parked.add_metric([name], stage.parked)
            recovered.add_metric([name], getattr(stage, "changelog_read", 0))
        yield from (records, ready, failed, restarts, rebalances, parked, recovered)

        dispatcher = getattr(self.runtime, "dispatcher", None)
        if dispatcher is not None:
            pending, dead = dispatcher.counts()
            for metric, help_, value in (
                ("flare_deliveries_pending", "Deliveries waiting to be sent or retried"
                 " (including those in flight).", pending),
                ("flare_deliveries_dead", "Deliveries parked as dead (past giveUpAfter);"
                 " redrive sends them again.", dead),
                ("flare_deliveries_in_flight", "Notification requests in flight.",
                 len(dispatcher.inflight)),
            ):
                family = GaugeMetricFamily(metric, help_)
                family.add_metric([], value)
                yield family

        lag = GaugeMetricFamily("flare_consumer_lag", "Messages of the source topic not yet"
                                " processed, per stage and partition owned by this process.",
                                labels=["stage", "partition"])
        for name, partitions in self.lag.items():
            for partition, value in partitions.items():
                lag.add_metric([name, str(partition)], value)
        yield lag


def delivery_counts(tables: dict[int, Any]) -> tuple[int, int]:
    """(pending, dead) over the deliveries tables (a scan: the dispatcher keeps these
    counts as it writes, ``Dispatcher.counts``; this is the reference they are tested on)."""
    kinds = [0, 0, 0]
    for table in list(tables.values()):
        for _, value in table.items():
            kinds[record_kind(value)] += 1
    return kinds[PENDING], kinds[DEAD]


class Metrics:
    """The registry of one API app: the HTTP counter, the stages' metrics and the
    collector over its runtime."""

    def __init__(self, runtime: Any) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = http_requests_counter()
        self.collector = RuntimeCollector(runtime)
        for collector in (self.http_requests, stream_metrics.CHANGES_REJECTED,
                          stream_metrics.DELIVERIES, stream_metrics.DELIVERY_LATENCY,
                          self.collector):
            self.registry.register(collector)

    async def render(self) -> bytes:
        await self.collector.refresh_lag()
        return generate_latest(self.registry)


async def metrics(request: Request) -> Response:
    body = await request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


routes = [Route("/metrics", metrics, methods=["GET"])]
