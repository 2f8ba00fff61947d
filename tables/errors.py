"""The one error root of Flare.

Every domain failure is a :class:`FlareError` carrying the HTTP status, the stable SPEC
title and a detail. The API turns it into ``{"error": {"title", "detail"}}`` in one place
(api/errors.py); nothing else builds error JSON.
"""

from __future__ import annotations


class FlareError(Exception):
    """A failure the user caused or can act on, with SPEC's title and detail."""

    def __init__(self, status: int, title: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FlareError)
            and (self.status, self.title, self.detail) == (other.status, other.title, other.detail)
        )

    def __hash__(self) -> int:
        return hash((self.status, self.title, self.detail))
