"""api.pagination: SPEC §4, and §11a's "integer query parameters out of range are 400"."""

from __future__ import annotations

import pytest

from api.pagination import MAX_LIMIT, Page, parse_page
from tables.errors import FlareError
from tables.limits import MAX_QUERY_INTEGER

HUGE = "9" * 5000


@pytest.mark.parametrize(("params", "page"), [
    ({}, Page(0, 30)),  # §4 defaults
    ({"offset": "+5", "limit": "0"}, Page(5, 0)),
    ({"offset": str(MAX_QUERY_INTEGER), "limit": str(MAX_LIMIT)}, Page(MAX_QUERY_INTEGER, MAX_LIMIT)),
    ({"offset": "000000000000000000000000007"}, Page(7, 30)),  # leading zeros are not range
])
def test_accepted(params, page):
    assert parse_page(params) == page


@pytest.mark.parametrize(("params", "title", "detail"), [
    ({"limit": "sample"}, "error during pagination parse",
     "error during parameter 'limit' parse with value 'sample'"),  # §4
    ({"offset": "-1"}, "invalid pagination", "invalid offset '-1'"),  # §4
    ({"limit": "1001"}, "invalid pagination", "invalid limit '1001'"),  # §4
    # §11a out of range: 400, never 500
    ({"offset": "99999999999999999999"}, "invalid pagination",
     f"invalid offset '99999999999999999999': out of range (at most {MAX_QUERY_INTEGER})"),
    ({"offset": str(MAX_QUERY_INTEGER + 1)}, "invalid pagination",
     f"invalid offset '{MAX_QUERY_INTEGER + 1}': out of range (at most {MAX_QUERY_INTEGER})"),
    ({"offset": HUGE}, "invalid pagination",
     f"invalid offset '{'9' * 32}...': out of range (at most {MAX_QUERY_INTEGER})"),
    ({"offset": "-" + HUGE}, "invalid pagination",
     f"invalid offset '-{'9' * 31}...': out of range (at most {MAX_QUERY_INTEGER})"),
    ({"limit": HUGE}, "invalid pagination",
     f"invalid limit '{'9' * 32}...': out of range (at most {MAX_QUERY_INTEGER})"),
    ({"offset": HUGE + "x"}, "error during pagination parse",
     f"error during parameter 'offset' parse with value '{'9' * 64}...'"),
])
def test_refused(params, title, detail):
    with pytest.raises(FlareError) as info:
        parse_page(params)
    assert (info.value.status, info.value.title, info.value.detail) == (400, title, detail)
