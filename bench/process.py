"""Processes the benchmarks start: `flare start` (or it under cProfile), CPU sampling, memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.flare_process import FlareProcess

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat):
    what the broker, the load and anyone else on the machine used too."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK, sum(fields[:8]) / _TICK


class _Watcher:
    """A thread that calls :meth:`sample` every ``interval`` seconds while in a ``with``."""

    name = "watcher"

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        raise NotImplementedError


class CpuSampler(_Watcher):
    """Samples a process's CPU time every ``interval`` seconds, against wall-clock time,
    so the CPU spent in any window found afterwards (e.g. between two record timestamps)
    can be read back."""

    name = "cpu-sampler"

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.samples: list[tuple[float, float]] = []
        super().__init__(pid, interval)

    def sample(self) -> None:
        cpu = cpu_seconds(self.pid)
        if cpu is not None:
            self.samples.append((time.time(), cpu))

    def between(self, start: float, end: float) -> float | None:
        """CPU seconds spent between two wall-clock times (nearest samples)."""
        if not self.samples:
            return None

        def at(t: float) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]

        return at(end) - at(start)


def memory(pid: int) -> tuple[int, int] | None:
    """(resident set now, its peak since the process started), bytes: VmRSS and VmHWM of
    /proc/<pid>/status. None once the process is gone."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, kib, _ = line.split()
                found[name] = int(kib) * 1024
    except (OSError, ValueError):
        return None
    if len(found) != 2:
        return None  # a zombie has no memory lines
    return found["VmRSS:"], found["VmHWM:"]


def available_memory() -> int:
    """MemAvailable of /proc/meminfo, bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class MemoryGuard(_Watcher):
    """Watches a process's resident set every ``interval`` seconds and SIGKILLs it past
    ``limit`` bytes: on a shared machine a benchmark must not bring the kernel's OOM killer
    down on the broker or on other people's processes. ``tripped`` says it did."""

    name = "memory-guard"

    def __init__(self, pid: int, limit: int, interval: float = 0.25) -> None:
        self.limit = limit
        self.rss = 0
        self.tripped: int | None = None
        super().__init__(pid, interval)

    def sample(self) -> None:
        found = memory(self.pid)
        if found is None:
            return
        self.rss = found[0]
        if found[0] > self.limit and self.tripped is None:
            self.tripped = found[0]
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ProfiledFlare(FlareProcess):
    """`flare start` under cProfile (bench/profile_flare.py); the profile is written to
    ``profile_path`` when the process stops."""

    def __init__(self, *, profile_path: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.profile_path = profile_path

    def start(self, wait_ready: bool = True, timeout: float = 90.0) -> ProfiledFlare:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.profile_flare", str(self.profile_path)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parents[1]))
        log.close()
        if wait_ready:
            self.wait_ready(timeout)
        return self
