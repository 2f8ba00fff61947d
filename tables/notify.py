"""What a subscriber gets for one change of a document (SPEC §9.1).

The whole of "only send what the client is missing" is this one table, kept apart so every
path (live changes, retries, replays) asks the same question the same way.
"""

from __future__ import annotations

__all__ = ["decide"]


def decide(
    change_action: str, change_revision: int | None, record_revision: int | None
) -> str | None:
    """``"create"``, ``"update"``, ``"delete"`` or ``None`` (send nothing), SPEC §9.1.

    ``change_action`` is the change's ``"put"`` or ``"delete"``; ``record_revision`` is the
    revision the subscriber last received, ``None`` when it has no record. A delete's own
    revision plays no part.
    """
    if change_action == "delete":
        return None if record_revision is None else "delete"
    if change_action != "put":
        raise ValueError(f"unknown change action {change_action!r}")
    if change_revision is None:
        raise ValueError("a put needs a revision")
    if record_revision is None:
        return "create"
    return "update" if change_revision > record_revision else None
