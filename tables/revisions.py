"""The revision of a document body (SPEC §8 Revision).

Revisions decide what a subscriber gets (§9.1), so every origin's body must give a
comparable integer: numbers as they are, timestamps as Unix nanoseconds read with the
resource's Go layout, exactly as the original Go service read them.
"""

from __future__ import annotations

import math

from tables.errors import FlareError
from tables.golayout import LayoutError, parse

__all__ = ["revision_of"]

_TITLE = "invalid body"


#: Revisions are signed 64-bit integers, as in the original Go service (SPEC §11a).
REVISION_MIN, REVISION_MAX = -(2**63), 2**63 - 1


def revision_of(document: dict, field: str, fmt: str | None) -> int:
    """The revision in ``document[field]`` (:func:`read_revision`), checked to be a signed
    64-bit integer: 400 ``invalid body`` / ``revision out of range`` otherwise."""
    revision = read_revision(document, field, fmt)
    if not REVISION_MIN <= revision <= REVISION_MAX:
        raise FlareError(400, _TITLE, f"revision out of range: {revision} is not a signed "
                                      "64-bit integer")
    return revision


def read_revision(document: dict, field: str, fmt: str | None) -> int:
    """The revision in ``document[field]``: a number's integer part, or a time in Unix ns.

    Raises FlareError(400, "invalid body") when the value is missing, of another JSON type,
    or a string that ``fmt`` does not parse.
    """
    value = document.get(field)
    if isinstance(value, bool):  # bool is an int in Python but not a JSON number
        raise _unsupported()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # NaN/Infinity are not JSON; a lax decoder may let them in
            raise _unsupported()
        return int(value)  # truncates toward zero, like Go's int64(float64)
    if isinstance(value, str):
        try:
            if not fmt:
                # No layout configured: unparsable. Go's text for an empty layout still says why.
                parse("", value)
                raise LayoutError('parsing time "": empty layout')
            return parse(fmt, value)
        except LayoutError as err:
            detail = f"error during parse time using '{value}' with format '{fmt or ''}': {err}"
            raise FlareError(400, _TITLE, detail) from None
    raise _unsupported()


def _unsupported() -> FlareError:
    return FlareError(400, _TITLE, "data type not supported")
