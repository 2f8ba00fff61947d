"""Issue 12, "Topics for production": on a 3-broker cluster with replication factor 3 (and
min.insync.replicas 2 by default), one broker SIGKILLed under a steady stream of PUTs
costs nothing: the API keeps answering 202, and every 202'd change is delivered."""

from __future__ import annotations

import time

import pytest

from app.local_kafka import LocalCluster
from tests.flare_process import poll
from tests.integration.delivery_support import SteadyPuts, new_resource, subscribe
from tests.receiver import Receiver

pytestmark = pytest.mark.integration


def test_one_broker_of_three_killed_under_load(flare_factory, tmp_path):
    cluster = LocalCluster(tmp_path / "three", nodes=3)
    bootstrap = cluster.start()
    receiver = Receiver().up()
    flare = writer = None
    try:
        flare = flare_factory(bootstrap=bootstrap, env={"FLARE_REPLICATION_FACTOR": "3"}).start(
            timeout=180)
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{receiver.url}/hook/{{id}}", retry={"initial": 0.2, "max": 1})
        writer = SteadyPuts(flare.base_url, base, timeout=30.0)
        writer.start()
        accepted, refused = writer.accepted, writer.refused
        poll(lambda: len(accepted) >= 100, timeout=120, message="changes flowing")
        cluster.kill_node(3)  # SIGKILL, by its own PID
        killed_at, before = time.monotonic(), len(accepted)
        poll(lambda: len(accepted) >= before + 200, timeout=120,
             message="PUTs accepted after a broker of three died")
        writer.finish()
        expected = {f"/hook/{doc}" for doc in accepted}
        poll(lambda: expected <= {r.path for r in receiver.received()}, timeout=180,
             interval=0.5, message=f"all {len(expected)} accepted documents delivered")
        # The API kept answering: no PUT was refused for longer than a leader election.
        late = [status for at, status in refused if at - killed_at > 30]
        assert late == [], late[:10]
    finally:
        if writer is not None:
            writer.halt.set()
        receiver.down()
        if flare is not None:
            flare.stop()
        cluster.stop()
