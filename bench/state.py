"""State at scale (issue 12): Flare tracking millions of documents and a million deliveries.

For each size N (``--documents``; 1,000,000 and 10,000,000 by default, 100,000 with
``--quick``), one ``flare start`` process is driven from outside, with a ``FLARE_DATA_DIR``
of its own under the bench work dir, so nothing here depends on how the tables are stored:

  1. start; one resource created through the API, no subscription; the resident set at
     rest is the memory baseline; stop.
  2. N new documents (revision 1 each) produced straight to ``<prefix>.documents`` by
     ``PRODUCERS`` processes while Flare is stopped, so the generator cannot be the limit
     (its rate is reported).
  3. the raw aiokafka pipe (bench/rawpipe.py, its own consumer group and output topic)
     reads the same N-document backlog first, so the baseline does the same work: one new
     key and one changelog record per change, a table of N records. Then start: the
     seconds to ``/readyz`` 200 are the start-up baseline (empty tables); the changes
     stage's rate from its ``/metrics`` counter (bench/changes.py), next to the raw pipe's;
     the resident set at its peak while ingesting (VmHWM) and settled after. The ratio is
     held against the reference ratio at a small size (bench/changes.py's 200,000 changes
     over 10,000 documents when it ran before; else one raw pipe and one Flare run of that
     size here).
  4. restart after SIGTERM with the data dir kept: seconds until ``/readyz`` is 200; then
     the same after SIGKILL (the group then waits out the dead member's session).
  5. rebuild: stop, delete the data dir, start: changelog records / seconds to ready,
     next to a plain aiokafka consumer reading the same changelog.
  6. D = min(N, 1,000,000) delivery records: a subscription, then D ``outcome`` events
     (delivered, revision 1; tables/events.py) produced straight to ``<prefix>.deliveries``
     while Flare is stopped. The dispatcher applies each as it would after a real delivery
     (``apply_event`` → a record with ``received`` 1, nothing pending) and sends nothing.
     Then a restart after SIGTERM: seconds to ready and resident set with them.

Issue 12's goals (restart to ready < 10 s, RSS < 1 GB, both at 10,000,000 documents; the
changes stage's ratio to the raw pipe on the same backlog within 20 % of its ratio at
200,000) are checked at every size: what misses them at 1,000,000 misses them at
10,000,000.

Each step is checked (table sizes on /metrics, a document of every partition readable at
its revision, nothing rejected, no delivery attempted). Every process is watched by a
memory guard (bench/process.py) that stops it before it could bring the kernel's OOM
killer onto a shared machine. Run alone: ``python -m bench --only state [--documents N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from app.config import Settings
from app.local_kafka import free_port
from bench import kafka, workload
from bench.changes import _accepted_over_time, _flare, _prepare, _raw_pipe
from bench.rawpipe import OUTPUT as RAW_OUTPUT
from bench.changes import COUNT as CHANGES_COUNT
from bench.process import CpuSampler, MemoryGuard, available_memory, memory
from bench.progress import phase
from bench.report import Figure, console
from streams.changes import changelog_topic, changes_group
from streams.dispatcher import deliveries_group
from tables.delivery import PendingChange
from tables.events import outcome_value
from tables.outcome import Outcome
from tests.flare_process import FlareProcess, unique_name

#: How far RocksDB's estimate of a table's records may be from the truth (a gauge's precision).
ESTIMATE_SLACK = 0.001
NAME = "state"
#: Figures of a full ``--only state`` run also go to their own section (bench/__main__.py).
SECTION = "state"
SIZES = [1_000_000, 10_000_000]
QUICK_SIZES = [100_000]
DELIVERIES = 1_000_000
#: Producer processes writing a topic (each its own share of the keys).
PRODUCERS = 2
#: Issue 12's goals.
GOAL_RESTART_S = 10.0
GOAL_RSS_MB = 1024.0
#: The changes stage at scale: its ratio to the raw pipe on the same backlog within 20 %
#: of the ratio at 200,000 changes.
GOAL_RATIO_KEPT = 0.8
#: Seconds after a phase before the resident set is read as settled.
SETTLE_S = 5.0
#: The memory guard stops Flare past this share of the memory available when a size starts.
MEMORY_SHARE = 0.6
MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
#: Rates (per second) to estimate a size's duration with before one was measured: the
#: earlier measurement on this machine (1,000,000 documents: ~17,500 changes/s, restart in
#: 9.7 s) and guesses for the rest.
DEFAULT_RATES = {"produce": 30_000.0, "ingest": 17_500.0, "recover": 100_000.0,
                 "read": 150_000.0, "apply": 15_000.0}


class Broken(RuntimeError):
    """The run of one size cannot go on (Flare died, the memory guard stopped it, …)."""


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def deliveries_for(n: int) -> int:
    return min(n, DELIVERIES)


def estimate_seconds(n: int, rates: dict[str, float]) -> float:
    """How long a size takes, from rates measured at a smaller one (or DEFAULT_RATES). An
    upper bound where restarts read only the changelog's tail: this counts three full
    reads of N records and two of N + D (in-memory tables, today)."""
    d = deliveries_for(n)
    starts = 8 * 5.0  # process starts and stops, session timeouts, settling
    return (starts + n / rates["produce"] + n / rates["ingest"] + n / rates["read"]
            + 3 * n / rates["recover"] + d / rates["produce"] + d / rates["apply"]
            + 2 * (n + d) / rates["recover"])


def outcomes(subscription_id: str, start: int, stop: int):
    """``outcome`` events for documents ``start`` … ``stop - 1``: revision 1 delivered, as
    the dispatcher writes after a 200 (tables/events.py)."""
    value = outcome_value(Outcome.DELIVERED, 200, PendingChange("put", 1, None, 0))
    for i in range(start, stop):
        url = workload.url(i)
        yield workload.Change(f"{subscription_id}|{url}".encode(), value, url, 1)


def _metric(text: str, name: str, labels: str = "") -> float:
    """One sample of a /metrics text (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)$"
    found = re.search("^" + pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def _mb(n: int | float) -> float:
    return n / MB


@dataclass
class Measured:
    """What one size measured; None where it did not get that far."""

    n: int
    deliveries: int
    rest_rss: int | None = None
    empty_start_s: float | None = None
    produce_rate: float | None = None
    raw_rate: float | None = None
    raw_cpu_us: float | None = None
    ingest_rate: float | None = None
    ingest_cpu_us: float | None = None
    ingest_peak: int | None = None
    ingest_settled: int | None = None
    sigterm_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    sigterm_peak: int | None = None
    sigterm_settled: int | None = None
    sigkill_s: float | None = None
    sigkill_settled: int | None = None
    raw_read_rate: float | None = None
    changelog_records: int | None = None
    rebuild_s: float | None = None
    rebuild_peak: int | None = None
    rebuild_settled: int | None = None
    backlog_ready_s: float | None = None
    backlog_waited: dict[str, float] = field(default_factory=dict)
    apply_rate: float | None = None
    apply_peak: int | None = None
    apply_settled: int | None = None
    deliveries_restart_s: float | None = None
    deliveries_peak: int | None = None
    deliveries_settled: int | None = None
    problems: list[str] = field(default_factory=list)

    def rates(self) -> dict[str, float]:
        """The rates this size measured, for the estimate of a larger one."""
        found = dict(DEFAULT_RATES)
        for name, value in (("produce", self.produce_rate), ("ingest", self.ingest_rate),
                            ("read", self.raw_read_rate), ("apply", self.apply_rate)):
            if value:
                found[name] = value
        if self.rebuild_s and self.changelog_records:
            found["recover"] = self.changelog_records / self.rebuild_s
        return found


class Tracked:
    """One size's ``flare start`` process, started and stopped again and again with the
    same app id, topics and data dir; each start has its own memory guard."""

    def __init__(self, ctx, n: int) -> None:
        self.ctx = ctx
        self.n = n
        self.prefix = unique_name("state")
        self.settings = Settings(kafka_bootstrap=ctx.bootstrap, topic_prefix=self.prefix,
                                 app_id=self.prefix)
        home = ctx.work / f"state-{label(n)}"
        self.flare = FlareProcess(bootstrap=ctx.bootstrap, data_dir=home / "data",
                                  prefix=self.prefix, app_id=self.prefix,
                                  env={"FLARE_LOG_LEVEL": "warning", "FLARE_TABLE_STORE": "rocksdb"})
        # The log outlives the data dir, which the rebuild deletes.
        home.mkdir(parents=True, exist_ok=True)
        self.flare.log_path = home / "flare.log"
        self.limit = int(available_memory() * MEMORY_SHARE)
        self.guard: MemoryGuard | None = None
        #: /readyz's reasons during the last start → seconds each was seen (what it waited on)
        self.waited: dict[str, float] = {}

    @property
    def pid(self) -> int:
        assert self.flare.process is not None
        return self.flare.process.pid

    def memory(self) -> tuple[int, int]:
        found = memory(self.pid)
        if found is None:
            raise Broken(self._death())
        return found

    def _death(self) -> str:
        if self.guard is not None and self.guard.tripped:
            return (f"the memory guard stopped Flare at {_mb(self.guard.tripped):,.0f} MB "
                    f"(limit {_mb(self.limit):,.0f} MB, {MEMORY_SHARE:.0%} of the memory "
                    "available at the start)")
        code = self.flare.process.poll() if self.flare.process else None
        return f"flare exited with {code}: {self.flare.log()[-1500:]}"

    def check_alive(self) -> None:
        if not self.flare.alive() or (self.guard is not None and self.guard.tripped):
            raise Broken(self._death())

    def note(self) -> str:
        rss = self.guard.rss if self.guard is not None else 0
        return f"RSS {_mb(rss):,.0f} MB"

    async def start(self, title: str) -> float:
        """Start, return the seconds until /readyz answers 200."""
        timeout = 120 + self.n / 10_000
        started = time.monotonic()
        self.waited = {}
        self.flare.start(wait_ready=False)
        self.guard = MemoryGuard(self.pid, self.limit).__enter__()
        with phase(title) as progress:
            async with httpx.AsyncClient(base_url=self.flare.base_url, timeout=2.0) as client:
                while True:
                    self.check_alive()
                    reason = "not answering"
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        answer = await client.get("/readyz")
                        if answer.status_code == 200:
                            return time.monotonic() - started
                        reason = str(answer.json().get("reason"))[:80]
                    self.waited[reason] = self.waited.get(reason, 0.0) + 0.1
                    if time.monotonic() - started > timeout:
                        raise Broken(f"{title}: not ready within {timeout:.0f} s\n"
                                     f"{self.flare.log()[-1500:]}")
                    progress.update(note=f"{self.note()}; {reason}")
                    await asyncio.sleep(0.1)

    def _end_guard(self) -> None:
        if self.guard is not None:
            self.guard.__exit__(None, None, None)

    def stop(self) -> float:
        """SIGTERM; the seconds until the process exited."""
        started = time.monotonic()
        self.flare.stop(timeout=120)
        self._end_guard()
        return time.monotonic() - started

    def kill(self) -> None:
        self.flare.kill()
        self._end_guard()

    async def settled(self) -> int:
        """The resident set after ``SETTLE_S`` seconds of rest."""
        await asyncio.sleep(1.0 if self.ctx.quick else SETTLE_S)
        self.check_alive()
        return self.memory()[0]

    async def metrics(self) -> str:
        async with httpx.AsyncClient(base_url=self.flare.base_url, timeout=30.0) as client:
            return (await client.get("/metrics")).text

    async def check(self, step: str, documents: int, deliveries: int,
                    produced: kafka.Produced | None, problems: list[str]) -> None:
        """The tables hold what they should; a document of every partition reads back."""
        text = await self.metrics()
        for table, expected in (("documents", documents), ("deliveries", deliveries)):
            held = _metric(text, "flare_table_records", f'table="{table}"')
            # Above 10,000 records a store's count is RocksDB's estimate (streams/store.py).
            if abs(held - expected) > (0 if expected <= 10_000 else expected * ESTIMATE_SLACK):
                problems.append(f"{step}: {held:,.0f} records in the {table} table, "
                                f"expected {expected:,}")
        attempts = sum(_metric(text, "flare_deliveries_total", f'outcome="{o}"')
                       for o in ("delivered", "discarded", "retry"))
        pending = _metric(text, "flare_deliveries_pending")
        if attempts or pending:
            problems.append(f"{step}: {attempts:,.0f} delivery attempts, {pending:,.0f} "
                            "pending (the outcome events should make records only)")
        for partition, (url, revision) in (produced.last.items() if produced else ()):
            answer = await asyncio.to_thread(self.flare.get, f"/documents/{url}")
            if answer.status_code != 200 or answer.json().get("revision") != revision:
                problems.append(f"{step}: partition {partition}: {url} answered "
                                f"{answer.status_code} {answer.text[:120]}")


async def _produce(ctx, topic: str, kind: str, total: int, title: str) -> kafka.Produced:
    """``total`` records to ``topic`` from ``PRODUCERS`` processes (``python -m bench.state
    produce``), each its share of the keys; progress as they report it."""
    shares = [(total * i // PRODUCERS, total * (i + 1) // PRODUCERS) for i in range(PRODUCERS)]
    done = [0] * PRODUCERS
    summaries: list[dict] = []
    with phase(title, total) as progress:
        async def one(index: int, start: int, stop: int) -> None:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.state", "produce", ctx.bootstrap, topic, kind,
                str(start), str(stop), cwd=str(ROOT),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            assert process.stdout is not None
            async for line in process.stdout:
                said = orjson.loads(line)
                if "done" in said:
                    done[index] = said["done"]
                    progress.update(sum(done))
                else:
                    summaries.append(said)
            if await process.wait() != 0:
                assert process.stderr is not None
                raise Broken(f"producer failed: {(await process.stderr.read()).decode()[-2000:]}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i, start, stop) for i, (start, stop) in enumerate(shares)))
        seconds = time.perf_counter() - started
        progress.update(sum(s["count"] for s in summaries))
    last = {int(p): tuple(v) for s in summaries for p, v in s["last"].items()}
    return kafka.Produced(sum(s["count"] for s in summaries), seconds, last)


async def _baseline(ctx) -> tuple[float, float, str]:
    """(raw pipe changes/s, Flare's changes/s, where from): bench/changes.py's figure of
    this run when it ran, else one raw pipe and one Flare run of the same size here."""
    for figure in ctx.figures:
        if figure.key == "changes_per_s" and figure.value and figure.baseline:
            return figure.baseline, figure.value, "bench/changes.py, same run"
    count = 20_000 if ctx.quick else CHANGES_COUNT
    settings, produced = await _prepare(ctx, count)
    raw, _ = await _raw_pipe(ctx, settings, count)
    console.print(f"  raw aiokafka pipe: {raw:,.0f} changes/s ({count:,} changes)")
    rate, _, problems = await _flare(ctx, settings, produced)
    console.print(f"  flare changes stage: {rate:,.0f} changes/s ({count:,} changes)")
    for problem in problems:
        console.print(f"  [red]problem:[/] {problem}")
    return raw, rate, f"{count:,} changes (10,000 documents), measured here"


async def _size(ctx, n: int, m: Measured) -> None:
    """Steps 1-6 of the module docstring for one size; fills ``m`` as it goes."""
    tracked = Tracked(ctx, n)
    settings, flare = tracked.settings, tracked.flare
    d = m.deliveries
    console.print(f"[dim]prefix {tracked.prefix}; data dir {flare.data_dir}; memory guard at "
                  f"{_mb(tracked.limit):,.0f} MB[/]")
    try:
        # Step 1: a resource through the API, the memory at rest.
        await tracked.start("first start (creates the topics)")
        answer = await asyncio.to_thread(flare.post, "/resources", json={
            "endpoint": workload.ENDPOINT, "change": {"field": "version"}})
        answer.raise_for_status()
        resource_id = answer.json()["id"]
        m.rest_rss = await tracked.settled()
        tracked.stop()

        # Step 2
        produced = await _produce(ctx, settings.topic("documents"), "documents", n,
                                  f"producing {n:,} documents")
        m.produce_rate = produced.count / produced.seconds
        source = settings.topic("documents")
        ends = await kafka.end_offsets(ctx.bootstrap, source)

        # Step 3: the raw pipe on the same backlog, then Flare.
        m.raw_rate, raw = await _raw_pipe(ctx, settings, n)
        m.raw_cpu_us = raw["cpu_us_per_change"]
        console.print(f"  raw aiokafka pipe on the backlog: {m.raw_rate:,.0f} changes/s "
                      f"({m.raw_cpu_us:.0f} µs CPU per change)")
        m.empty_start_s = await tracked.start("start with empty tables")
        with CpuSampler(tracked.pid) as cpu, phase(f"ingesting {n:,} documents", n) as progress:
            def seen(accepted: float) -> None:
                tracked.check_alive()
                progress.update(accepted, tracked.note())

            first_at, last_at = await asyncio.wait_for(
                _accepted_over_time(flare, n, interval=0.05 if ctx.quick else 0.1,
                                    on_progress=seen), timeout=300 + n / 1_000)
        m.ingest_rate = n / max(last_at - first_at, 1e-3)
        used = cpu.between(first_at, last_at)
        m.ingest_cpu_us = used / n * 1e6 if used else None
        m.ingest_peak = tracked.memory()[1]
        await kafka.wait_committed(ctx.bootstrap, changes_group(settings), source, ends,
                                   timeout=120)
        m.ingest_settled = await tracked.settled()
        rejected = await kafka.end_offsets(ctx.bootstrap, settings.topic("documents.rejected"))
        if sum(rejected.values()):
            m.problems.append(f"{sum(rejected.values())} documents rejected")
        await tracked.check("after ingesting", n, 0, produced, m.problems)

        # Step 4
        m.stop_s.append(tracked.stop())
        m.sigterm_s.append(await tracked.start("restart after SIGTERM"))
        m.sigterm_peak = tracked.memory()[1]
        m.sigterm_settled = await tracked.settled()
        await tracked.check("after SIGTERM", n, 0, produced, m.problems)
        tracked.kill()
        m.sigkill_s = await tracked.start("restart after SIGKILL")
        m.sigkill_settled = await tracked.settled()
        await tracked.check("after SIGKILL", n, 0, produced, m.problems)

        # Step 5: the raw read first, while Flare is stopped.
        m.stop_s.append(tracked.stop())
        changelog = changelog_topic(settings)
        with phase(f"raw aiokafka read of {changelog}"):
            started = time.perf_counter()
            span = await kafka.read_span(ctx.bootstrap, changelog, timeout=120 + n / 5_000)
            m.raw_read_rate = span.records / (time.perf_counter() - started)
        m.changelog_records = span.records
        shutil.rmtree(flare.data_dir)
        m.rebuild_s = await tracked.start(f"rebuild of {span.records:,} records, store wiped")
        m.rebuild_peak = tracked.memory()[1]
        m.rebuild_settled = await tracked.settled()
        await tracked.check("after the rebuild", n, 0, produced, m.problems)

        # Step 6
        answer = await asyncio.to_thread(
            flare.post, f"/resources/{resource_id}/subscriptions", json={
                "endpoint": {"url": f"http://127.0.0.1:{free_port()}/users/{{id}}",
                             "method": "post"},
                "delivery": {"success": [200], "discard": [410]}})
        answer.raise_for_status()
        subscription_id = answer.json()["id"]
        m.stop_s.append(tracked.stop())
        topic = settings.topic("deliveries")
        await _produce(ctx, topic, f"outcomes:{subscription_id}", d,
                       f"producing {d:,} outcome events")
        ends = await kafka.end_offsets(ctx.bootstrap, topic)
        # The dispatcher starts on the backlog before the process is ready; its rate is
        # timed between commits (about one a second): from the first seen to the last.
        first: list[tuple[float, int]] = []
        with phase(f"dispatcher applying {d:,} outcome events", d) as progress:
            def committed(count: int, total: int) -> None:
                tracked.check_alive()
                if count and not first:
                    first.append((time.monotonic(), count))
                progress.update(count, tracked.note())

            waiting = asyncio.create_task(kafka.wait_committed(
                ctx.bootstrap, deliveries_group(settings), topic, ends,
                timeout=300 + d / 1_000, on_progress=committed))
            try:
                m.backlog_ready_s = await tracked.start(
                    f"restart after SIGTERM, {d:,} outcome events waiting")
                m.backlog_waited = dict(tracked.waited)
                done_at = await waiting
            finally:
                waiting.cancel()
        first_at, first_count = first[0]
        m.apply_rate = (d - first_count) / max(done_at - first_at, 1e-3)
        m.apply_peak = tracked.memory()[1]
        m.apply_settled = await tracked.settled()
        await tracked.check("after the outcome events", n, d, produced, m.problems)
        m.stop_s.append(tracked.stop())
        m.deliveries_restart_s = await tracked.start(f"restart with {d:,} delivery records")
        m.deliveries_peak = tracked.memory()[1]
        m.deliveries_settled = await tracked.settled()
        await tracked.check("after the restart with deliveries", n, d, produced, m.problems)
    finally:
        if flare.alive():
            tracked.stop()
        tracked._end_guard()
        shutil.rmtree(flare.data_dir, ignore_errors=True)
        with contextlib.suppress(Exception):  # the disk: 10M documents are gigabytes
            async with kafka.admin_client(ctx.bootstrap) as admin:
                names = [settings.topic(t) for t in ("documents", "deliveries", RAW_OUTPUT)]
                await admin.delete_topics(names + [changelog_topic(settings)])


def _figures(m: Measured, raw: float, small: float, small_from: str) -> list[Figure]:
    """The figures of one size, each with its baseline from the same run."""
    key, n, d = f"state_{label(m.n)}", m.n, m.deliveries
    at = f"{n:,} documents"
    small_ratio = small / raw if raw else 0.0
    scale_raw = m.raw_rate or 0.0
    found: list[Figure] = []

    def add(**kw) -> None:
        found.append(Figure(**kw))

    if m.ingest_rate:
        add(key=f"{key}_changes_per_s", title=f"changes stage, {at} (each new)",
            unit="changes/s", value=m.ingest_rate, baseline=scale_raw,
            baseline_title="raw aiokafka pipe, same backlog",
            goal_ratio=round(GOAL_RATIO_KEPT * small_ratio, 3),
            when_missed=(f"Flare used {m.ingest_cpu_us or 0:.0f} µs of CPU per change against the "
                         f"raw pipe's {m.raw_cpu_us or 0:.0f} µs on the same backlog. Next: py-spy "
                         "on the running stage (`py-spy record --pid`) for what the store, the "
                         "parse or the produce path add per change"),
            details={"goal": f"the ratio within 20 % of the reference's ({small_ratio:.2f})",
                     "reference: Flare / raw pipe at a small size (changes/s)":
                         f"{small:,.0f} / {raw:,.0f}",
                     "reference from": small_from,
                     "raw pipe CPU µs per change": m.raw_cpu_us or 0.0,
                     "Flare CPU µs per change": m.ingest_cpu_us or 0.0,
                     "documents produced per second (2 processes, before Flare starts)":
                         m.produce_rate or 0.0})
    rest = _mb(m.rest_rss or 0)
    if m.ingest_peak:
        add(key=f"{key}_rss_ingest_mb", title=f"RSS while ingesting (peak), {at}", unit="MB",
            value=_mb(m.ingest_peak), baseline=rest, baseline_title="Flare at rest, empty tables",
            higher_is_better=False, goal_max=GOAL_RSS_MB,
            details={"bytes per document": (m.ingest_peak - (m.rest_rss or 0)) / n})
    if m.ingest_settled:
        add(key=f"{key}_rss_after_mb", title=f"RSS after ingesting (settled), {at}", unit="MB",
            value=_mb(m.ingest_settled), baseline=rest, baseline_title="Flare at rest, empty tables",
            higher_is_better=False, goal_max=GOAL_RSS_MB,
            details={"bytes per document": (m.ingest_settled - (m.rest_rss or 0)) / n})
    empty = m.empty_start_s or 0.0
    if m.sigterm_s:
        add(key=f"{key}_restart_sigterm_s", title=f"restart to ready after SIGTERM, {at}",
            unit="s", value=m.sigterm_s[0], baseline=empty,
            baseline_title="start-up with empty tables", higher_is_better=False,
            goal_max=GOAL_RESTART_S,
            samples=m.sigterm_s,
            details={"RSS peak / settled after it (MB)":
                         f"{_mb(m.sigterm_peak or 0):,.0f} / {_mb(m.sigterm_settled or 0):,.0f}",
                     "graceful stops (s)": ", ".join(f"{s:.1f}" for s in m.stop_s)})
    if m.sigkill_s:
        add(key=f"{key}_restart_sigkill_s", title=f"restart to ready after SIGKILL, {at}",
            unit="s", value=m.sigkill_s, baseline=empty,
            baseline_title="start-up with empty tables", higher_is_better=False,
            goal_max=GOAL_RESTART_S,
            details={"includes": "the group waiting out the killed member's session (6 s)",
                     "RSS settled after it (MB)": _mb(m.sigkill_settled or 0)})
    if m.rebuild_s and m.changelog_records:
        add(key=f"{key}_rebuild_per_s", title=f"rebuild from the changelog, store wiped, {at}",
            unit="records/s", value=m.changelog_records / m.rebuild_s,
            baseline=m.raw_read_rate or 0.0, baseline_title="raw aiokafka read of the changelog",
            details={"changelog records": m.changelog_records,
                     "seconds to ready": m.rebuild_s,
                     "records/s beyond an empty start-up":
                         m.changelog_records / max(m.rebuild_s - empty, 1e-3),
                     "RSS peak / settled after it (MB)":
                         f"{_mb(m.rebuild_peak or 0):,.0f} / {_mb(m.rebuild_settled or 0):,.0f}"})
    if m.deliveries_restart_s:
        add(key=f"{key}_deliveries_restart_s",
            title=f"restart to ready after SIGTERM, {at} and {d:,} delivery records", unit="s",
            value=m.deliveries_restart_s, baseline=m.sigterm_s[0] if m.sigterm_s else 0.0,
            baseline_title="the same without delivery records", higher_is_better=False,
            goal_max=GOAL_RESTART_S,
            details={"outcome events applied per second": m.apply_rate or 0.0,
                     "restart to ready with them all waiting on the topic (s)":
                         m.backlog_ready_s or 0.0,
                     "what /readyz said meanwhile (about s)": ", ".join(
                         f"{why}: {secs:.0f}" for why, secs in m.backlog_waited.items()),
                     "RSS peak / settled while applying (MB)":
                         f"{_mb(m.apply_peak or 0):,.0f} / {_mb(m.apply_settled or 0):,.0f}",
                     "RSS peak at ready (MB)": _mb(m.deliveries_peak or 0)})
    if m.deliveries_settled:
        add(key=f"{key}_deliveries_rss_mb", title=f"RSS after the restart, {at} and "
            f"{d:,} delivery records", unit="MB", value=_mb(m.deliveries_settled),
            baseline=_mb(m.sigterm_settled or 0), baseline_title="the same without delivery records",
            higher_is_better=False, goal_max=GOAL_RSS_MB,
            details={"bytes per delivery record":
                         (m.deliveries_settled - (m.sigterm_settled or 0)) / d})
    if m.problems:
        if found:
            found[0].problems = list(m.problems)
        else:
            found.append(Figure(key=f"{key}_failed", title=f"state at {at} failed", unit="",
                                value=0.0, baseline=0.0, baseline_title="—",
                                problems=list(m.problems)))
    return found


async def run(ctx) -> list[Figure]:
    sizes = ctx.documents or (QUICK_SIZES if ctx.quick else SIZES)
    console.print("[dim]baseline: the changes stage and the raw pipe at a small size[/]")
    raw, small, small_from = await _baseline(ctx)
    figures: list[Figure] = []
    rates = dict(DEFAULT_RATES)
    for n in sorted(sizes):
        m = Measured(n, deliveries_for(n))
        guess = estimate_seconds(n, rates)
        measured = "measured at the size before" if rates != DEFAULT_RATES else "earlier guesses"
        console.rule(f"[bold]{n:,} documents, {m.deliveries:,} delivery records")
        console.print(f"[dim]estimate: about {guess / 60:.0f} min (from {measured}; an upper "
                      "bound once restarts read only the changelog's tail)[/]")
        started = time.monotonic()
        try:
            await _size(ctx, n, m)
        except Exception as exc:  # keep what was measured; say where it stopped
            console.print_exception(max_frames=6)
            m.problems.append(f"stopped: {exc.__class__.__name__}: {str(exc)[:1500]}")
        console.print(f"[dim]{n:,} documents took {(time.monotonic() - started) / 60:.1f} min[/]")
        rates = m.rates()
        figures += _figures(m, raw, small, small_from)
    for n in SIZES:
        if n > max(sizes):
            console.print(f"[dim]{n:,} documents would take about "
                          f"{estimate_seconds(n, rates) / 60:.0f} min at the rates of this run[/]")
    return figures


# -- the producer processes ------------------------------------------------------------

async def _produce_share(bootstrap: str, topic: str, kind: str, start: int, stop: int) -> None:
    if kind == "documents":
        records = workload.puts(start, stop)
    elif kind.startswith("outcomes:"):
        records = outcomes(kind.split(":", 1)[1], start, stop)
    else:
        raise SystemExit(f"unknown kind {kind!r}")

    def said(done: int) -> None:
        print(orjson.dumps({"done": done}).decode(), flush=True)

    produced = await kafka.produce(bootstrap, topic, records, on_progress=said)
    print(orjson.dumps({"count": produced.count, "seconds": produced.seconds,
                        "last": {str(p): v for p, v in produced.last.items()}}).decode(),
          flush=True)


def main(argv: list[str]) -> None:
    """``python -m bench.state produce BOOTSTRAP TOPIC KIND START STOP``: one producer's
    share; JSON lines of progress on stdout, then a summary."""
    if len(argv) != 6 or argv[0] != "produce":
        raise SystemExit(main.__doc__)
    _, bootstrap, topic, kind, start, stop = argv
    asyncio.run(_produce_share(bootstrap, topic, kind, int(start), int(stop)))


if __name__ == "__main__":
    main(sys.argv[1:])
