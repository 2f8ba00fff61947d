"""PUT /documents/s through Flare's API, next to a minimal Starlette endpoint.

Both servers run under the same uvicorn configuration (app/server.py's) in their own
process and get the same load: bench/loadgen.py with ``CONNECTIONS`` keep-alive
connections, one request in flight on each, every request a new revision of one of
``DOCUMENTS`` documents (about 250-byte bodies). Warm-up, then a counted window.

Flare's 202 means the change is in Kafka with acks=all (SPEC §8), and the same process
then consumes it in its changes stage: the figure is what one `flare start` sustains with
both. The minimal endpoint decodes the JSON body and answers 202 without Kafka, so the
ratio shows what Flare's request path costs on top of Starlette and uvicorn.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.config import Settings
from app.local_kafka import free_port
from bench import kafka, workload
from bench.loadgen import LoadResult, run_load
from bench.process import CpuSampler
from bench.report import Figure, console, median
from tests.flare_process import FlareProcess, poll, unique_name

NAME = "api"
CONNECTIONS = 64
DOCUMENTS = 10_000
WARMUP = 3.0
DURATION = 12.0
GOAL_RATIO = 0.5
#: Issue 13, "keep what Flare already does better": PUT/s with acks=all.
GOAL_RATE = 2_500
ROOT = Path(__file__).resolve().parents[1]


def request_factory(port: int):
    """The n-th request: PUT revision n // DOCUMENTS + 1 of document n % DOCUMENTS."""
    host = f"127.0.0.1:{port}".encode()

    def make(n: int) -> bytes:
        i, revision = n % DOCUMENTS, n // DOCUMENTS + 1
        body = workload.body(i, revision)
        return (b"PUT /documents/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (workload.url(i).encode(), host, len(body))) + body

    return make


async def _load(port: int, pid: int, warmup: float, duration: float) -> tuple[LoadResult, float]:
    with CpuSampler(pid) as cpu:
        before = time.time()
        result = await run_load("127.0.0.1", port, request_factory(port), connections=CONNECTIONS,
                                warmup=warmup, duration=duration)
    # The counted window starts after the warm-up (connecting takes milliseconds).
    used = cpu.between(before + warmup, before + warmup + result.seconds)
    return result, (used or 0.0) / max(result.requests, 1) * 1e6


async def _minimal(warmup: float, duration: float) -> tuple[LoadResult, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.minimal_api", str(port)],
                              cwd=str(ROOT), stdin=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(poll, lambda: httpx.get(f"http://127.0.0.1:{port}/healthz")
                                .status_code == 200, 30.0, 0.1, "minimal endpoint up")
        with console.status(f"minimal endpoint under load ({CONNECTIONS} connections)"):
            return await _load(port, server.pid, warmup, duration)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _flare(ctx, warmup: float, duration: float) -> tuple[LoadResult, float, list[str]]:
    prefix = unique_name("api")
    settings = Settings(kafka_bootstrap=ctx.bootstrap, topic_prefix=prefix, app_id=prefix)
    await kafka.prepare_prefix(settings)
    flare = FlareProcess(bootstrap=ctx.bootstrap, data_dir=ctx.work / prefix, prefix=prefix,
                         app_id=prefix, env={"FLARE_LOG_LEVEL": "warning"})
    problems: list[str] = []
    try:
        with console.status("starting flare"):
            await asyncio.to_thread(flare.start)
        with console.status(f"flare under load ({CONNECTIONS} connections)"):
            result, cpu = await _load(flare.port, flare.process.pid, warmup, duration)
        # Check: the last accepted revision of a document is the one stored.
        answer = await asyncio.to_thread(flare.get, f"/documents/{workload.url(0)}")
        if answer.status_code != 200:
            problems.append(f"GET after the load answered {answer.status_code}")
    finally:
        flare.stop()
    return result, cpu, problems


async def run(ctx) -> list[Figure]:
    warmup, duration = (1.0, 4.0) if ctx.quick else (WARMUP, DURATION)
    minimal: list[LoadResult] = []
    flare: list[LoadResult] = []
    cpu_minimal: list[float] = []
    cpu_flare: list[float] = []
    problems: list[str] = []
    repeats = ctx.repeats(2)
    for rep in range(repeats):
        result, cpu = await _minimal(warmup, duration)
        minimal.append(result)
        cpu_minimal.append(cpu)
        console.print(f"  run {rep + 1}/{repeats}: minimal endpoint {result.rate:,.0f} PUT/s "
                      f"(p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms; "
                      f"{cpu:.0f} µs CPU per request)")
        result, cpu, found = await _flare(ctx, warmup, duration)
        flare.append(result)
        cpu_flare.append(cpu)
        problems += found
        console.print(f"  run {rep + 1}/{repeats}: flare {result.rate:,.0f} PUT/s "
                      f"(p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms; "
                      f"{cpu:.0f} µs CPU per request)")
    for name, results in (("minimal endpoint", minimal), ("flare", flare)):
        for result in results:
            others = {s: n for s, n in result.statuses.items() if s != 202}
            if others:
                problems.append(f"{name}: answers other than 202: {others}")
    best = max(flare, key=lambda r: r.rate)
    return [Figure(
        key="api_put_per_s",
        title=f"PUT /documents ({CONNECTIONS} connections)",
        unit="PUT/s", value=median([r.rate for r in flare]),
        baseline=median([r.rate for r in minimal]), baseline_title="minimal Starlette endpoint",
        goal_ratio=GOAL_RATIO, goal_value=GOAL_RATE,
        samples=[r.rate for r in flare], baseline_samples=[r.rate for r in minimal],
        when_missed=(f"Flare used {median(cpu_flare):.0f} µs of CPU per PUT (API and changes "
                     f"stage in one process) against the minimal endpoint's "
                     f"{median(cpu_minimal):.0f} µs. Next: py-spy on the process under the "
                     "same load (`py-spy record --pid`, as `--only e2e --profile` does)"),
        details={"Flare p50 / p99 latency (ms)": f"{best.percentile(50):.1f} / {best.percentile(99):.1f}",
                 "CPU µs per PUT (Flare process, API + agent)": median(cpu_flare),
                 "CPU µs per PUT (minimal endpoint)": median(cpu_minimal)},
        problems=problems)]
