"""tables.notify: one row per line of the SPEC §9.1 table."""

from __future__ import annotations

import pytest

from tables.notify import decide


@pytest.mark.parametrize(
    ("change_action", "change_revision", "record_revision", "sent"),
    [
        ("put", 5, None, "create"),  # §9.1 record none, put → create
        ("put", 6, 5, "update"),  # §9.1 record r, put with revision > r → update
        ("put", 5, 5, None),  # §9.1 record r, put with revision ≤ r (equal) → nothing
        ("put", 4, 5, None),  # §9.1 record r, put with revision ≤ r (older) → nothing
        ("delete", None, 5, "delete"),  # §9.1 record some, delete → delete
        ("delete", None, None, None),  # §9.1 record none, delete → nothing
        ("put", 0, None, "create"),  # §9.1 a delete cleared the record: any revision creates
        ("put", -3, None, "create"),  # §9.1 "any revision", negative included
        ("delete", 7, 0, "delete"),  # §9.1 a record of revision 0 is still a record
        ("put", 1, 0, "update"),  # revision 0 compares as a number, not as "no record"
    ],
)
def test_decide(
    change_action: str, change_revision: int | None, record_revision: int | None, sent: str | None
) -> None:
    assert decide(change_action, change_revision, record_revision) == sent


@pytest.mark.parametrize(
    ("change_action", "change_revision"),
    [
        ("patch", 1),  # §10 a change is put or delete
        ("put", None),  # §8 every put has a revision
    ],
)
def test_decide_rejects_malformed_changes(change_action: str, change_revision: int | None) -> None:
    with pytest.raises(ValueError):
        decide(change_action, change_revision, None)
