"""POST /resources/{id}/subscriptions at 64 concurrent: creations/s, and flat as the count grows.

One `flare start` process, one resource; bench/loadgen.py keeps ``CONNECTIONS`` keep-alive
connections with one creation in flight on each, every one with a url of its own (all
answer 201). Creations are counted to ``TOTAL`` (100,000; 10,000 in quick mode) and the
rate is taken per window of ``WINDOW`` creations: the first window is the burst figure,
the last against the first says whether the registry stays flat as a resource's
subscriptions grow.

Every creation is a command through the one-partition commands topic, a record and a
reply (streams/registry.py), so the baseline, measured in the same run, is what Kafka
alone gives a request/reply at the same concurrency: ``CONNECTIONS`` workers each producing
a message (acks=all) to a one-partition topic and waiting until a consumer tailing that
topic has read it back.

The load generator's own CPU time is printed next to Flare's: whichever is near a full
core is the limit.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from bench import kafka
from bench.loadgen import run_count
from bench.process import CpuSampler
from bench.report import Figure, console
from tests.flare_process import FlareProcess, unique_name

CONNECTIONS = 64
TOTAL = 100_000
WINDOW = 10_000
GOAL = 500.0
GOAL_FLAT = 0.8
BASELINE_SECONDS = 10.0


# -- baseline: a request/reply round trip through one partition, acks=all ---------------

async def round_trips(bootstrap: str, seconds: float) -> float:
    """Round trips per second at ``CONNECTIONS`` concurrent (see the module docstring)."""
    topic = unique_name("bench-roundtrip")
    async with kafka.admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=2)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    waiting: dict[bytes, asyncio.Future] = {}
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, (await consumer.end_offsets([tp]))[tp])

    async def tail() -> None:
        while True:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for message in messages:
                    future = waiting.pop(message.key, None)
                    if future is not None:
                        future.set_result(message.value)

    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        loop = asyncio.get_running_loop()
        while time.monotonic() < stop_at:
            key = uuid.uuid4().bytes
            waiting[key] = future = loop.create_future()
            await producer.send_and_wait(topic, b'{"v":1}', key=key)
            await future
            done += 1

    tailing = asyncio.create_task(tail())
    try:
        stop_at = time.monotonic() + 1.0  # warm-up
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        done = 0
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return done / (time.monotonic() - started)
    finally:
        tailing.cancel()
        await consumer.stop()
        await producer.stop()


# -- Flare ------------------------------------------------------------------------------

def request_factory(port: int, resource_id: str):
    host = f"127.0.0.1:{port}".encode()
    path = f"/resources/{resource_id}/subscriptions".encode()

    def make(n: int) -> bytes:
        body = orjson.dumps({"endpoint": {"url": f"http://client.test/bench/{n}/{{id}}",
                                          "method": "post"},
                             "delivery": {"success": [200], "discard": [410]}})
        return (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (path, host, len(body))) + body

    return make


def windows(done_at: list[float], size: int) -> list[float]:
    """Creations per second in each window of ``size`` answers (``done_at[0]``: the start)."""
    return [size / (done_at[end] - done_at[end - size])
            for end in range(size, len(done_at), size)]


async def _flare(ctx, total: int) -> dict:
    prefix = unique_name("registry")
    flare = FlareProcess(bootstrap=ctx.bootstrap, data_dir=ctx.work / prefix, prefix=prefix,
                         app_id=prefix, env={"FLARE_LOG_LEVEL": "warning"})
    problems: list[str] = []
    try:
        with console.status("starting flare"):
            await asyncio.to_thread(flare.start)
        async with httpx.AsyncClient(base_url=flare.base_url, timeout=30) as client:
            answer = await client.post("/resources", json={
                "endpoint": f"http://{prefix}.test/u/{{id}}", "change": {"field": "v"}})
            resource_id = answer.json()["id"]
        with console.status(f"{total:,} creations ({CONNECTIONS} connections)"):
            own_before = time.process_time()
            with CpuSampler(flare.process.pid) as cpu:
                started = time.time()
                offset = started - time.perf_counter()  # perf_counter → wall clock
                result, done_at = await run_count("127.0.0.1", flare.port,
                                                  request_factory(flare.port, resource_id),
                                                  connections=CONNECTIONS, total=total)
                flare_cpu = cpu.between(started, started + result.seconds) or 0.0
            # Flare's CPU per creation in each window: a cost growing with the count shows
            # here even when the machine's load moves the rates.
            window_cpu = [(cpu.between(done_at[end - WINDOW] + offset, done_at[end] + offset) or 0.0)
                          / WINDOW * 1e6 for end in range(WINDOW, len(done_at), WINDOW)]
            own_cpu = time.process_time() - own_before
        others = {s: n for s, n in result.statuses.items() if s != 201}
        if others:
            problems.append(f"answers other than 201: {others}")
        async with httpx.AsyncClient(base_url=flare.base_url, timeout=30) as client:
            listed = await client.get(f"/resources/{resource_id}/subscriptions", params={"limit": 1})
            if listed.json()["pagination"]["total"] != result.statuses.get(201, 0):
                problems.append(f"listed {listed.json()['pagination']['total']} subscriptions")
    finally:
        await asyncio.to_thread(flare.stop)
    bad = [line for line in flare.log().splitlines() if " ERROR " in line or " WARNING " in line]
    if bad:
        problems.append(f"{len(bad)} ERROR/WARNING log lines, first: {bad[0][:200]}")
    return {"result": result, "done_at": done_at, "flare_cpu": flare_cpu, "own_cpu": own_cpu,
            "window_cpu": window_cpu, "problems": problems}


async def run(ctx) -> list[Figure]:
    total = WINDOW if ctx.quick else TOTAL
    with console.status(f"baseline: raw request/reply round trips ({CONNECTIONS} concurrent)"):
        baseline = await round_trips(ctx.bootstrap, 4.0 if ctx.quick else BASELINE_SECONDS)
    console.print(f"  baseline: {baseline:,.0f} round trips/s through one partition (acks=all)")
    found = await _flare(ctx, total)
    result, done_at = found["result"], found["done_at"]
    rates = windows(done_at, WINDOW)
    if not rates:
        rates = [0.0]
    seconds = result.seconds
    console.print(f"  flare: {result.requests:,} creations in {seconds:.1f} s; per {WINDOW:,}: "
                  + ", ".join(f"{r:,.0f}" for r in rates) + "/s")
    console.print(f"  CPU: flare {found['flare_cpu'] / seconds:.0%} of a core, "
                  f"load generator {found['own_cpu'] / seconds:.0%}; flare µs per creation, "
                  f"per {WINDOW:,}: " + ", ".join(f"{c:,.0f}" for c in found["window_cpu"]))
    details = {
        f"creations/s per {WINDOW:,}": ", ".join(f"{r:,.0f}" for r in rates),
        "p50 / p99 latency (ms)": f"{result.percentile(50):.1f} / {result.percentile(99):.1f}",
        "CPU µs per creation (Flare process)": found["flare_cpu"] / max(result.requests, 1) * 1e6,
        f"CPU µs per creation per {WINDOW:,}": ", ".join(f"{c:,.0f}" for c in found["window_cpu"]),
        "CPU of a core: Flare / load generator":
            f"{found['flare_cpu'] / seconds:.0%} / {found['own_cpu'] / seconds:.0%}",
    }
    figures = [Figure(
        key="registry_creations_per_s",
        title=f"subscription creations, first {WINDOW:,} ({CONNECTIONS} concurrent)",
        unit="creations/s", value=rates[0], baseline=baseline,
        baseline_title="raw aiokafka request/reply round trip (1 partition, acks=all)",
        goal_value=GOAL, details=details, problems=found["problems"])]
    if len(rates) > 1:
        figures.append(Figure(
            key="registry_flat",
            title=f"subscription creations, last {WINDOW:,} of {result.requests:,} on one resource",
            unit="creations/s", value=rates[-1], baseline=rates[0],
            baseline_title=f"first {WINDOW:,} of the same run", goal_ratio=GOAL_FLAT,
            samples=rates, details={"lowest window": min(rates)}))
    return figures
