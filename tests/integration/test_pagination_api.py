"""Issue: pagination. SPEC §4 on both list routes against a real `flare start`: defaults,
slices in creation order, totals, empty lists, the integer syntax, the limits and the
order of the checks."""

from __future__ import annotations

import pytest

from tests.flare_process import unique_name

pytestmark = pytest.mark.integration

RESOURCES = 35  # more than the default limit of 30
SUBSCRIPTIONS = 33


@pytest.fixture(scope="module")
def registry(flare):
    """The module's process (topics of its own) filled in a known creation order.

    Returns what the lists answered before anything existed, the resources and the
    subscriptions of the first resource, each in creation order, plus a resource without
    subscriptions.
    """
    empty = flare.get("/resources")
    host = f"{unique_name('api')}.test"
    resources = []
    for i in range(RESOURCES):
        answer = flare.post("/resources", json={"endpoint": f"http://{host}/r{i}/{{id}}",
                                                "change": {"field": "version"}})
        assert answer.status_code == 201, answer.text
        resources.append(answer.json())
    owner = resources[0]["id"]
    subscriptions = []
    for i in range(SUBSCRIPTIONS):
        answer = flare.post(f"/resources/{owner}/subscriptions", json={
            "endpoint": {"url": f"http://client.test/s{i}/{{id}}", "method": "post"},
            "delivery": {"success": [200], "discard": [500]}})
        assert answer.status_code == 201, answer.text
        subscriptions.append(answer.json())
    return {"empty": empty, "resources": resources, "subscriptions": subscriptions,
            "owner": owner, "lonely": resources[1]["id"]}


def routes(registry) -> list[tuple[str, str, list[dict]]]:
    """(path, items key, items in creation order) for both list routes."""
    return [("/resources", "resources", registry["resources"]),
            (f"/resources/{registry['owner']}/subscriptions", "subscriptions",
             registry["subscriptions"])]


def page(limit: int, offset: int, total: int, key: str, items: list) -> dict:
    return {"pagination": {"limit": limit, "offset": offset, "total": total}, key: items}


def err(title: str, detail: str) -> dict:
    return {"error": {"title": title, "detail": detail}}


def test_an_empty_registry_lists_an_empty_array(registry):
    empty = registry["empty"]
    assert empty.status_code == 200
    assert empty.headers["content-type"] == "application/json"
    assert empty.json() == page(30, 0, 0, "resources", [])
    assert '"resources":[]' in empty.text  # never null


def test_defaults_are_offset_0_and_limit_30(flare, registry):
    for path, key, items in routes(registry):
        answer = flare.get(path)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == page(30, 0, len(items), key, items[:30])


@pytest.mark.parametrize("offset, limit", [
    (0, 1), (0, 5), (3, 4), (10, 10), (29, 30), (30, 30), (31, 2), (34, 1), (0, 0), (5, 0),
    (0, 35), (0, 999), (0, 1000),
])
def test_slices_in_creation_order(flare, registry, offset, limit):
    for path, key, items in routes(registry):
        answer = flare.get(path, params={"offset": offset, "limit": limit})
        assert answer.status_code == 200, answer.text
        assert answer.json() == page(limit, offset, len(items), key, items[offset:offset + limit])


def test_only_offset_or_only_limit(flare, registry):
    for path, key, items in routes(registry):
        assert flare.get(path, params={"offset": 7}).json() == page(30, 7, len(items), key, items[7:37])
        assert flare.get(path, params={"limit": 3}).json() == page(3, 0, len(items), key, items[:3])


@pytest.mark.parametrize("offset", [35, 36, 1000, 10**6])
def test_past_the_end_is_an_empty_array_with_the_total(flare, registry, offset):
    for path, key, items in routes(registry):
        answer = flare.get(path, params={"offset": offset})
        assert answer.status_code == 200
        expected = page(30, offset, len(items), key, items[offset:offset + 30])
        assert answer.json() == expected
        if offset >= len(items):
            assert f'"{key}":[]' in answer.text


def test_subscriptions_of_a_resource_without_any(flare, registry):
    answer = flare.get(f"/resources/{registry['lonely']}/subscriptions")
    assert answer.status_code == 200
    assert answer.json() == page(30, 0, 0, "subscriptions", [])
    assert '"subscriptions":[]' in answer.text


@pytest.mark.parametrize("resource_id", ["00000000-0000-4000-8000-000000000000", "unknown"])
def test_subscriptions_of_an_unknown_resource_is_200_empty(flare, registry, resource_id):
    answer = flare.get(f"/resources/{resource_id}/subscriptions", params={"limit": 5})
    assert answer.status_code == 200
    assert answer.json() == page(5, 0, 0, "subscriptions", [])


def test_a_sign_is_allowed(flare, registry):
    for path, key, items in routes(registry):
        answer = flare.get(f"{path}?offset=%2B5&limit=%2B2")
        assert answer.json() == page(2, 5, len(items), key, items[5:7])
        answer = flare.get(path, params={"offset": "+5", "limit": "+2"})
        assert answer.json() == page(2, 5, len(items), key, items[5:7])
        answer = flare.get(path, params={"offset": "-0", "limit": "007"})
        assert answer.json() == page(7, 0, len(items), key, items[:7])


def test_an_empty_value_means_the_default(flare, registry):
    # Like the original service: `?limit=` is no limit given.
    for path, key, items in routes(registry):
        answer = flare.get(f"{path}?offset=&limit=")
        assert answer.status_code == 200, answer.text
        assert answer.json() == page(30, 0, len(items), key, items[:30])


@pytest.mark.parametrize("query, detail", [
    ("limit=sample", "error during parameter 'limit' parse with value 'sample'"),
    ("offset=sample", "error during parameter 'offset' parse with value 'sample'"),
    ("limit=1.5", "error during parameter 'limit' parse with value '1.5'"),
    ("offset=1e3", "error during parameter 'offset' parse with value '1e3'"),
    ("limit=0x10", "error during parameter 'limit' parse with value '0x10'"),
    ("limit=%2010", "error during parameter 'limit' parse with value ' 10'"),
    ("offset=10%20", "error during parameter 'offset' parse with value '10 '"),
    ("limit=%2B", "error during parameter 'limit' parse with value '+'"),
    # A raw `+` in a query string is a space (form encoding), so the sign must be `%2B`.
    ("limit=+5", "error during parameter 'limit' parse with value ' 5'"),
    ("offset=-", "error during parameter 'offset' parse with value '-'"),
    ("limit=--1", "error during parameter 'limit' parse with value '--1'"),
    ("limit=%D9%A3", "error during parameter 'limit' parse with value '\u0663'"),  # Arabic 3
    ("limit=1_000", "error during parameter 'limit' parse with value '1_000'"),
    # Offset is checked before limit, whatever the order in the query.
    ("limit=abc&offset=xyz", "error during parameter 'offset' parse with value 'xyz'"),
    ("offset=xyz&limit=-1", "error during parameter 'offset' parse with value 'xyz'"),
    ("limit=2000&offset=xyz", "error during parameter 'offset' parse with value 'xyz'"),
])
def test_not_an_integer(flare, registry, query, detail):
    for path, _, _ in routes(registry):
        answer = flare.get(f"{path}?{query}")
        assert (answer.status_code, answer.json()) == (400, err("error during pagination parse", detail))
        assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize("query, detail", [
    ("offset=-1", "invalid offset '-1'"),
    ("offset=-30&limit=5", "invalid offset '-30'"),
    ("limit=-1", "invalid limit '-1'"),
    ("limit=1001", "invalid limit '1001'"),
    ("limit=%2B1001", "invalid limit '1001'"),
    ("limit=1000000", "invalid limit '1000000'"),
    ("offset=3&limit=-7", "invalid limit '-7'"),
    # Offset is checked (parsed and ranged) before limit.
    ("limit=abc&offset=-1", "invalid offset '-1'"),
    ("limit=1001&offset=-1", "invalid offset '-1'"),
])
def test_out_of_range(flare, registry, query, detail):
    for path, _, _ in routes(registry):
        answer = flare.get(f"{path}?{query}")
        assert (answer.status_code, answer.json()) == (400, err("invalid pagination", detail))


def test_limit_1000_is_the_maximum(flare, registry):
    for path, key, items in routes(registry):
        assert flare.get(path, params={"limit": 1000}).json() == page(1000, 0, len(items), key, items)
        assert flare.get(path, params={"limit": 1001}).status_code == 400


def test_pagination_errors_win_for_an_unknown_resource_too(flare, registry):
    answer = flare.get("/resources/unknown/subscriptions", params={"limit": "x"})
    assert (answer.status_code, answer.json()) == (
        400, err("error during pagination parse", "error during parameter 'limit' parse with value 'x'"))


def test_deleted_items_leave_the_list_and_the_order_stays(flare, registry):
    host = f"{unique_name('api')}.test"
    made = []
    for i in range(3):
        answer = flare.post("/resources", json={"endpoint": f"http://{host}/d{i}/{{id}}",
                                                "change": {"field": "version"}})
        assert answer.status_code == 201
        made.append(answer.json())
    assert flare.delete(f"/resources/{made[1]['id']}").status_code == 204
    expected = registry["resources"] + [made[0], made[2]]
    assert flare.get("/resources", params={"limit": 1000}).json() == page(
        1000, 0, len(expected), "resources", expected)
    tail = flare.get("/resources", params={"offset": RESOURCES, "limit": 10}).json()
    assert tail == page(10, RESOURCES, len(expected), "resources", [made[0], made[2]])
    for m in (made[0], made[2]):
        assert flare.delete(f"/resources/{m['id']}").status_code == 204
