"""Processes the benchmarks start: `flare start` (or it under cProfile), and CPU sampling."""

from __future__ import annotations

import os
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


class CpuSampler:
    """Samples a process's CPU time every ``interval`` seconds, against wall-clock time,
    so the CPU spent in any window found afterwards (e.g. between two record timestamps)
    can be read back."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            cpu = cpu_seconds(self.pid)
            if cpu is not None:
                self.samples.append((time.time(), cpu))
            time.sleep(self.interval)

    def between(self, start: float, end: float) -> float | None:
        """CPU seconds spent between two wall-clock times (nearest samples)."""
        if not self.samples:
            return None

        def at(t: float) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]

        return at(end) - at(start)


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
