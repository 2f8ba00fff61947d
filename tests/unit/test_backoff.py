"""tables.backoff: SPEC §9.3 backoff with full jitter and §9.6 giveUpAfter, exact values."""

from __future__ import annotations

import pytest

from tables.backoff import gives_up, next_delay


@pytest.mark.parametrize(
    ("attempt", "kwargs", "rand", "delay"),
    [
        (0, {}, 0.5, 0.5),  # §9.3 default first wait 1 s, full jitter: rand * 1
        (1, {}, 0.5, 1.0),  # §9.3 doubling: ceiling 2 s
        (2, {}, 0.25, 1.0),  # §9.3 doubling: ceiling 4 s
        (8, {}, 0.5, 128.0),  # §9.3 ceiling 256 s, still under the cap
        (9, {}, 0.5, 150.0),  # §9.3 capped at 5 min: ceiling 300 s, not 512 s
        (40, {}, 0.5, 150.0),  # §9.3 stays capped
        (5000, {}, 0.5, 150.0),  # §9.3 a never-giving-up delivery: no overflow, still capped
        (0, {}, 0.0, 0.0),  # full jitter: the draw may be zero
        (3, {}, 0.999, 7.992),  # full jitter: just under the ceiling
        (0, {"initial": 5.0}, 0.5, 2.5),  # §9.6 retry.initial overrides the first wait
        (3, {"initial": 5.0, "maximum": 30.0}, 0.5, 15.0),  # §9.6 retry.max overrides the cap
        (1, {"initial": 5.0, "maximum": 30.0}, 0.5, 5.0),  # §9.6 doubling from initial
    ],
)
def test_next_delay(attempt: int, kwargs: dict[str, float], rand: float, delay: float) -> None:
    assert next_delay(attempt, **kwargs, rand=rand) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("attempt", "rand"),
    [
        (-1, 0.5),  # attempts count from 0
        (0, 1.0),  # rand is in [0, 1)
        (0, -0.1),
    ],
)
def test_next_delay_rejects(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        next_delay(attempt, rand=rand)


@pytest.mark.parametrize(
    ("first_failure_at", "now", "give_up_after", "dead"),
    [
        (0.0, 10**9, None, False),  # §9.3 the default never gives up
        (100.0, 150.0, 60.0, False),  # §9.6 before giveUpAfter: keep retrying
        (100.0, 160.0, 60.0, True),  # §9.6 once giveUpAfter has passed: parked as dead
        (100.0, 400.0, 60.0, True),  # §9.6 well past giveUpAfter
        (100.0, 100.0, 0.5, False),  # §9.6 the first failure itself is always retried once
    ],
)
def test_gives_up(
    first_failure_at: float, now: float, give_up_after: float | None, dead: bool
) -> None:
    assert gives_up(first_failure_at, now, give_up_after) is dead
