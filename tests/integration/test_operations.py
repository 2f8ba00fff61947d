"""SPEC §11 through a real `flare start`: /metrics parsed with prometheus-client's parser and
moving as changes flow, and FLARE_LOG_FORMAT=json (one JSON object per line, nothing per
event at info level)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.flare_process import FlareProcess, poll, unique_name
from tests.integration.delivery_support import always, new_resource, put, subscribe, wait_count
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def jflare(kafka_bootstrap, tmp_path_factory):
    """A Flare process logging JSON lines, with tokens set (/metrics stays open)."""
    process = FlareProcess(bootstrap=kafka_bootstrap, prefix=unique_name("ops"),
                           data_dir=tmp_path_factory.mktemp("ops"),
                           env={"FLARE_LOG_FORMAT": "json", "FLARE_API_TOKENS": "tok"})
    process.client.headers["authorization"] = "Bearer tok"
    process.start()
    yield process
    process.stop()


@pytest.fixture
def receiver():
    receiver = Receiver().up()
    yield receiver
    receiver.down()


def scrape(flare) -> Samples:
    answer = flare.client.get("/metrics", headers={"authorization": ""})  # no token needed
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series(samples: Samples, name: str) -> dict[tuple, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


NAMED = ["flare_http_requests_total", "flare_changes_accepted_total",
         "flare_changes_rejected_total", "flare_deliveries_total",
         "flare_delivery_latency_seconds_bucket", "flare_delivery_latency_seconds_count",
         "flare_deliveries_pending", "flare_deliveries_dead", "flare_deliveries_in_flight",
         "flare_consumer_lag", "flare_table_records", "flare_stage_ready",
         "flare_stage_failed", "flare_stage_restarts_total", "flare_stage_rebalances_total"]


def test_metrics_move_as_changes_flow(jflare, receiver, kafka_bootstrap) -> None:
    rid, base = new_resource(jflare)
    subscribe(jflare, rid, receiver.url + "/ok/{id}")
    before = scrape(jflare)
    count = 20
    for n in range(count):
        put(jflare, f"{base}/{n}", 1)
    wait_count_all = lambda: sum(  # noqa: E731
        len(receiver.received(f"/ok/{n}")) for n in range(count)) >= count
    poll(wait_count_all, timeout=30, message=f"{count} deliveries")

    def moved() -> Samples | None:
        now = scrape(jflare)
        delivered = (value(now, "flare_deliveries_total", outcome="delivered")
                     - value(before, "flare_deliveries_total", outcome="delivered"))
        return now if delivered >= count else None

    after = poll(moved, timeout=20, message="delivered counter moved")
    for name in NAMED:
        assert series(after, name), f"{name} missing"
    assert (value(after, "flare_changes_accepted_total")
            - value(before, "flare_changes_accepted_total")) >= count
    latency = "flare_delivery_latency_seconds_count"
    assert value(after, latency) - value(before, latency) >= count
    put_202 = dict(method="PUT", route="/documents/{url:path}", status="202")
    assert (value(after, "flare_http_requests_total", **put_202)
            - value(before, "flare_http_requests_total", **put_202)) == count
    assert value(after, "flare_table_records", table="documents") >= count
    assert value(after, "flare_table_records", table="deliveries") >= count
    assert value(after, "flare_stage_ready", stage="changes") == 1
    assert value(after, "flare_stage_ready", stage="dispatcher") == 1
    lag = series(after, "flare_consumer_lag")
    assert {dict(labels)["stage"] for labels in lag} == {"changes", "dispatcher"}
    assert all(v >= 0 for v in lag.values())
    # /metrics itself is counted, without a token
    assert value(after, "flare_http_requests_total", method="GET", route="/metrics",
                 status="200") >= 1


def test_failures_show_as_retries_dead_deliveries_and_rejected_changes(
        jflare, receiver, kafka_bootstrap) -> None:
    rid, base = new_resource(jflare)
    always(receiver, "/down/1", 500)
    subscribe(jflare, rid, receiver.url + "/down/{id}",
              retry={"initial": 0.1, "max": 0.2, "giveUpAfter": 0.5})
    before = scrape(jflare)
    put(jflare, f"{base}/1", 1)

    async def produce_bad() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(f"{jflare.prefix}.documents", b"not json", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(produce_bad())

    def moved() -> Samples | None:
        now = scrape(jflare)
        return now if (value(now, "flare_deliveries_dead") >= 1
                       and value(now, "flare_changes_rejected_total", reason="not_json")
                       > value(before, "flare_changes_rejected_total", reason="not_json")) else None

    after = poll(moved, timeout=30, message="a dead delivery and a rejected change")
    assert (value(after, "flare_deliveries_total", outcome="retry")
            - value(before, "flare_deliveries_total", outcome="retry")) >= 2
    assert len(wait_count(receiver, "/down/1", 2)) >= 2


def test_json_logs_one_object_per_line_and_nothing_per_event(jflare, receiver) -> None:
    rid, base = new_resource(jflare)
    subscribe(jflare, rid, receiver.url + "/log/{id}")
    lines_before = jflare.log().splitlines()
    for n in range(30):
        put(jflare, f"{base}/{n}", 1)
    poll(lambda: sum(len(receiver.received(f"/log/{n}")) for n in range(30)) >= 30,
         timeout=30, message="30 deliveries")
    lines = jflare.log().splitlines()
    assert len(lines) - len(lines_before) <= 2, lines[len(lines_before):]
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    assert "private subscriber targets" in records[0]["message"]
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's lines too
