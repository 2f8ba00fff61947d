"""Shared fixtures: a real Kafka broker for the session, real `flare start` processes.

The broker comes from app.local_kafka (the same code `make run` uses): FLARE_KAFKA_BOOTSTRAP
when set, else Docker when an engine answers, else the cached Maven jars. Unit tests never
ask for it, so `pytest tests/unit` needs no broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app import local_kafka
from tests.flare_process import FlareProcess, poll, unique_name


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    with local_kafka.broker(tmp_path_factory.mktemp("kafka"), preferred_port=None) as bootstrap:
        yield bootstrap


@pytest.fixture
def flare_factory(kafka_bootstrap: str, tmp_path: Path):
    """Start `flare start` processes; every one is stopped by its own PID afterwards."""
    started: list[FlareProcess] = []

    def make(**kwargs) -> FlareProcess:
        kwargs.setdefault("bootstrap", kafka_bootstrap)
        kwargs.setdefault("data_dir", tmp_path / f"flare-{len(started)}")
        process = FlareProcess(**kwargs)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def flare(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    """One ready Flare process with topics of its own, shared by a test module."""
    process = FlareProcess(bootstrap=kafka_bootstrap, prefix=unique_name("t"),
                           data_dir=tmp_path_factory.mktemp("flare"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def pair(flare_factory, tmp_path: Path):
    """Two ready `flare start` processes sharing one app id and topic prefix."""
    name = unique_name("pair")
    a = flare_factory(app_id=name, prefix=name, data_dir=tmp_path / "a")
    b = flare_factory(app_id=name, prefix=name, data_dir=tmp_path / "b")
    a.start(wait_ready=False)
    b.start(wait_ready=False)
    a.wait_ready()
    b.wait_ready()
    # The second join rebalances the first: wait until both say ready at the same time.
    poll(lambda: a.readyz().status_code == 200 and b.readyz().status_code == 200,
         timeout=60, message="both processes ready")
    return a, b
