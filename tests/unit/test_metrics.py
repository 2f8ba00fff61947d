"""api.metrics and streams.metrics: reason classes, the pending/dead count read on the stored
JSON, and the HTTP counter's labels (SPEC §11)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.app import create_api
from api.metrics import delivery_counts
from streams import metrics
from tables.delivery import DeliveryState, PendingChange


# tables.documents.parse_message's reasons (SPEC §10) → one label value each
@pytest.mark.parametrize(("reason", "expected"), [
    ("empty value (tombstone): expected a JSON change", "tombstone"),
    ("value is not JSON: unexpected character", "not_json"),
    ("value is not a JSON object", "not_object"),
    ("unknown action 'x': expected 'put' or 'delete'", "unknown_action"),
    ("missing 'id': the document URL", "missing_id"),
    ("missing key: the key must be the document URL", "missing_key"),
    ("key b'a' differs from id 'b': the key must be the document URL", "key_mismatch"),
    ("missing 'document': a put needs a JSON object", "missing_document"),
    ("invalid id: missing host", "invalid_id"),
    ("error during resource search: could not found a resource for this uri 'x'", "no_resource"),
    ("invalid body: data type not supported", "invalid_revision"),
    ("internal error: KeyError", "internal"),
    ("something new", "other"),
])
def test_reason_class(reason: str, expected: str) -> None:
    assert metrics.reason_class(reason) == expected


def _record(state: DeliveryState) -> bytes:
    return orjson.dumps(state.to_record())


def test_delivery_counts_reads_the_record_shape() -> None:
    # A document whose content looks like the record's own keys must not confuse the count.
    tricky = {"pending": None, "dead": True}
    change = PendingChange("put", 3, tricky, 1)
    table = {
        b"a": _record(DeliveryState(received=2)),  # nothing pending
        b"b": _record(DeliveryState(pending=change)),  # pending
        b"c": _record(DeliveryState(pending=change, dead=True)),  # dead
        b"d": _record(DeliveryState(received=1, pending=PendingChange("delete", 1, tricky, 1))),
    }
    assert delivery_counts({0: table, 1: {}}) == (2, 1)


async def test_the_dispatcher_keeps_the_counts_a_scan_finds() -> None:
    """Dispatcher.counts (kept as records are written, read by /metrics) against the scan."""
    from app.config import Settings
    from streams.dispatcher import Dispatcher
    from streams.store import MemoryTable

    dispatcher = Dispatcher(Settings(table_store="memory"), view=None)
    dispatcher.tables = {0: MemoryTable(), 1: MemoryTable()}
    change = PendingChange("put", 3, {"pending": None, "dead": True}, 1)
    writes = [
        (0, b"a", _record(DeliveryState(pending=change))),
        (1, b"b", _record(DeliveryState(pending=change, dead=True))),
        (0, b"c", _record(DeliveryState(received=2))),
        (0, b"a", _record(DeliveryState(received=3))),  # pending → delivered
        (1, b"b", None),  # the dead one dropped
        (1, b"d", _record(DeliveryState(pending=change, dead=True))),
        (0, b"c", _record(DeliveryState(received=2, pending=change))),
    ]
    for partition, key, value in writes:
        await dispatcher.write(partition, key, value)
        assert dispatcher.counts() == delivery_counts(dispatcher.tables)
    assert dispatcher.counts() == (1, 1)


def _latency() -> dict[str, float]:
    return {s.name + s.labels.get("le", ""): s.value
            for family in metrics.DELIVERY_LATENCY.collect() for s in family.samples}


def test_delivery_attempts_by_outcome_and_latency_of_successes_only() -> None:
    before = {o: metrics.DELIVERIES.labels(o)._value.get() for o in ("delivered", "retry")}
    latency = _latency()
    metrics.delivery_attempted("retry", 100.0, now=101.0)
    metrics.delivery_attempted("delivered", 100.0, now=102.5)
    assert metrics.DELIVERIES.labels("retry")._value.get() == before["retry"] + 1
    assert metrics.DELIVERIES.labels("delivered")._value.get() == before["delivered"] + 1
    after = _latency()
    count = "flare_delivery_latency_seconds_count"
    assert after[count] == latency[count] + 1  # the retry is not a latency
    assert after["flare_delivery_latency_seconds_bucket3.0"] == latency["flare_delivery_latency_seconds_bucket3.0"] + 1
    assert after["flare_delivery_latency_seconds_bucket2.0"] == latency["flare_delivery_latency_seconds_bucket2.0"]


def _scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_http_requests_by_route_template_and_status_and_metrics_open_with_tokens() -> None:
    app = create_api(SimpleNamespace(settings=SimpleNamespace(api_tokens=("secret",))))
    client = TestClient(app)
    assert client.get("/resources/abc").status_code == 401
    assert client.get("/no/such/route", headers={"authorization": "Bearer secret"}).status_code == 404
    assert client.get("/openapi.json", headers={"authorization": "Bearer secret"}).status_code == 200
    assert client.get("/openapi.json/", headers={"authorization": "Bearer secret"}).status_code == 200
    seen = _scrape(client)  # no token needed (SPEC §2)
    key = lambda route, status: ("flare_http_requests_total",  # noqa: E731
                                 (("method", "GET"), ("route", route), ("status", status)))
    assert seen[key("/resources/{rid}", "401")] == 1
    assert seen[key("unmatched", "404")] == 1
    assert seen[key("/openapi.json", "200")] == 2
    assert ("flare_changes_accepted_total", ()) in seen
    assert ("flare_deliveries_total", (("outcome", "delivered"),)) in seen
