"""Issue 9: the process deciding registry commands is SIGKILLed while commands are in flight;
another process takes the commands partition over. Every request through the survivor gets
exactly one answer, consistent with what the registry holds afterwards (201: the object is
there, as answered; 409: the named winner is there) or a 503; SPEC §7 step 5 uniqueness
holds."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.flare_process import poll, unique_name

pytestmark = pytest.mark.integration

URLS = 40
TRIES_PER_URL = 5
CONCURRENCY = 16


def decides(process) -> bool:
    """Whether the process's log says it owns the commands partition now."""
    lines = [line for line in process.log().splitlines() if "decides registry commands" in line]
    return bool(lines) and "no longer" not in lines[-1]


def sub_body(url: str) -> dict:
    return {"endpoint": {"url": url, "method": "post"}, "delivery": {"success": [200], "discard": [500]}}




async def test_decider_killed_while_commands_are_in_flight(pair):
    a, b = pair
    owner = poll(lambda: next((p for p in (a, b) if decides(p)), None), timeout=30,
                 message="one process decides")
    survivor = b if owner is a else a
    answer = await asyncio.to_thread(survivor.post, "/resources", json={
        "endpoint": f"http://{unique_name('api')}.test/u/{{id}}", "change": {"field": "v"}})
    assert answer.status_code == 201, answer.text
    rid = answer.json()["id"]

    urls = [f"http://client.test/{unique_name('hook')}/{{id}}" for _ in range(URLS)]
    jobs = [urls[i % URLS] for i in range(URLS * TRIES_PER_URL)]
    answers: list[tuple[str, httpx.Response]] = []
    half_done = asyncio.Event()

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=survivor.base_url, timeout=90.0) as client:
            while jobs:
                url = jobs.pop()
                response = await client.post(f"/resources/{rid}/subscriptions", json=sub_body(url))
                answers.append((url, response))
                if len(answers) >= URLS:
                    half_done.set()

    async def killer() -> None:
        await half_done.wait()
        await asyncio.to_thread(owner.kill)  # SIGKILL, commands still in flight

    await asyncio.gather(killer(), *(worker() for _ in range(CONCURRENCY)))
    assert not owner.alive()
    assert len(answers) == URLS * TRIES_PER_URL
    statuses = Counter(response.status_code for _, response in answers)
    assert set(statuses) <= {201, 409, 503}, [r.text for _, r in answers if r.status_code not in (201, 409, 503)]
    assert statuses[201] >= 1

    # The survivor decides now, and answers at once.
    poll(lambda: decides(survivor), timeout=30, message="the survivor decides")
    late = await asyncio.to_thread(survivor.post, f"/resources/{rid}/subscriptions",
                                   json=sub_body(f"http://client.test/{unique_name('late')}/{{id}}"))
    assert late.status_code == 201, late.text

    listed = survivor.get(f"/resources/{rid}/subscriptions", params={"limit": 1000}).json()["subscriptions"]
    by_id = {s["id"]: s for s in listed}
    by_url: dict[str, list[str]] = {}
    for s in listed:
        by_url.setdefault(s["endpoint"]["url"], []).append(s["id"])
    # Uniqueness (§7 step 5): one subscription per url at most.
    assert all(len(ids) == 1 for ids in by_url.values()), by_url
    for url, response in answers:
        if response.status_code == 201:  # what was answered is what is there
            assert by_id.get(response.json()["id"]) == response.json()
            assert by_url[url] == [response.json()["id"]]
        elif response.status_code == 409:  # the winner it names is there, with that url
            detail = response.json()["error"]["detail"]
            assert detail == f"already exists a subscription '{by_url[url][0]}' with the endpoint.URL '{url}'"
    # Two 201s for one url would be two answers for one slot: never.
    won = Counter(url for url, response in answers if response.status_code == 201)
    assert max(won.values()) == 1
    assert "Traceback" not in survivor.log()
    print(f"answers: {dict(statuses)}")
