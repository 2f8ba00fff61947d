"""Issue 12, "Topics for production": on a 3-broker cluster with replication factor 3 (and
min.insync.replicas 2 by default), one broker SIGKILLed under a steady stream of PUTs
costs nothing: the API keeps answering 202, and every 202'd change is delivered."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from app.local_kafka import LocalCluster
from tests.flare_process import poll
from tests.integration.delivery_support import new_resource, subscribe
from tests.receiver import Receiver

pytestmark = pytest.mark.integration


def test_one_broker_of_three_killed_under_load(flare_factory, tmp_path):
    cluster = LocalCluster(tmp_path / "three", nodes=3)
    bootstrap = cluster.start()
    receiver = Receiver().up()
    flare = flare_factory(bootstrap=bootstrap, env={"FLARE_REPLICATION_FACTOR": "3"}).start(
        timeout=180)
    accepted: list[int] = []
    refused: list[tuple[float, int | str]] = []
    stop = threading.Event()
    try:
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{receiver.url}/hook/{{id}}", retry={"initial": 0.2, "max": 1})

        def write() -> None:
            with httpx.Client(base_url=flare.base_url, timeout=30.0) as client:
                doc = 0
                while not stop.is_set():
                    try:
                        answer = client.put(f"/documents/{base}/{doc}", json={"version": 1})
                        status: int | str = answer.status_code
                    except httpx.TransportError as exc:
                        status = exc.__class__.__name__
                    if status == 202:
                        accepted.append(doc)
                        doc += 1
                    else:
                        refused.append((time.monotonic(), status))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        poll(lambda: len(accepted) >= 100, timeout=120, message="changes flowing")
        cluster.kill_node(3)  # SIGKILL, by its own PID
        killed_at, before = time.monotonic(), len(accepted)
        poll(lambda: len(accepted) >= before + 200, timeout=120,
             message="PUTs accepted after a broker of three died")
        stop.set()
        writer.join(30)
        expected = {f"/hook/{doc}" for doc in accepted}
        poll(lambda: expected <= {r.path for r in receiver.received()}, timeout=180,
             interval=0.5, message=f"all {len(expected)} accepted documents delivered")
        # The API kept answering: no PUT was refused for longer than a leader election.
        late = [status for at, status in refused if at - killed_at > 30]
        assert late == [], late[:10]
    finally:
        stop.set()
        receiver.down()
        flare.stop()
        cluster.stop()
