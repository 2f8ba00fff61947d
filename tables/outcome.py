"""What one delivery attempt's answer means (SPEC §9.3).

Pure, so the sender's only job is to turn its result (a status, or a transport error or
timeout as ``None``) into one of three outcomes; the record and retry logic follow from it.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome", "classify"]


class Outcome(enum.Enum):
    """Delivered and discarded both move the record (§9.1); retry leaves it as it is."""

    DELIVERED = "delivered"
    DISCARDED = "discarded"
    RETRY = "retry"


def classify(status: int | None, success: list[int], discard: list[int]) -> Outcome:
    """The outcome of one attempt, SPEC §9.3; ``status`` ``None`` is a transport error or timeout.

    A status listed in both ``success`` and ``discard`` counts as delivered (SPEC is silent;
    success is the first list it names).
    """
    if status is None:
        return Outcome.RETRY
    if status in success:
        return Outcome.DELIVERED
    if status in discard:
        return Outcome.DISCARDED
    return Outcome.RETRY
