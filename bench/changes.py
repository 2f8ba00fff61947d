"""Change processing: changes/s through the changes stage, next to a raw aiokafka pipe.

One repetition:
  1. a fresh topic prefix: Flare's topics, the benchmark registry (bench/workload.py);
  2. ``COUNT`` valid puts produced straight to ``<prefix>.documents`` (as a direct producer
     would, SPEC §10), before anything consumes them;
  3. the raw pipe (bench/rawpipe.py, its own process, a dict as its table) consumes them
     all, then a ``flare start`` process with an app id of its own consumes them all; the
     benchmark watches the changes group's committed offsets until they reach the end of
     the topic, then stops it.
Rate = changes / time from the first change processed to the last: the raw pipe measures
it inside (through its last commit); for Flare the benchmark reads the changes stage's
``flare_changes_accepted_total`` on /metrics every 50 ms (about 2 % of a core). Both write
their changelog once per changed key per commit (the stage's commit order), so the
changelog's own timestamps no longer time the work. Start-up and shutdown are excluded for
both. CPU per change comes from /proc samples over the same window. Each Flare run is
checked: offsets all committed, a changelog record for every document, nothing rejected,
the last document of every partition readable at its last revision.
"""

from __future__ import annotations

import asyncio
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from aiokafka.admin import NewTopic

from app.config import Settings
from bench import kafka, workload
from bench.process import CpuSampler, ProfiledFlare
from bench.rawpipe import OUTPUT
from bench.report import Figure, console, median
from streams.changes import changelog_topic, changes_group
from tests.flare_process import FlareProcess, unique_name

NAME = "changes"
#: Large enough that the 50 ms reading of the counter is ~1 % of a run at 40,000/s.
COUNT = 200_000
ACCEPTED = re.compile(r"^flare_changes_accepted_total (\S+)$", re.M)
DOCUMENTS = 10_000
GOAL_RATE = 10_000
#: Issue 13, "keep what Flare already does better": the ratio measured when it was filed.
GOAL_RATIO = 0.64
ROOT = Path(__file__).resolve().parents[1]


async def _prepare(ctx, count: int) -> tuple[Settings, kafka.Produced]:
    prefix = unique_name("bench")
    settings = Settings(kafka_bootstrap=ctx.bootstrap, topic_prefix=prefix, app_id=prefix)
    await kafka.prepare_prefix(settings)
    with console.status(f"producing {count:,} changes to {settings.topic('documents')}"):
        produced = await kafka.produce(ctx.bootstrap, settings.topic("documents"),
                                       workload.changes(count, min(DOCUMENTS, count)))
    return settings, produced


async def _raw_pipe(ctx, settings: Settings, count: int) -> tuple[float, dict]:
    output = settings.topic(OUTPUT)
    async with kafka.admin_client(ctx.bootstrap) as admin:
        await admin.create_topics([NewTopic(output, settings.partitions, 1)])
    with console.status("raw aiokafka pipe consuming"):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bench.rawpipe", ctx.bootstrap,
                             settings.topic_prefix, str(count)],
            capture_output=True, text=True, cwd=str(ROOT), timeout=300 + count / 5_000)
    if done.returncode != 0:
        raise RuntimeError(f"raw pipe failed:\n{done.stderr[-3000:]}")
    inside = orjson.loads(done.stdout.strip().splitlines()[-1])
    details = {"cpu_us_per_change": inside["cpu_seconds"] / count * 1e6}
    return inside["rate"], details


async def _flare(ctx, settings: Settings, produced: kafka.Produced,
                 profile_path: Path | None = None) -> tuple[float, dict, list[str]]:
    app_id = f"{settings.topic_prefix}-flare"
    source = settings.topic("documents")
    kind = ProfiledFlare if profile_path else FlareProcess
    extra = {"profile_path": profile_path} if profile_path else {}
    flare = kind(bootstrap=ctx.bootstrap, data_dir=ctx.work / app_id, prefix=settings.topic_prefix,
                 app_id=app_id, env={"FLARE_LOG_LEVEL": "warning"}, **extra)
    ends = await kafka.end_offsets(ctx.bootstrap, source)
    problems: list[str] = []
    started = time.time()
    flare.start(wait_ready=False)
    try:
        with CpuSampler(flare.process.pid) as cpu:
            watch = asyncio.create_task(_accepted_over_time(flare, produced.count))
            with console.status("flare consuming") as status:
                def progress(done: int, total: int) -> None:
                    status.update(f"flare consuming: {done:,}/{total:,} committed")
                await kafka.wait_committed(ctx.bootstrap, changes_group(Settings(app_id=app_id)),
                                           source, ends, timeout=300, on_progress=progress)
            first_at, last_at = await asyncio.wait_for(watch, timeout=30)
            span = await kafka.read_span(ctx.bootstrap, changelog_topic(Settings(app_id=app_id)))
        used = cpu.between(first_at, last_at)
        # Checks: every change applied, nothing parked, the table readable.
        if span.records < min(produced.count, workload_documents(produced)):
            problems.append(f"{span.records} changelog records for "
                            f"{workload_documents(produced)} documents")
        rejected = await kafka.end_offsets(ctx.bootstrap, settings.topic("documents.rejected"))
        if sum(rejected.values()):
            problems.append(f"{sum(rejected.values())} messages rejected")
        for partition, (url, revision) in produced.last.items():
            answer = await asyncio.to_thread(flare.get, f"/documents/{url}")
            if answer.status_code != 200 or answer.json()["revision"] != revision:
                problems.append(f"partition {partition}: {url} answered {answer.status_code} "
                                f"{answer.text[:120]} (expected revision {revision})")
    finally:
        flare.stop()
    if flare.process.returncode not in (0, -15, None):  # -15: uvicorn re-raises SIGTERM
        problems.append(f"flare exited with {flare.process.returncode}: {flare.log()[-1500:]}")
    details = {
        "cpu_us_per_change": used / produced.count * 1e6 if used else 0.0,
        "startup_s": first_at - started,
    }
    return produced.count / max(last_at - first_at, 1e-3), details, problems


def workload_documents(produced: kafka.Produced) -> int:
    return min(DOCUMENTS, produced.count)


async def _accepted_over_time(flare: FlareProcess, count: int, interval: float = 0.05,
                              on_progress=None) -> tuple[float, float]:
    """(when the first change was processed, when the last was), in time.time() seconds,
    from the changes stage's counter on /metrics (each within ``interval``).
    ``on_progress(accepted)`` is called after each reading; it may raise to give up."""
    before = None  # the last moment none was processed yet
    first_at = None
    async with httpx.AsyncClient(base_url=flare.base_url, timeout=2.0) as client:
        while True:
            now = time.time()
            try:
                text = (await client.get("/metrics")).text
                match = ACCEPTED.search(text)
                accepted = float(match.group(1)) if match else 0.0
            except httpx.HTTPError:
                accepted = 0.0
            if accepted == 0:
                before = now
            elif first_at is None:
                first_at = (before + now) / 2 if before is not None else now
            if on_progress is not None:
                on_progress(accepted)
            if accepted >= count:
                return first_at, now
            await asyncio.sleep(interval)


async def run(ctx) -> list[Figure]:
    count = 10_000 if ctx.quick else COUNT
    raw: list[float] = []
    raw_cpu: list[float] = []
    flare: list[float] = []
    cpu: list[float] = []
    startup: list[float] = []
    problems: list[str] = []
    repeats = ctx.repeats(3)
    for rep in range(repeats):
        settings, produced = await _prepare(ctx, count)
        console.print(f"[dim]run {rep + 1}/{repeats}: {count:,} changes produced in "
                      f"{produced.seconds:.1f} s to {settings.topic('documents')}[/]")
        rate, details = await _raw_pipe(ctx, settings, count)
        raw.append(rate)
        raw_cpu.append(details["cpu_us_per_change"])
        console.print(f"  raw aiokafka pipe: {rate:,.0f} changes/s "
                      f"({details['cpu_us_per_change']:.0f} µs CPU per change)")
        rate, details, found = await _flare(ctx, settings, produced)
        flare.append(rate)
        cpu.append(details["cpu_us_per_change"])
        startup.append(details["startup_s"])
        problems += found
        console.print(f"  flare changes stage: {rate:,.0f} changes/s "
                      f"({details['cpu_us_per_change']:.0f} µs CPU per change; "
                      f"first change {details['startup_s']:.1f} s after start)")
        for problem in found:
            console.print(f"  [red]problem:[/] {problem}")
    if ctx.profile:
        await profile(ctx, count)
    return [Figure(
        key="changes_per_s",
        title="changes stage",
        unit="changes/s", value=median(flare), baseline=median(raw),
        baseline_title="raw aiokafka pipe",
        goal_value=GOAL_RATE, goal_ratio=GOAL_RATIO,
        samples=flare, baseline_samples=raw,
        when_missed=(f"Flare used {median(cpu):.0f} µs of CPU per change against the raw "
                     f"pipe's {median(raw_cpu):.0f} µs (this machine's speed moves both by "
                     "±30 % between runs: the ratio of one run is what compares). Next: "
                     "`--profile` (cProfile of the stage) for what Flare adds per change"),
        details={"changes per run": count,
                 "Flare CPU µs per change": median(cpu),
                 "raw pipe CPU µs per change": median(raw_cpu),
                 "Flare start-up until its first change (s)": median(startup)},
        problems=problems)]


async def profile(ctx, count: int) -> Path:
    """One Flare run under cProfile; print where the time goes."""
    settings, produced = await _prepare(ctx, count)
    path = ctx.work / "changes.prof"
    rate, _, _ = await _flare(ctx, settings, produced, profile_path=path)
    for _ in range(50):  # the profile is written as the process exits
        if path.exists():
            break
        await asyncio.sleep(0.2)
    console.print(f"[bold]profile[/] (cProfile slows the agent down: {rate:,.0f} changes/s "
                  f"under it) saved to {path}")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)
    by_package(stats)
    return path


def by_package(stats: pstats.Stats) -> None:
    """Own time grouped by package: Flare's code against the libraries under it."""
    totals: dict[str, float] = {}
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():
        if "site-packages/" in filename:
            group = filename.split("site-packages/")[1].split("/")[0]
        elif str(ROOT) in filename:
            group = "flare: " + filename.split(str(ROOT) + "/")[1].split("/")[0]
        elif filename == "~":
            group = "builtin: " + name.split(" of ")[0][:40]
        elif "asyncio" in filename:
            group = "asyncio"
        else:
            group = "other"
        totals[group] = totals.get(group, 0.0) + own
    whole = sum(totals.values()) or 1.0
    for group, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        console.print(f"  {seconds:7.2f} s  {100 * seconds / whole:5.1f} %  {group}")
