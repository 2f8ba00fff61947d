"""Issue: registry consistency. SPEC §5 step 5, §7 step 5 and §8 ("registry changes take
effect when they are answered") against real `flare start` processes: concurrent creations
through one process and through two, read-your-writes, visibility across processes, and a
restart that keeps every id, timestamp and the creation order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx
import pytest

from tests.flare_process import poll, unique_name

pytestmark = pytest.mark.integration

N = 20


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every call on its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def post_json(base_url: str, path: str, body: dict) -> Callable[[], httpx.Response]:
    # A client per call: separate connections, really concurrent requests.
    def call() -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=60.0) as client:
            return client.post(path, json=body)
    return call


def resource_body(endpoint: str) -> dict:
    return {"endpoint": endpoint, "change": {"field": "version"}}


def sub_body(url: str) -> dict:
    return {"endpoint": {"url": url, "method": "post"}, "delivery": {"success": [200], "discard": [500]}}


def new_resource(flare) -> dict:
    answer = flare.post("/resources", json=resource_body(f"http://{unique_name('api')}.test/u/{{id}}"))
    assert answer.status_code == 201, answer.text
    return answer.json()


def assert_one_winner(answers: list[httpx.Response], title: str, detail_of: Callable[[dict], str]) -> dict:
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * (len(answers) - 1), [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 201)
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json() == {"error": {"title": title, "detail": detail_of(winner)}}
    return winner


def resource_conflict(winner: dict) -> str:
    return f"endpoint already associated to another resource '{winner['id']}'"


def list_all(process, path: str) -> list[dict]:
    answer = process.get(path, params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return answer.json()[path.rsplit("/", 1)[-1]]


# -- one process ----------------------------------------------------------------------

def test_concurrent_resource_creations_through_one_process(flare):
    host = f"{unique_name('api')}.test"
    # Same shape under different names: every one conflicts with every other.
    calls = [post_json(flare.base_url, "/resources",
                       resource_body(f"http://{host}/users/{{w{i}}}")) for i in range(N)]
    winner = assert_one_winner(at_once(calls), "error during resource create", resource_conflict)
    assert [r["id"] for r in list_all(flare, "/resources") if host in r["endpoint"]] == [winner["id"]]


def test_concurrent_subscription_creations_through_one_process(flare):
    rid = new_resource(flare)["id"]
    url = f"http://client.test/{unique_name('hook')}/{{id}}"
    calls = [post_json(flare.base_url, f"/resources/{rid}/subscriptions", sub_body(url)) for _ in range(N)]
    winner = assert_one_winner(
        at_once(calls), "error during subscription create",
        lambda w: f"already exists a subscription '{w['id']}' with the endpoint.URL '{url}'")
    assert list_all(flare, f"/resources/{rid}/subscriptions") == [winner]


def test_read_your_writes_on_one_process(flare):
    for _ in range(2):
        created = new_resource(flare)
        rid = created["id"]
        # No polling: the answer to the POST means the process already sees it.
        assert flare.get(f"/resources/{rid}").json() == created
        assert created in list_all(flare, "/resources")
        sub = flare.post(f"/resources/{rid}/subscriptions", json=sub_body("http://client.test/ryw"))
        assert sub.status_code == 201, sub.text
        assert flare.get(f"/resources/{rid}/subscriptions/{sub.json()['id']}").json() == sub.json()
        assert list_all(flare, f"/resources/{rid}/subscriptions") == [sub.json()]
        # The delete conflict sees the subscription written just before.
        assert flare.delete(f"/resources/{rid}").status_code == 409
        assert flare.delete(f"/resources/{rid}/subscriptions/{sub.json()['id']}").status_code == 204
        assert flare.get(f"/resources/{rid}/subscriptions/{sub.json()['id']}").status_code == 404
        assert list_all(flare, f"/resources/{rid}/subscriptions") == []
        assert flare.delete(f"/resources/{rid}").status_code == 204
        assert flare.get(f"/resources/{rid}").status_code == 404
        assert rid not in [r["id"] for r in list_all(flare, "/resources")]
        # The endpoint is free at once.
        again = flare.post("/resources", json=resource_body(created["endpoint"]))
        assert again.status_code == 201, again.text
        assert flare.delete(f"/resources/{again.json()['id']}").status_code == 204


# -- two processes sharing app id and prefix ------------------------------------------



def test_two_processes(pair):
    a, b = pair
    # Concurrent creations of one endpoint shape, split across both: one 201 overall.
    host = f"{unique_name('api')}.test"
    calls = [post_json((a, b)[i % 2].base_url, "/resources",
                       resource_body(f"http://{host}/users/{{w{i}}}")) for i in range(N)]
    winner = assert_one_winner(at_once(calls), "error during resource create", resource_conflict)
    for process in (a, b):
        poll(lambda: [r["id"] for r in list_all(process, "/resources") if host in r["endpoint"]]
             == [winner["id"]], timeout=10, message=f"one resource listed on {process.port}")

    # Created through one process, returned by the other within a few seconds.
    created = new_resource(a)
    assert a.get(f"/resources/{created['id']}").json() == created  # read-your-writes on a
    poll(lambda: b.get(f"/resources/{created['id']}").json() == created, timeout=5,
         message="resource from a visible on b")

    # Concurrent subscription creations with one url, split across both: one 201 overall.
    rid = created["id"]
    url = f"http://client.test/{unique_name('hook')}/{{id}}"
    calls = [post_json((a, b)[i % 2].base_url, f"/resources/{rid}/subscriptions", sub_body(url))
             for i in range(N)]
    sub = assert_one_winner(
        at_once(calls), "error during subscription create",
        lambda w: f"already exists a subscription '{w['id']}' with the endpoint.URL '{url}'")
    for process in (a, b):
        poll(lambda: list_all(process, f"/resources/{rid}/subscriptions") == [sub], timeout=5,
             message=f"one subscription listed on {process.port}")

    # A delete through b is decided against a's writes, and seen by a.
    assert b.delete(f"/resources/{rid}").status_code == 409
    assert b.delete(f"/resources/{rid}/subscriptions/{sub['id']}").status_code == 204
    assert b.get(f"/resources/{rid}/subscriptions/{sub['id']}").status_code == 404
    assert b.delete(f"/resources/{rid}").status_code == 204
    assert b.get(f"/resources/{rid}").status_code == 404
    poll(lambda: a.get(f"/resources/{rid}").status_code == 404, timeout=5,
         message="delete from b visible on a")


# -- restart --------------------------------------------------------------------------

def test_restart_keeps_the_registry(flare_factory, tmp_path):
    process = flare_factory(data_dir=tmp_path / "kept").start()
    host = f"{unique_name('api')}.test"
    resources = []
    for i in range(5):
        answer = process.post("/resources", json={
            "endpoint": f"http://{host}/r{i}/{{id}}",
            "change": {"field": "updatedAt", "format": "2006-01-02T15:04:05Z07:00"} if i % 2 else
                      {"field": "version"}})
        assert answer.status_code == 201, answer.text
        resources.append(answer.json())
    subscriptions = {}
    for r in resources[:3]:
        subscriptions[r["id"]] = []
        for j in range(3):
            answer = process.post(f"/resources/{r['id']}/subscriptions", json={
                "endpoint": {"url": f"http://client.test/{j}/{{id}}", "method": "put",
                             "headers": {"X-Key": [str(j)]}},
                "delivery": {"success": [200], "discard": [410]},
                "content": {"document": j != 1}, "data": {"n": j}})
            assert answer.status_code == 201, answer.text
            subscriptions[r["id"]].append(answer.json())
    # Deletions must survive the restart too.
    gone_sub = subscriptions[resources[0]["id"]].pop(1)
    assert process.delete(f"/resources/{resources[0]['id']}/subscriptions/{gone_sub['id']}").status_code == 204
    gone = resources.pop(4)
    assert process.delete(f"/resources/{gone['id']}").status_code == 204

    before = {"resources": list_all(process, "/resources"),
              **{rid: list_all(process, f"/resources/{rid}/subscriptions") for rid in subscriptions}}
    assert before["resources"] == resources
    for rid, subs in subscriptions.items():
        assert before[rid] == subs

    process.stop()
    assert not process.alive()
    process.start()

    assert list_all(process, "/resources") == before["resources"]
    for rid in subscriptions:
        assert list_all(process, f"/resources/{rid}/subscriptions") == before[rid]
    for r in resources:
        assert process.get(f"/resources/{r['id']}").json() == r
    for rid, subs in subscriptions.items():
        for s in subs:
            assert process.get(f"/resources/{rid}/subscriptions/{s['id']}").json() == s
    assert process.get(f"/resources/{gone['id']}").status_code == 404
    assert process.get(f"/resources/{resources[0]['id']}/subscriptions/{gone_sub['id']}").status_code == 404
    # The rules still hold against what was read back.
    conflict = process.post("/resources", json=resource_body(f"http://{host}/r0/{{other}}"))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["detail"] == \
        f"endpoint already associated to another resource '{resources[0]['id']}'"
    dup = process.post(f"/resources/{resources[1]['id']}/subscriptions", json=sub_body("http://client.test/2/{id}"))
    assert dup.status_code == 409
    assert dup.json()["error"]["detail"] == (
        f"already exists a subscription '{subscriptions[resources[1]['id']][2]['id']}' "
        "with the endpoint.URL 'http://client.test/2/{id}'")
    assert process.delete(f"/resources/{resources[0]['id']}").status_code == 409
    # The deleted endpoint was freed for good.
    assert process.post("/resources", json=resource_body(gone["endpoint"])).status_code == 201
    assert "Traceback" not in process.log()
