"""api.ui: one subscription's delivery health read from the deliveries tables."""

from __future__ import annotations

import orjson
import pytest

from api.ui import subscription_health
from streams.store import MemoryTable
from tables.delivery import DeliveryState, PendingChange


def _record(state: DeliveryState) -> bytes:
    return orjson.dumps(state.to_record())


def _table(records: dict[bytes, bytes]) -> MemoryTable:
    table = MemoryTable()
    for key, value in records.items():
        table.put(key, value)
    return table


def test_subscription_health_counts_only_that_subscription() -> None:
    change = PendingChange("put", 2, {"v": 2}, 1)
    tables = {
        0: {b"s1|http://a/1": _record(DeliveryState(received=1)),
            b"s1|http://a/2": _record(DeliveryState(received=1, pending=change, attempt=3,
                                                    first_failure_at=10.0, last_status=500))},
        1: {b"s1|http://a/3": _record(DeliveryState(pending=change, dead=True,
                                                    first_failure_at=20.0, last_status=503)),
            b"s10|http://a/4": _record(DeliveryState(pending=change, dead=True, last_status=500))},
    }
    tables = {partition: _table(records) for partition, records in tables.items()}
    assert subscription_health(tables, "s1") == {
        "pending": 1, "dead": 1, "delivered": 2, "failing": {500: 1, 503: 1}, "last": 503}
    assert subscription_health(tables, "nobody") == {
        "pending": 0, "dead": 0, "delivered": 0, "failing": {}, "last": None}


@pytest.mark.parametrize("tokens, token, status", [
    ((), "anything\U0010ffff", 303),        # no tokens: nothing to sign in to, no cookie
    (("secret",), "secret", 303),
    (("secret",), "wrong", 401),
    (("secret",), "s\u00e9cret\x07", 401),   # schemathesis: was a 500 (cookie value)
])
def test_login_never_fails_on_what_a_client_sends(tokens, token, status):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from api import ui
    from app.config import Settings

    app = Starlette(routes=ui.routes)
    app.state.settings = Settings(api_tokens=tokens)
    with TestClient(app, follow_redirects=False) as client:
        for answer in (client.get("/ui/login", params={"token": token}),
                       client.post("/ui/login", content=f"token={token}".encode(),
                                   headers={"content-type": "application/x-www-form-urlencoded"})):
            assert answer.status_code == status, answer.text
            assert ("flare_token" in answer.headers.get("set-cookie", "")) is (status == 303 and bool(tokens))
