"""Issue 13: Flare end to end, next to Svix's figures and to raw baselines of the same run.

Both sides of every measurement are a small Go program (bench/go, standard library only,
built into var/ on first use), so neither the load nor the receiving is the limit:
``flarebench put`` (closed loop of N workers, or an open loop at a fixed rate, recording
when each 202 came back) and ``flarebench receive`` (answers 200 at once, recording when
each notification arrived, with its path and revision). Times are wall-clock ns on one
machine, so the two processes' times compare.

One ``flare start`` takes, in order:

1. **end to end**: a resource with 5 subscriptions; ``EVENTS`` PUTs by 32 workers as fast
   as they go; deliveries/s from the first request sent to the last notification arrived,
   and PUT/s accepted meanwhile;
2. **latency on warm tables**: the run above left ``EVENTS`` documents and
   ``EVENTS × 5`` delivery records (100,000 in the full run) in Flare's tables; then new
   revisions at ``RATE``/s for ``SECONDS`` s, and per notification the arrival minus the
   moment the 202 returned to the client;
3. **fan-out**: 10,000 subscriptions created through the API by 32 workers (creations/s),
   then one PUT: seconds until all 10,000 notifications arrived.

Baselines, same run: a Starlette endpoint producing acks=all with aiokafka (ingest), raw
aiohttp sending to the same receiver (sending), and the floor of two Kafka hops measured
with raw aiokafka (produce acks=all → consume → produce acks=all → consume), once with
linger 0 and once with Flare's client settings. CPU of Flare, generator and receiver
from /proc. ``--profile`` also records Flare with py-spy during phases 1 and 2.

``--processes N`` (repeatable; default 1 and 2): the three loads again on N ``flare
start`` processes of one app id on the same broker (each with its own port and data dir;
the generator spreads its requests over all of them; the loads start once every process
is ready and both stage groups are stable with N members). Figures of N > 1 carry the
1-process figure of the same run and the ratio, and each process's CPU.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic

from app.config import load as load_settings
from app.local_kafka import free_port
from bench.kafka import admin_client, group_state
from bench.process import cpu_seconds, machine_busy
from bench.report import ROOT, Figure, console
from tests.flare_process import FlareProcess, poll, unique_name

NAME = "e2e"
GO_SOURCE = ROOT / "bench" / "go"
GO_BINARY = ROOT / "var" / "flarebench"
SUBSCRIBERS = 5
WORKERS = 32
#: Svix's figures from the issue (same work, their machine): deliveries/s, latency ms.
SVIX_DELIVERIES = "2,056–2,460"
SVIX_P99_MS = 5.0
#: The API's and the stages' producer linger of the Flare processes started here (their
#: settings, FLARE_* in the environment included), for the two-hop floor "with Flare's".
_FLARE = load_settings()
LINGERS = (_FLARE.api_linger_ms, _FLARE.stage_linger_ms)


@dataclass(frozen=True)
class Sizes:
    events: int
    rate: int
    seconds: int
    fanout: int
    raw_sends: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(4_000, 200, 5, 2_000, 10_000) if quick else cls(20_000, 200, 20, 10_000, 30_000)


# -- the Go side -------------------------------------------------------------------------

def go_binary() -> Path:
    """Build bench/go into var/ when it is missing or older than its source."""
    newest = max(p.stat().st_mtime for p in GO_SOURCE.iterdir())
    if not GO_BINARY.exists() or GO_BINARY.stat().st_mtime < newest:
        GO_BINARY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(GO_BINARY), "."], cwd=GO_SOURCE, check=True,
                       env={**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"})
    return GO_BINARY


class Receiver:
    """``flarebench receive``: a process of its own, stopped by its PID."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.process = subprocess.Popen([str(go_binary()), "receive", "-listen", "127.0.0.1:0"],
                                        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self.process.stdout.readline().decode().strip()
        self.url = "http://" + line.rsplit(" ", 1)[1]
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def count(self) -> int:
        return int(self.client.get("/_count").text)

    def reset(self) -> None:
        self.client.post("/_reset")

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) or 0.0

    def arrivals(self) -> list[dict[str, Any]]:
        path = self.work / f"arrivals-{uuid.uuid4().hex[:8]}.jsonl"
        self.client.post("/_dump", params={"file": str(path)})
        found = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        path.unlink()
        return found

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@dataclass
class Load:
    summary: dict[str, Any]
    #: one per request: i, sent, done (ns), status
    results: list[dict[str, Any]]

    @property
    def cpu(self) -> float:
        return self.summary["cpu_user_s"] + self.summary["cpu_sys_s"]

    def statuses(self) -> dict[str, int]:
        return self.summary["statuses"]


async def go_load(work: Path, mode: str, **flags: Any) -> Load:
    out = work / f"{mode}-{uuid.uuid4().hex[:8]}.jsonl"
    args = [str(go_binary()), mode, "-out", str(out)]
    for name, value in flags.items():
        args += [f"-{name}", str(value)]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL)
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"flarebench {mode} exited with {proc.returncode}")
    results = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    out.unlink()
    return Load(orjson.loads(stdout), results)


# -- small helpers -------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, p):.1f}" for p in (50, 95, 99))


class Spy:
    """py-spy recording a process (when asked), stopped with SIGINT so it writes its file;
    ``top()`` sums the collapsed stacks: the functions with the most samples on top of the
    stack (self) and anywhere in it (total)."""

    def __init__(self, pid: int, path: Path, enabled: bool) -> None:
        self.path = path
        self.process = None
        spy = Path(sys.executable).with_name("py-spy")
        if enabled and spy.exists():
            self.process = subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                 "--nonblocking", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, list[tuple[str, float]]] | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        return top_of(self.path)


#: Flare's own packages: their functions are shown with the time spent in them and below.
PROJECT = ("api", "streams", "tables")


def _where(raw: str) -> tuple[str, str]:
    """``func (pkg/mod.py:12)`` → (``func (pkg/mod.py)``, ``pkg``)."""
    name, _, where = raw.partition(" (")
    path = where.split(":")[0]
    return f"{name} ({path})", path.split("/")[0].removesuffix(".py")


def top_of(path: Path, n: int = 15) -> dict[str, list[tuple[str, float]]] | None:
    """Shares of py-spy's samples: by the package on top of the stack (self), and by the
    functions of Flare's own packages anywhere in it (total)."""
    if not path.exists():
        return None
    by_package: collections.Counter = collections.Counter()
    by_function: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = [_where(f) for f in stack.split(";")]
        by_package[frames[-1][1]] += samples
        for name in {name for name, package in frames if package in PROJECT}:
            by_function[name] += samples
    share = lambda c: [(name, round(100 * k / total, 1)) for name, k in c.most_common(n)]  # noqa: E731
    return {"samples": [("all", float(total))], "self % by package": share(by_package),
            "total % by Flare function": share(by_function)}


def show_profile(phase: str, profile: dict | None) -> None:
    if not profile:
        return
    console.print(f"  py-spy, {phase} ({profile['samples'][0][1]:.0f} samples):")
    for kind in ("self % by package", "total % by Flare function"):
        console.print(f"    {kind}: " + "; ".join(f"{name} {share}" for name, share in profile[kind]))


async def create_topics(bootstrap: str, *names: str, partitions: int = 4) -> None:
    """The broker creates no topic on first use (app/local_kafka.py)."""
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])


# -- baselines -----------------------------------------------------------------------------

async def raw_sending(url: str, n: int, concurrency: int = 256) -> float:
    """Raw aiohttp POSTs of an envelope-sized body to the receiver: requests/s."""
    body = orjson.dumps({"id": "http://e2e.test/users/1", "action": "update",
                         "updatedAt": "2026-01-01T00:00:00Z",
                         "document": {"id": 1, "version": 2, "name": "User number 1"}})
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            async with slots:
                async with session.post(f"{url}/raw/{i}", data=body,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def minimal_ingest(ctx, n: int) -> tuple[Load, float]:
    """Starlette + aiokafka acks=all under the same Go load as Flare: (load, CPU s)."""
    topic = unique_name("e2e-minimal")
    await create_topics(ctx.bootstrap, topic)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.minimal_api", str(port),
                               ctx.bootstrap, topic], cwd=str(ROOT), stdin=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(poll, lambda: httpx.get(f"http://127.0.0.1:{port}/healthz")
                                .status_code == 200, 30.0, 0.1, "minimal endpoint up")
        # The topic is created by the first write; a short warm-up makes the metadata known.
        await go_load(ctx.work, "put", target=f"http://127.0.0.1:{port}", n=200,
                      workers=WORKERS, prefix="http://warm.test/users/")
        before = cpu_seconds(server.pid) or 0.0
        load = await go_load(ctx.work, "put", target=f"http://127.0.0.1:{port}", n=n,
                             workers=WORKERS)
        return load, (cpu_seconds(server.pid) or 0.0) - before
    finally:
        server.terminate()
        server.wait(timeout=30)


async def two_hops(bootstrap: str, rate: int, n: int, linger: tuple[int, int],
                   fetch_wait_ms: int = 500) -> list[float]:
    """The floor under Flare's latency: produce (acks=all) → consume → produce (acks=all)
    → consume, at ``rate``/s; milliseconds from the first send to the second consume.
    ``linger``: the first and second producer's linger_ms."""
    first, second = unique_name("hop1-"), unique_name("hop2-")
    await create_topics(bootstrap, first, second)
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                  enable_idempotence=True, linger_ms=ms) for ms in linger]
    consumers = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                  auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms)
                 for topic in (first, second)]
    sent: dict[bytes, int] = {}
    took: list[float] = []
    started = []
    try:
        # Topics made (by a first write) and led before the consumers start.
        for producer, topic in zip(producers, (first, second)):
            await producer.start()
            started.append(producer)
            await producer.send_and_wait(topic, b"warm", key=b"warm")
        for consumer in consumers:
            await consumer.start()
            started.append(consumer)
        done = asyncio.Event()

        async def forward() -> None:
            async for message in consumers[0]:
                if message.key != b"warm":
                    await producers[1].send(second, message.value, key=message.key)

        async def arrive() -> None:
            async for message in consumers[1]:
                if message.key in sent:
                    took.append((time.time_ns() - sent[message.key]) / 1e6)
                    if len(took) == n:
                        done.set()

        tasks = [asyncio.create_task(forward()), asyncio.create_task(arrive())]
        await asyncio.sleep(1.0)  # both consumers positioned
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = b"k%d" % i
            sent[key] = time.time_ns()
            await producers[0].send(first, b"x" * 250, key=key)
        try:
            await asyncio.wait_for(done.wait(), timeout=30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for client in started:
            await client.stop()
    return took


# -- Flare ---------------------------------------------------------------------------------

class Flares:
    """``n`` ``flare start`` processes of one app id (each its own port and data dir),
    stopped by their PIDs. ``target`` is every base URL, for the Go generator."""

    def __init__(self, ctx, n: int) -> None:
        prefix = unique_name("e2e")
        self.bootstrap = ctx.bootstrap
        self.app_id = prefix
        self.processes = [FlareProcess(bootstrap=ctx.bootstrap, data_dir=ctx.work / prefix / f"p{i}",
                                       prefix=prefix, env={"FLARE_LOG_LEVEL": "warning"})
                          for i in range(n)]

    @property
    def first(self) -> FlareProcess:
        return self.processes[0]

    @property
    def target(self) -> str:
        return ",".join(p.base_url for p in self.processes)

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.process.pid) or 0.0 for p in self.processes]

    def start(self) -> Flares:
        try:
            for p in self.processes:  # all at once: one join, not one rebalance each
                p.start(wait_ready=False)
            for p in self.processes:
                p.wait_ready()
            asyncio.run(self._settled())
            for p in self.processes:  # a rebalance may have made one recover again
                p.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    async def _settled(self, timeout: float = 90.0) -> None:
        """Both stage groups stable with every process a member (the partitions shared)."""
        groups = [f"{self.app_id}.changes", f"{self.app_id}.deliveries"]
        deadline = time.monotonic() + timeout
        async with admin_client(self.bootstrap) as admin:
            while True:
                found = {g: await group_state(admin, g) for g in groups}
                want = ("Stable", len(self.processes))
                if all(found.get(g) == want for g in groups):
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"groups not settled: {found}")
                await asyncio.sleep(0.2)

    def log(self) -> str:
        return "\n".join(p.log() for p in self.processes)

    def stop(self) -> None:
        for p in self.processes:
            p.stop()


def resource(flare: FlareProcess, host: str) -> str:
    answer = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}",
                                            "change": {"field": "version"}})
    answer.raise_for_status()
    return answer.json()["id"]


def subscribe(flare: FlareProcess, resource_id: str, url: str) -> None:
    flare.post(f"/resources/{resource_id}/subscriptions", json={
        "endpoint": {"url": url, "method": "post"},
        "delivery": {"success": [200], "discard": [410]}}).raise_for_status()


async def wait_count(receiver: Receiver, count: int, timeout: float) -> None:
    await asyncio.to_thread(poll, lambda: receiver.count() >= count, timeout, 0.1,
                            f"{count} notifications arrived")


def acked_at(load: Load, start: int, revision: int) -> dict[tuple[int, int], int]:
    """(document number, revision) → when its 202 came back (ns)."""
    return {(start + r["i"], revision): r["done"] for r in load.results if r["status"] == 202}


def latencies(arrivals: list[dict[str, Any]], acked: dict[tuple[int, int], int]) -> list[float]:
    found = []
    for a in arrivals:
        when = acked.get((int(a["path"].rsplit("/", 1)[1]), a["revision"]))
        if when is not None:
            found.append((a["at"] - when) / 1e6)
    return found


def process_counts(ctx) -> list[int]:
    return sorted(set(getattr(ctx, "processes", None) or [1, 2]))


def keyed(figures: list[Figure], n: int, alone: dict[str, Figure]) -> list[Figure]:
    """The figures of ``n`` processes: their own keys and titles, and next to each the
    same figure of one process in this run, with the ratio (the scaling)."""
    if n == 1:
        for figure in figures:
            alone[figure.key] = figure
        return figures
    for figure in figures:
        one = alone.get(figure.key)
        figure.key = f"{figure.key}_{n}p"
        figure.title = f"{figure.title}, {n} processes"
        if one is not None and one.value and figure.value:
            scale = figure.value / one.value if figure.higher_is_better else one.value / figure.value
            figure.details = {f"1 process, same run ({figure.unit})": round(one.value, 2),
                              f"{n} processes / 1 process": round(scale, 2), **figure.details}
    return figures


async def run(ctx) -> list[Figure]:
    sizes = Sizes.of(ctx.quick)
    go_binary()
    figures: list[Figure] = []
    problems: list[str] = []
    receiver = Receiver(ctx.work)
    try:
        # Baselines first, on an idle machine as Flare will have it.
        with console.status("baseline: two Kafka hops"):
            hops0 = await two_hops(ctx.bootstrap, sizes.rate, sizes.rate * min(sizes.seconds, 10),
                                   (0, 0))
            hops_flare = await two_hops(ctx.bootstrap, sizes.rate,
                                        sizes.rate * min(sizes.seconds, 10), LINGERS)
        console.print(f"  two Kafka hops p50/p95/p99 ms: linger 0: {spread(hops0)}; "
                      f"Flare's lingers {LINGERS} ms: {spread(hops_flare)}")
        with console.status("baseline: Starlette + aiokafka acks=all"):
            minimal, minimal_cpu = await minimal_ingest(ctx, sizes.events)
        console.print(f"  Starlette + aiokafka acks=all: {minimal.summary['per_second']:,.0f} PUT/s "
                      f"({minimal_cpu / sizes.events * 1e6:.0f} µs CPU per PUT)")
        with console.status("baseline: raw aiohttp sending"):
            receiver.reset()
            cpu0 = receiver.cpu()
            raw_rate = await raw_sending(receiver.url, sizes.raw_sends)
            raw_receiver_cpu = receiver.cpu() - cpu0
        console.print(f"  raw aiohttp → receiver: {raw_rate:,.0f} requests/s "
                      f"(receiver {raw_receiver_cpu / sizes.raw_sends * 1e6:.0f} µs CPU per request)")

        alone: dict[str, Figure] = {}
        for n in process_counts(ctx):
            console.print(f"[bold]{n} flare start process{'es' if n > 1 else ''}, one app id")
            flares = await asyncio.to_thread(Flares(ctx, n).start)
            found: list[Figure] = []
            try:
                found += await _end_to_end(ctx, sizes, flares, receiver, minimal, raw_rate,
                                           problems)
                found += await _latency(ctx, sizes, flares, receiver, hops0, hops_flare,
                                        problems)
                found += await _fan_out(ctx, sizes, flares, receiver, minimal, raw_rate,
                                        problems)
                bad = [line for line in flares.log().splitlines()
                       if " ERROR " in line or "Traceback" in line]
                if bad:
                    problems.append(f"{n} processes: {len(bad)} ERROR lines in Flare's log, "
                                    f"first: {bad[0][:200]}")
            finally:
                await asyncio.to_thread(flares.stop)
            figures += keyed(found, n, alone)
    finally:
        receiver.stop()
    for figure in figures:
        figure.problems += problems
    return figures


def cpu_of_each(used: list[float], seconds: float) -> str:
    """Each process's share of a core over a window, e.g. ``97 %`` or ``88 % + 84 %``."""
    return " + ".join(f"{u / seconds:.0%}" for u in used)


async def _end_to_end(ctx, sizes: Sizes, flares: Flares, receiver: Receiver,
                      minimal: Load, raw_rate: float, problems: list[str]) -> list[Figure]:
    flare = flares.first
    resource_id = await asyncio.to_thread(resource, flare, "e2e.test")
    for s in range(SUBSCRIBERS):
        await asyncio.to_thread(subscribe, flare, resource_id, f"{receiver.url}/s{s}/{{id}}")
    receiver.reset()
    expected = sizes.events * SUBSCRIBERS
    flare_cpu0, receiver_cpu0, machine0 = flares.cpu(), receiver.cpu(), machine_busy()
    spy = Spy(flare.process.pid, ctx.work / "e2e.pyspy.txt",
              ctx.profile and len(flares.processes) == 1)
    with console.status(f"end to end: {sizes.events:,} PUTs × {SUBSCRIBERS} subscriptions"):
        load = await go_load(ctx.work, "put", target=flares.target, n=sizes.events,
                             workers=WORKERS, prefix="http://e2e.test/users/", revision=1)
        if load.statuses() != {"202": sizes.events}:
            console.print(f"  [red]PUT answers {load.statuses()}")
            expected = load.statuses().get("202", 0) * SUBSCRIBERS
        await wait_count(receiver, expected, 600)
    used = [b - a for a, b in zip(flare_cpu0, flares.cpu())]
    flare_cpu, receiver_cpu = sum(used), receiver.cpu() - receiver_cpu0
    machine = [b - a for a, b in zip(machine0, machine_busy())]
    profile = spy.stop()
    arrivals = receiver.arrivals()
    if load.statuses() != {"202": sizes.events}:
        problems.append(f"end to end: PUT answers {load.statuses()}")
    if len(arrivals) != sizes.events * SUBSCRIBERS:
        problems.append(f"end to end: {len(arrivals)} notifications for "
                        f"{sizes.events * SUBSCRIBERS} expected")
    first = load.summary["first_sent"]
    last = max(a["at"] for a in arrivals)
    seconds = (last - first) / 1e9
    rate = len(arrivals) / seconds
    put_rate = load.summary["per_second"]
    lat = latencies(arrivals, acked_at(load, 0, 1))
    console.print(f"  {rate:,.0f} deliveries/s over {seconds:.1f} s; PUTs {put_rate:,.0f}/s; "
                  f"CPU of a core: Flare {cpu_of_each(used, seconds)}, generator "
                  f"{load.cpu / seconds:.0%}, receiver {receiver_cpu / seconds:.0%}; machine "
                  f"{machine[0] / machine[1]:.0%} busy ({os.cpu_count()} cores); Flare "
                  f"{flare_cpu / len(arrivals) * 1e6:.0f} µs CPU per delivery")
    details = {
        "Svix (issue 13)": f"{SVIX_DELIVERIES} deliveries/s",
        "seconds, first PUT sent → last notification": round(seconds, 2),
        "202 → arrival p50 / p95 / p99 (ms)": spread(lat),
        "CPU of a core: Flare / generator / receiver":
            f"{cpu_of_each(used, seconds)} / {load.cpu / seconds:.0%} / {receiver_cpu / seconds:.0%}",
        "Flare CPU µs per delivery": round(flare_cpu / max(len(arrivals), 1) * 1e6),
        "machine busy (all cores, broker included)": f"{machine[0] / machine[1]:.0%}",
    }
    show_profile("end to end", profile)
    per = flare_cpu / max(len(arrivals), 1) * 1e6
    each = " per process" if len(used) > 1 else ""
    why_deliveries = (
        f"Flare is the limit, not the Go sides: it used {cpu_of_each(used, seconds)} of a core "
        f"(generator {load.cpu / seconds:.0%}, receiver {receiver_cpu / seconds:.0%}) at "
        f"{per:.0f} µs of CPU per delivery (its PUT's share, both stages and the request), so "
        f"a core carries at most {1e6 / per:,.0f} deliveries/s{each}. Next: below "
        f"{1e6 / 2_500:.0f} µs per delivery (aiohttp's client, the event loop and aiokafka "
        "lead the profile, `--profile`), or a process per free core (the machine was "
        f"{machine[0] / machine[1]:.0%} busy here)")
    why_puts = (
        f"the API shares that core with the deliveries of what it accepted: {SUBSCRIBERS} "
        f"deliveries per PUT at {per:.0f} µs is {SUBSCRIBERS * per / 1000:.1f} ms of CPU per "
        f"PUT, so at most {1e6 / (SUBSCRIBERS * per):,.0f} PUT/s{each} with the deliveries "
        f"keeping up (PUT round trip p50 / p99 {_put_latency(load)} ms). Next: the CPU per "
        "delivery, or the API in a process of its own on a free core")
    return [
        Figure(key="e2e_deliveries_per_s",
               title=f"end to end: {sizes.events:,} PUTs × {SUBSCRIBERS} subscriptions, "
                     f"{WORKERS} workers (deliveries/s, first PUT → last arrival)",
               unit="deliveries/s", value=rate, baseline=raw_rate,
               baseline_title="raw aiohttp sending to the same receiver", goal_value=2_500,
               details=details, when_missed=why_deliveries),
        Figure(key="e2e_put_per_s", title="end to end: PUTs accepted meanwhile",
               unit="PUT/s", value=put_rate, baseline=minimal.summary["per_second"],
               baseline_title="Starlette + aiokafka acks=all, same generator", goal_value=500,
               details={"Flare PUT p50 / p99 (ms)": _put_latency(load)},
               when_missed=why_puts),
    ]


def _put_latency(load: Load) -> str:
    took = [(r["done"] - r["sent"]) / 1e6 for r in load.results]
    return f"{percentile(took, 50):.1f} / {percentile(took, 99):.1f}"


async def _latency(ctx, sizes: Sizes, flares: Flares, receiver: Receiver,
                   hops0: list[float], hops_flare: list[float],
                   problems: list[str]) -> list[Figure]:
    n = sizes.rate * sizes.seconds
    receiver.reset()
    flare_cpu0 = flares.cpu()
    spy = Spy(flares.first.process.pid, ctx.work / "latency.pyspy.txt",
              ctx.profile and len(flares.processes) == 1)
    with console.status(f"latency: {sizes.rate}/s for {sizes.seconds} s on warm tables"):
        load = await go_load(ctx.work, "put", target=flares.target, n=n, rate=sizes.rate,
                             prefix="http://e2e.test/users/", revision=2)
        if load.statuses() != {"202": n}:
            console.print(f"  [red]PUT answers {load.statuses()}")
        await wait_count(receiver, load.statuses().get("202", 0) * SUBSCRIBERS, 120)
    used = [b - a for a, b in zip(flare_cpu0, flares.cpu())]
    profile = spy.stop()
    arrivals = receiver.arrivals()
    if load.statuses() != {"202": n}:
        problems.append(f"latency: PUT answers {load.statuses()}")
    lat = latencies(arrivals, acked_at(load, 0, 2))
    sent = {(r["i"], 2): r["sent"] for r in load.results}
    from_sent = latencies(arrivals, sent)
    console.print(f"  202 → arrival p50/p95/p99 ms: {spread(lat)} ({len(lat)} notifications); "
                  f"two hops (linger 0): {spread(hops0)}")
    window = (max(a["at"] for a in arrivals) - load.summary["first_sent"]) / 1e9
    details = {
        "Svix p99 (issue 13)": f"{SVIX_P99_MS:g} ms",
        "samples": len(lat),
        "delivery records held before": f"{sizes.events * SUBSCRIBERS:,}",
        "two Kafka hops, linger 0, p50 / p95 / p99 (ms)": spread(hops0),
        f"two Kafka hops, Flare's lingers (API {LINGERS[0]} ms, stage {LINGERS[1]} ms), "
        "p50 / p95 / p99 (ms)":
            spread(hops_flare),
        "PUT sent → arrival p50 / p95 / p99 (ms)": spread(from_sent),
        "PUT round trip p50 / p99 (ms)": _put_latency(load),
        "notified before the client read its 202": sum(v < 0 for v in lat),
        "Flare CPU of a core": cpu_of_each(used, window),
    }
    show_profile("latency", profile)
    floor = percentile(hops0, 99)
    why = (f"at {sizes.rate}/s × {SUBSCRIBERS} Flare used {cpu_of_each(used, window)} of a "
           "core, so notifications queue behind each other's work (the tail); the floor of "
           f"two Kafka hops here is p99 {floor:.1f} ms with linger 0 and "
           f"{percentile(hops_flare, 99):.1f} ms with Flare's lingers. Next: the CPU per "
           "delivery (less queueing); linger 0 (api_linger_ms, stage_linger_ms) lowers the "
           "floor but cost ~40 % more CPU per PUT under load (docs/benchmarks.md)")
    title = f"latency 202 → receiver at {sizes.rate}/s × {SUBSCRIBERS} subscriptions, warm tables"
    return [
        Figure(key="e2e_latency_p50", title=f"{title}, p50", unit="ms",
               value=percentile(lat, 50), baseline=percentile(hops0, 50),
               baseline_title="two Kafka hops (raw aiokafka, acks=all) p50",
               higher_is_better=False, goal_note="report"),
        Figure(key="e2e_latency_p95", title=f"{title}, p95", unit="ms",
               value=percentile(lat, 95), baseline=percentile(hops0, 95),
               baseline_title="two Kafka hops p95", higher_is_better=False, goal_note="report"),
        Figure(key="e2e_latency_p99", title=f"{title}, p99", unit="ms",
               value=percentile(lat, 99), baseline=floor,
               baseline_title="two Kafka hops p99", higher_is_better=False, goal_max=25.0,
               details=details, when_missed=why),
    ]


async def _fan_out(ctx, sizes: Sizes, flares: Flares, receiver: Receiver,
                   minimal: Load, raw_rate: float, problems: list[str]) -> list[Figure]:
    flare = flares.first
    resource_id = await asyncio.to_thread(resource, flare, "fan.test")
    flare_cpu0 = sum(flares.cpu())
    with console.status(f"creating {sizes.fanout:,} subscriptions through the API"):
        created = await go_load(ctx.work, "subscribe", target=flares.target,
                                resource=resource_id, sink=receiver.url, n=sizes.fanout,
                                workers=WORKERS)
    create_seconds = (created.summary["last_done"] - created.summary["first_sent"]) / 1e9
    create_cpu = sum(flares.cpu()) - flare_cpu0
    fan_cpu0 = flares.cpu()
    if created.statuses() != {"201": sizes.fanout}:
        problems.append(f"fan-out: subscription answers {created.statuses()}")
    receiver.reset()
    sent = time.time_ns()
    answer = await asyncio.to_thread(flare.put, "/documents/http://fan.test/users/1",
                                     content=b'{"id": 1, "version": 1}')
    acked = time.time_ns()
    if answer.status_code != 202:
        problems.append(f"fan-out: PUT answered {answer.status_code}")
    await wait_count(receiver, sizes.fanout, 300)
    arrivals = receiver.arrivals()
    last = max(a["at"] for a in arrivals)
    seconds = (last - sent) / 1e9
    fan_used = [b - a for a, b in zip(fan_cpu0, flares.cpu())]
    console.print(f"  {created.summary['per_second']:,.0f} creations/s; one change to "
                  f"{sizes.fanout:,}: {seconds:.2f} s")
    raw_seconds = sizes.fanout / raw_rate
    why = (f"raw aiohttp alone took {raw_seconds:.2f} s for {sizes.fanout:,} requests here"
           + (", more than the goal: it is below one Python sender's reach on this machine"
              if raw_seconds >= 1.5 else "")
           + f"; Flare sent at {raw_seconds / seconds:.2f} of that rate, the rest being its CPU "
           "per delivery (the end-to-end figure). Next: that CPU; a dispatcher per free core "
           "(each sends its partitions' subscriptions); as a goal here, ≥ 0.8 of raw aiohttp")
    return [
        Figure(key="e2e_fanout_seconds",
               title=f"one change to {sizes.fanout:,} subscriptions created through the API "
                     "(s, PUT sent → last arrival)",
               unit="s", value=seconds, baseline=sizes.fanout / raw_rate,
               baseline_title=f"raw aiohttp sending {sizes.fanout:,} requests (s)",
               higher_is_better=False, goal_max=1.5, when_missed=why,
               details={"202 → last arrival (s)": round((last - acked) / 1e9, 2),
                        "202 → first arrival (ms)":
                            round((min(a["at"] for a in arrivals) - acked) / 1e6, 1),
                        "CPU of a core, PUT sent → last arrival": cpu_of_each(fan_used, seconds)}),
        Figure(key="e2e_subscriptions_per_s",
               title=f"subscriptions created through the API ({WORKERS} workers)",
               unit="creations/s", value=created.summary["per_second"],
               baseline=minimal.summary["per_second"],
               baseline_title="Starlette + aiokafka acks=all (one write per request)",
               goal_note="report",
               details={"Flare CPU µs per creation": round(create_cpu / sizes.fanout * 1e6),
                        "creation p50 / p99 (ms)": _put_latency(created),
                        "generator CPU of a core":
                            f"{created.cpu / max(create_seconds, 1e-9):.0%}"}),
    ]
