"""Retry timing: exponential backoff with full jitter, and the optional give-up (SPEC §9.3, §9.6).

The random draw comes in as ``rand`` so the arithmetic is exact in tests; full jitter spreads
the retries of many failing deliveries instead of sending them in waves.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_INITIAL", "DEFAULT_MAX", "gives_up", "next_delay"]

DEFAULT_INITIAL = 1.0  # seconds: SPEC §9.3 "first wait 1 s"
DEFAULT_MAX = 300.0  # seconds: SPEC §9.3 "capped at 5 min"


def next_delay(
    attempt: int,
    initial: float = DEFAULT_INITIAL,
    maximum: float = DEFAULT_MAX,
    *,
    rand: float,
) -> float:
    """Seconds to wait after failure number ``attempt`` (0 for the first), SPEC §9.3.

    ``rand * min(maximum, initial * 2**attempt)`` with ``rand`` in ``[0, 1)``. Huge attempt
    counts saturate at ``maximum`` instead of overflowing.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
    try:
        ceiling = min(maximum, math.ldexp(initial, attempt))
    except OverflowError:
        ceiling = maximum
    return rand * ceiling


def gives_up(first_failure_at: float, now: float, give_up_after: float | None) -> bool:
    """Whether a delivery failing since ``first_failure_at`` is parked as dead (SPEC §9.6).

    ``None`` never gives up (the §9.3 default), so a subscriber that comes back receives what
    it missed; otherwise it gives up once ``give_up_after`` seconds have passed.
    """
    if give_up_after is None:
        return False
    return now - first_failure_at >= give_up_after
