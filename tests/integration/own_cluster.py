"""A Kafka cluster of a test's own (the session's broker is shared), with one `flare
start` on it, a resource whose subscriber is a real receiver, and a steady stream of PUTs:
for the tests that kill brokers under load. Everything is stopped by its own PID after."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from app.local_kafka import LocalCluster
from tests.flare_process import FlareProcess, poll
from tests.integration.delivery_support import SteadyPuts, new_resource, subscribe
from tests.receiver import Receiver


@dataclass
class UnderLoad:
    cluster: LocalCluster
    flare: FlareProcess
    receiver: Receiver
    writer: SteadyPuts
    base: str

    def wait_delivered(self, timeout: float = 180.0) -> set[str]:
        """Every document answered 202 so far reaches the receiver."""
        expected = {f"/hook/{doc}" for doc in self.writer.accepted}
        poll(lambda: expected <= {r.path for r in self.receiver.received()}, timeout=timeout,
             interval=0.5, message=f"all {len(expected)} accepted documents delivered")
        return expected


@contextlib.contextmanager
def puts_on_own_cluster(flare_factory, data_dir: Path, *, nodes: int, put_timeout: float,
                        env: dict[str, str] | None = None, ready_timeout: float = 90.0):
    cluster = LocalCluster(data_dir, nodes=nodes)
    bootstrap = cluster.start()
    receiver = Receiver().up()
    flare = writer = None
    try:
        flare = flare_factory(bootstrap=bootstrap, env=env).start(timeout=ready_timeout)
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{receiver.url}/hook/{{id}}", retry={"initial": 0.2, "max": 1})
        writer = SteadyPuts(flare.base_url, base, timeout=put_timeout)
        writer.start()
        yield UnderLoad(cluster, flare, receiver, writer, base)
    finally:
        if writer is not None:
            writer.halt.set()
        receiver.down()
        if flare is not None:
            flare.stop()
        cluster.stop()
