"""A broker restart under a running Flare: the stages come back by themselves (issue 9:
"a stage that fails for a reason not tied to a message restarts itself").

The test has a broker of its own (tests/conftest.py's is shared), SIGKILLs it while
changes flow, starts it again on the same ports and storage, and checks that the same
`flare start` process gets ready again without a restart, that everything answered 202
before, during and after is stored and delivered, and that /readyz said why meanwhile.
"""

from __future__ import annotations

import pytest

from tests.flare_process import poll
from tests.integration.own_cluster import puts_on_own_cluster

pytestmark = pytest.mark.integration


def test_flare_recovers_from_a_broker_restart_by_itself(flare_factory, tmp_path):
    with puts_on_own_cluster(flare_factory, tmp_path / "own-kafka", nodes=1,
                             put_timeout=5.0) as run:
        flare, accepted = run.flare, run.writer.accepted
        poll(lambda: len(accepted) >= 50, timeout=60, message="changes flowing")
        run.cluster.kill_node(1)  # SIGKILL, by its own PID
        poll(lambda: flare.readyz().status_code == 503, timeout=60, message="/readyz says 503")
        reason = flare.readyz().json()
        during = len(accepted)
        run.cluster.restart_node(1)
        flare.wait_ready(timeout=180)
        poll(lambda: len(accepted) >= during + 50, timeout=120, message="changes flowing again")
        run.writer.finish()
        assert flare.alive()
        run.wait_delivered()
        for doc in list(accepted)[:: max(1, len(accepted) // 20)]:
            assert flare.get(f"/documents/{run.base}/{doc}").status_code == 200
        assert reason, "a 503 without a reason"
        # One line that Kafka is unreachable and one that it is back, not one per attempt.
        errors = [line for line in flare.log().splitlines() if " ERROR " in line]
        assert len(errors) < 20, "\n".join(errors[:40])
