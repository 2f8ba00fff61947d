"""tables.outcome: one row per SPEC §9.3 rule."""

from __future__ import annotations

import pytest

from tables.outcome import Outcome, classify


@pytest.mark.parametrize(
    ("status", "success", "discard", "outcome"),
    [
        (200, [200], [500], Outcome.DELIVERED),  # §9.3 status in success: delivered
        (204, [200, 204], [500], Outcome.DELIVERED),  # §9.3 any listed success status
        (500, [200], [500], Outcome.DISCARDED),  # §9.3 status in discard: given up on purpose
        (410, [200], [404, 410], Outcome.DISCARDED),  # §9.3 any listed discard status
        (503, [200], [500], Outcome.RETRY),  # §9.3 anything else: retried
        (201, [200], [500], Outcome.RETRY),  # §9.3 only the listed codes, not "any 2xx"
        (301, [200], [500], Outcome.RETRY),  # §9.2 redirects are not followed: just a status
        (None, [200], [500], Outcome.RETRY),  # §9.3 transport error or timeout: retried
        (200, [200], [200], Outcome.DELIVERED),  # SPEC silent: in both lists, success wins
    ],
)
def test_classify(
    status: int | None, success: list[int], discard: list[int], outcome: Outcome
) -> None:
    assert classify(status, success, discard) is outcome


def test_outcome_values_are_metric_labels() -> None:
    assert [o.value for o in Outcome] == ["delivered", "discarded", "retry"]  # §11 by outcome
