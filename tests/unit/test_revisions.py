"""Tables for tables/revisions.py: the revision of a PUT body (SPEC §8 Revision)."""

import pytest

from tables.errors import FlareError
from tables.revisions import revision_of

RFC3339 = "2006-01-02T15:04:05Z07:00"
UNSUPPORTED = FlareError(400, "invalid body", "data type not supported")


def out_of_range(revision: int) -> FlareError:
    return FlareError(400, "invalid body",
                      f"revision out of range: {revision} is not a signed 64-bit integer")


def unparsable(value: str, fmt: str, message: str) -> FlareError:
    detail = f"error during parse time using '{value}' with format '{fmt}': {message}"
    return FlareError(400, "invalid body", detail)


ACCEPTED = [
    # SPEC §8: a JSON number gives its integer part.
    pytest.param({"v": 42}, "v", None, 42, id="int"),
    pytest.param({"v": -7}, "v", None, -7, id="negative-int"),
    pytest.param({"v": 0}, "v", RFC3339, 0, id="zero-format-ignored-for-numbers"),
    pytest.param({"v": 1.9}, "v", None, 1, id="float-truncated"),
    pytest.param({"v": -1.9}, "v", None, -1, id="negative-float-toward-zero"),
    pytest.param({"v": 1e3}, "v", None, 1000, id="float-exponent"),
    # SPEC §11a: signed 64-bit, both ends included, exact (no float rounding).
    pytest.param({"v": 2**63 - 1}, "v", None, 2**63 - 1, id="int64-max-exact"),
    pytest.param({"v": -(2**63)}, "v", None, -(2**63), id="int64-min"),
    # SPEC §8: only the top-level change.field counts.
    pytest.param({"version": 3, "updatedAt": 99}, "version", None, 3, id="named-field-only"),
    # SPEC §8: a string is read with change.format as a Go layout, to Unix nanoseconds.
    pytest.param(
        {"updatedAt": "2010-12-10T08:35:08.008Z"}, "updatedAt", RFC3339, 1291970108008000000,
        id="spec-vector",
    ),
    pytest.param(
        {"d": "Fri, 10 Dec 2010 08:35:08 GMT"}, "d", "Mon, 02 Jan 2006 15:04:05 MST",
        1291970108000000000, id="rfc1123",
    ),
    pytest.param({"d": "1969-12-31"}, "d", "2006-01-02", -86400000000000, id="before-1970"),
]

REJECTED = [
    # SPEC §11a: revisions outside signed 64-bit integers (the changes stage stored them
    # once, then could not write the record: issue 9).
    pytest.param({"v": 2**63}, "v", None, out_of_range(2**63), id="int64-max-plus-one"),
    pytest.param({"v": -(2**63) - 1}, "v", None, out_of_range(-(2**63) - 1), id="int64-min-minus-one"),
    pytest.param({"v": 2**70}, "v", None, out_of_range(2**70), id="int-past-int64"),
    pytest.param({"v": 1e20}, "v", None, out_of_range(100000000000000000000), id="float-past-int64"),
    pytest.param({"v": "0001-01-01T00:00:00Z"}, "v", RFC3339,
                 out_of_range(-62135596800000000000), id="year-1-in-ns"),
    pytest.param({"v": "2600-01-01T00:00:00Z"}, "v", RFC3339,
                 out_of_range(19880899200000000000), id="year-2600-in-ns"),
    # SPEC §8: missing, null, bool, object or list → data type not supported.
    pytest.param({}, "v", RFC3339, UNSUPPORTED, id="missing"),
    pytest.param({"v": None}, "v", RFC3339, UNSUPPORTED, id="null"),
    pytest.param({"v": True}, "v", None, UNSUPPORTED, id="true-is-not-a-number"),
    pytest.param({"v": False}, "v", None, UNSUPPORTED, id="false-is-not-a-number"),
    pytest.param({"v": {"at": 1}}, "v", None, UNSUPPORTED, id="object"),
    pytest.param({"v": [1]}, "v", None, UNSUPPORTED, id="list"),
    pytest.param({"a": {"b": 1}}, "a.b", None, UNSUPPORTED, id="no-nested-path"),
    pytest.param({"v": float("nan")}, "v", None, UNSUPPORTED, id="nan-not-json"),
    pytest.param({"v": float("inf")}, "v", None, UNSUPPORTED, id="infinity-not-json"),
    # SPEC §8: a string the format does not parse → Go's message in the detail.
    pytest.param(
        {"v": "x"}, "v", RFC3339,
        unparsable("x", RFC3339, f'parsing time "x" as "{RFC3339}": cannot parse "x" as "2006"'),
        id="unparsable",
    ),
    pytest.param(
        {"v": "2010-13-10"}, "v", "2006-01-02",
        unparsable("2010-13-10", "2006-01-02", 'parsing time "2010-13-10": month out of range'),
        id="out-of-range",
    ),
    pytest.param(
        {"v": ""}, "v", RFC3339,
        unparsable("", RFC3339, f'parsing time "" as "{RFC3339}": cannot parse "" as "2006"'),
        id="empty-string",
    ),
    # A string with no format configured cannot be read as a time.
    pytest.param(
        {"v": "2010"}, "v", None,
        unparsable("2010", "", 'parsing time "2010": extra text: "2010"'),
        id="no-format",
    ),
    pytest.param(
        {"v": "2010"}, "v", "",
        unparsable("2010", "", 'parsing time "2010": extra text: "2010"'),
        id="empty-format",
    ),
    pytest.param(
        {"v": ""}, "v", "",
        unparsable("", "", 'parsing time "": empty layout'),
        id="empty-format-empty-string",
    ),
]


@pytest.mark.parametrize(("document", "field", "fmt", "want"), ACCEPTED)
def test_revision(document: dict, field: str, fmt: str | None, want: int) -> None:
    got = revision_of(document, field, fmt)
    assert (got, type(got)) == (want, int)


@pytest.mark.parametrize(("document", "field", "fmt", "error"), REJECTED)
def test_rejected(document: dict, field: str, fmt: str | None, error: FlareError) -> None:
    with pytest.raises(FlareError) as caught:
        revision_of(document, field, fmt)
    assert caught.value == error
