"""Issue: foundation. A real `flare start` against a real broker: version, health,
readiness, a broker that is down, a restart on the same data."""

from __future__ import annotations

import platform

import pytest

from app import __version__
from app.local_kafka import free_port
from tests.flare_process import poll

pytestmark = pytest.mark.integration


def test_root_health_and_ready(flare):
    assert flare.get("/").json() == {"version": __version__, "python": platform.python_version()}
    assert flare.get("/healthz").status_code == 200
    ready = flare.readyz()
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_unknown_route_and_wrong_method(flare):
    missing = flare.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"status": 404, "title": "not found"}}
    wrong = flare.client.patch("/healthz")
    assert wrong.status_code == 405
    assert wrong.json() == {"error": {"status": 405, "title": "method not allowed"}}
    assert "GET" in wrong.headers["allow"]


def test_broker_down_gives_503_with_reason_and_no_traceback(flare_factory, tmp_path):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    process = flare_factory(bootstrap=dead, data_dir=tmp_path / "down").start(wait_ready=False)
    answer = poll(lambda: process.readyz(), timeout=30, message="/readyz answers")
    assert answer.status_code == 503
    assert "unreachable" in answer.json()["reason"]
    poll(lambda: process.log().count("retrying") >= 2, timeout=30, message="two retries logged")
    assert process.alive()
    assert "Traceback" not in process.log()
    assert process.readyz().status_code == 503


def test_restart_on_the_same_data(flare_factory, tmp_path):
    process = flare_factory(data_dir=tmp_path / "kept").start()
    created = process.post("/resources", json={"endpoint": "http://api.test/users/{id}",
                                               "change": {"field": "version"}})
    assert created.status_code == 201
    url = "http://api.test/users/1"
    assert process.put(f"/documents/{url}", json={"version": 3}).status_code == 202
    poll(lambda: process.get(f"/documents/{url}").status_code == 200, message="document stored")
    process.stop()  # SIGTERM; uvicorn re-raises it after a graceful shutdown
    assert "flare stopped cleanly" in process.log()
    process.start()
    assert process.get(f"/resources/{created.json()['id']}").json() == created.json()
    assert process.get(f"/documents/{url}").json()["revision"] == 3
    assert "Traceback" not in process.log()
