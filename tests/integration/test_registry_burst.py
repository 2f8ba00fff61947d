"""Issue 9, "a registry that holds a burst": 10,000 subscription creations at 64 concurrent
through one real `flare start` process all answer 201; the registry still answers at once
afterwards; the log stays clean; and no topic is created per start."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from app.config import Settings
from streams.topics import flare_topics
from tests.flare_process import unique_name
from tests.kafka_offsets import admin_client

pytestmark = pytest.mark.integration

CREATIONS = 10_000
CONCURRENCY = 64


def sub_body(url: str) -> dict:
    return {"endpoint": {"url": url, "method": "post"}, "delivery": {"success": [200], "discard": [410]}}


async def topics_of(bootstrap: str, *names: str) -> set[str]:
    async with admin_client(bootstrap) as admin:
        found = await admin.list_topics()
    return {t for t in found if any(n in t for n in names) or t.startswith("f-reply")}


async def create_many(base_url: str, rid: str, count: int, concurrency: int) -> dict[int, int]:
    """``count`` creations with distinct urls from ``concurrency`` workers, one connection
    each (one httpx client per worker: a shared pool slows down as it grows, DESIGN.md)."""
    statuses: dict[int, int] = {}
    next_n = iter(range(count))

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
            for n in next_n:
                answer = await client.post(f"/resources/{rid}/subscriptions",
                                           json=sub_body(f"http://client.test/burst/{n}/{{id}}"))
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code != 201:
                    raise AssertionError(f"creation {n}: {answer.status_code} {answer.text}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def test_burst_of_subscription_creations(flare_factory, kafka_bootstrap, tmp_path):
    name = unique_name("burst")
    process = flare_factory(app_id=name, prefix=name, data_dir=tmp_path / "burst")
    await asyncio.to_thread(process.start)
    expected = {spec.name for spec in flare_topics(Settings(topic_prefix=name, app_id=name))}
    first_topics = await topics_of(kafka_bootstrap, name)
    assert first_topics == expected

    async with httpx.AsyncClient(base_url=process.base_url, timeout=60.0) as client:
        answer = await client.post("/resources", json={
            "endpoint": f"http://{name}.test/u/{{id}}", "change": {"field": "v"}})
        assert answer.status_code == 201, answer.text
        rid = answer.json()["id"]

        started = time.monotonic()
        statuses = await create_many(process.base_url, rid, CREATIONS, CONCURRENCY)
        seconds = time.monotonic() - started
        assert statuses == {201: CREATIONS}
        print(f"{CREATIONS} creations in {seconds:.1f} s: {CREATIONS / seconds:.0f}/s")

        listed = (await client.get(f"/resources/{rid}/subscriptions", params={"limit": 1})).json()
        assert listed["pagination"]["total"] == CREATIONS

        # Afterwards the registry answers at once (not seconds, and not 503).
        started = time.monotonic()
        answer = await client.post("/resources", json={
            "endpoint": f"http://{name}.test/after/{{id}}", "change": {"field": "v"}})
        assert answer.status_code == 201, answer.text
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        answer = await client.post(f"/resources/{answer.json()['id']}/subscriptions",
                                   json=sub_body("http://client.test/after/{id}"))
        assert answer.status_code == 201, answer.text
        assert time.monotonic() - started < 1.0

    # A second start creates no topic.
    await asyncio.to_thread(process.stop)
    await asyncio.to_thread(process.start)
    assert await topics_of(kafka_bootstrap, name) == first_topics
    await asyncio.to_thread(process.stop)

    log = process.log()
    assert "flare stopped cleanly" in log
    bad = [line for line in log.splitlines() if re.search(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback", line)]
    assert bad == []
