"""Progress of long benchmark phases: a rich bar on a terminal, a line now and then in a log.

A run of bench/state.py at 10,000,000 documents takes the better part of an hour; whoever
watches it (or reads its log afterwards) should see which phase it is in, how far along,
and what the process's memory is doing.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from bench.report import console

#: Seconds between two progress lines when the output is not a terminal.
LINE_EVERY = 30.0


class Phase:
    """One phase: ``update(done, note)`` as it goes; ``done``/``seconds`` afterwards."""

    def __init__(self, title: str, total: int | None, bar: Progress | None, task) -> None:
        self.title = title
        self.total = total
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._bar, self._task = bar, task
        self._said = self.started

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def update(self, done: int | None = None, note: str | None = None) -> None:
        if done is not None:
            self.done = int(done)
        if note is not None:
            self.note = note
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, note=self.note)
            return
        now = time.monotonic()
        if now - self._said >= LINE_EVERY:
            self._said = now
            console.print(f"  … {self.title}: {self._where()}")

    def _where(self) -> str:
        seconds = self.seconds
        parts = [f"{seconds:.0f} s"]
        if self.total:
            rate = self.done / seconds if seconds else 0.0
            parts.insert(0, f"{self.done:,}/{self.total:,} ({rate:,.0f}/s)")
            if rate and self.done < self.total:
                parts.append(f"about {(self.total - self.done) / rate:.0f} s left")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


_live: Progress | None = None


@contextlib.contextmanager
def phase(title: str, total: int | None = None) -> Iterator[Phase]:
    """A phase of ``total`` steps (None: a wait of unknown length); says when it ended.
    Phases may nest (a restart timed while a backlog is counted): they share one display."""
    global _live
    if not console.is_terminal:
        current = Phase(title, total, None, None)
        yield current
    elif _live is not None:
        bar = _live
        task = bar.add_task(title, total=total, note="")
        try:
            current = Phase(title, total, bar, task)
            yield current
        finally:
            bar.remove_task(task)
    else:
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[note]}")]
        with Progress(*columns, console=console, transient=True) as bar:
            _live = bar
            try:
                current = Phase(title, total, bar, bar.add_task(title, total=total, note=""))
                yield current
            finally:
                _live = None
    console.print(f"  {title}: {current._where()}")
