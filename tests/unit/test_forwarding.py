"""Processes calling each other (api/documents.py forwarded GET, api/deliveries.py fan-out):
with the first configured token, and a member that does not answer is named, never a 500
nor silently left out. The "other process" is a real HTTP server on 127.0.0.1, or a port
where nothing listens."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_api
from app.config import Settings
from app.local_kafka import free_port
from tests.receiver import Receiver

ME = "http://127.0.0.1:1"
SUB = SimpleNamespace(resource_id="r1")


def app_with(owner: str | None, members: set[str], tokens: tuple[str, ...] = ("first", "second")):
    settings = Settings(api_tokens=tokens, advertised_url=ME)
    runtime = SimpleNamespace(
        settings=settings,
        view=SimpleNamespace(subscriptions={"s1": SUB}, resources={}),
        changes=SimpleNamespace(owner_of=lambda url: owner, local=lambda url: None),
        dispatcher=SimpleNamespace(members=lambda: members | {ME},
                                   local_deliveries=lambda sid, state: [],
                                   redrive_local=_zero),
        http=httpx.AsyncClient(timeout=5.0),
    )
    return TestClient(create_api(runtime), raise_server_exceptions=False)


async def _zero(_sid):
    return 0


@pytest.fixture
def other():
    r = Receiver().up()
    yield r
    r.down()


AUTH = {"Authorization": "Bearer second"}  # any configured token for the client


def test_forwarded_get_carries_the_first_token(other):
    client = app_with(other.url, set())
    answer = client.get("/documents/http://api/users/1", headers=AUTH)
    assert answer.status_code == 200
    (asked,) = other.received()
    assert asked.path == "/documents/http://api/users/1"
    assert asked.headers["authorization"] == "Bearer first"
    assert asked.headers["x-flare-forwarded"] == "1"


def test_forwarded_get_without_tokens_sends_no_authorization(other):
    client = app_with(other.url, set(), tokens=())
    assert client.get("/documents/http://api/users/1").status_code == 200
    assert "authorization" not in other.received()[0].headers


def test_an_owner_that_does_not_answer_is_a_503_with_the_reason():
    gone = f"http://127.0.0.1:{free_port()}"
    answer = app_with(gone, set()).get("/documents/http://api/users/1", headers=AUTH)
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["title"] == "service unavailable"
    assert gone in error["detail"] and "did not answer" in error["detail"]


def test_deliveries_fan_out_carries_the_token_and_names_who_did_not_answer(other):
    gone = f"http://127.0.0.1:{free_port()}"
    client = app_with(None, {other.url, gone})
    path = "/resources/r1/subscriptions/s1/deliveries"
    answer = client.get(path, headers=AUTH)
    # The receiver answers 200 with no body: not a member's answer either.
    assert answer.status_code == 200
    assert answer.json()["deliveries"] == []
    assert sorted(answer.json()["unanswered"]) == sorted([other.url, gone])
    assert other.received()[0].headers["authorization"] == "Bearer first"

    answer = client.post(path + "/redrive", headers=AUTH)
    assert answer.status_code == 503
    assert gone in answer.json()["error"]["detail"]


def test_every_member_answering_leaves_no_unanswered_key():
    client = app_with(None, set())
    answer = client.get("/resources/r1/subscriptions/s1/deliveries", headers=AUTH)
    assert answer.json() == {"deliveries": []}
    assert client.post("/resources/r1/subscriptions/s1/deliveries/redrive",
                       headers=AUTH).status_code == 202
