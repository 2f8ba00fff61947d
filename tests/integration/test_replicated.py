"""Issue 12, "Topics for production": on a 3-broker cluster with replication factor 3 (and
min.insync.replicas 2 by default), one broker SIGKILLed under a steady stream of PUTs
costs nothing: the API keeps answering 202, and every 202'd change is delivered."""

from __future__ import annotations

import time

import pytest

from tests.flare_process import poll
from tests.integration.own_cluster import puts_on_own_cluster

pytestmark = pytest.mark.integration


def test_one_broker_of_three_killed_under_load(flare_factory, tmp_path):
    with puts_on_own_cluster(flare_factory, tmp_path / "three", nodes=3, put_timeout=30.0,
                             env={"FLARE_REPLICATION_FACTOR": "3"}, ready_timeout=180) as run:
        accepted, refused = run.writer.accepted, run.writer.refused
        poll(lambda: len(accepted) >= 100, timeout=120, message="changes flowing")
        run.cluster.kill_node(3)  # SIGKILL, by its own PID
        killed_at, before = time.monotonic(), len(accepted)
        poll(lambda: len(accepted) >= before + 200, timeout=120,
             message="PUTs accepted after a broker of three died")
        run.writer.finish()
        run.wait_delivered()
        # The API kept answering: no PUT was refused for longer than a leader election.
        late = [status for at, status in refused if at - killed_at > 30]
        assert late == [], late[:10]
