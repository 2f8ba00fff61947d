"""One fix to faust-streaming 0.15.3, applied when the Faust app is built.

After a rebalance, ``Recovery.on_recovery_completed`` resumes the stream partitions and
only then seeks them to their committed offsets. A fetch can slip in between, from a stale
position; its records are later dropped as "already read" while the commit moves past them,
which lost changes in our SIGKILL tests while the changes stage was a Faust agent. Upstream:
faust-streaming issue #216 / PR #217 seek first. This module applies that order until a
released version has it; remove it then. Faust now runs only the registry agent (its
commands are idempotent), so this matters less, but the fix is still right there.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables.recovery import Recovery

_PATCHED = "_flare_seek_before_resume"


async def _seek_then_resume(self: Recovery, generation_id: int = 0) -> None:
    """faust.tables.recovery.Recovery.on_recovery_completed, with seek before resume."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                          self.standbys_for_table[table]))
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again app id %s param %s",
                         self.app.consumer_generation_id, generation_id)
        return
    # The fix: seek the stream partitions to their committed offsets before resuming them.
    if assignment:
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await cast(Any, self.app)._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


def apply() -> None:
    """Patch once per process."""
    if not getattr(Recovery, _PATCHED, False):
        Recovery.on_recovery_completed = _seek_then_resume  # type: ignore[method-assign]
        setattr(Recovery, _PATCHED, True)
