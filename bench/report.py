"""Figures, the machine they were measured on, and where they are written.

A :class:`Figure` is one measured value next to its baseline from the same run (DESIGN.md,
"Performance": absolute numbers drift on shared machines, ratios much less). The runner
prints each as it comes and writes them all to ``bench/results/latest.json`` (one key per
figure) and to the generated section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
PARTIAL = ROOT / "bench" / "results" / "partial.json"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

console = Console(highlight=False, width=max(Console().width, 110))


@dataclass
class Figure:
    """One result: ``value`` of Flare against ``baseline`` measured in the same run."""

    key: str
    title: str
    unit: str
    value: float
    baseline: float
    baseline_title: str
    #: Goals: a minimum for the value and/or for the ratio; or a goal only in words.
    goal_value: float | None = None
    goal_ratio: float | None = None
    #: A maximum for the value (times, latencies): met when the value is below it.
    goal_max: float | None = None
    goal_note: str = ""
    #: False for times and latencies: the ratio is then baseline / value (higher is better).
    higher_is_better: bool = True
    #: Every repetition, for the record (the figure is their median).
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    #: Anything else worth keeping (CPU per change, latencies, checks).
    details: dict[str, Any] = field(default_factory=dict)
    #: Empty when the run checked out; else what went wrong (the figure is not trustworthy).
    problems: list[str] = field(default_factory=list)
    #: Said when the goal is missed: the reason measured in the same run, and the next step
    #: that would close the gap.
    when_missed: str = ""

    @property
    def ratio(self) -> float:
        if not (self.value and self.baseline):
            return 0.0
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value

    def goal_text(self) -> str:
        parts = []
        if self.goal_value is not None:
            parts.append(f"≥ {self.goal_value:,.0f} {self.unit}")
        if self.goal_ratio is not None:
            parts.append(f"ratio ≥ {self.goal_ratio:g}")
        if self.goal_max is not None:
            parts.append(f"< {self.goal_max:g} {self.unit}")
        if self.goal_note:
            parts.append(self.goal_note)
        return " and ".join(parts) or "—"

    def goal_met(self) -> bool | None:
        if self.goal_value is None and self.goal_ratio is None and self.goal_max is None:
            return None
        ok = True
        if self.goal_value is not None:
            ok &= self.value >= self.goal_value
        if self.goal_ratio is not None:
            ok &= self.ratio >= self.goal_ratio
        if self.goal_max is not None:
            ok &= 0 < self.value < self.goal_max
        return ok

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("key")
        data["ratio"] = round(self.ratio, 4)
        data["goal"] = self.goal_text()
        data["goal_met"] = self.goal_met()
        return data


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def show(figure: Figure) -> None:
    """Print one figure with its baseline and ratio."""
    met = figure.goal_met()
    verdict = {True: "[green]goal met[/]", False: "[red]goal missed[/]", None: ""}[met]
    console.print(f"[bold]{figure.title}[/]: {_fmt(figure.value)} {figure.unit}  "
                  f"vs {figure.baseline_title} {_fmt(figure.baseline)}  "
                  f"→ ratio [bold]{figure.ratio:.2f}[/]  (goal {figure.goal_text()}) {verdict}")
    if met is False and figure.when_missed:
        console.print(f"  [yellow]why, and the next step:[/] {figure.when_missed}")
    for problem in figure.problems:
        console.print(f"  [red]problem:[/] {problem}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def machine(kafka: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "kafka": kafka,
        "os": f"{platform.system()} {platform.release()}",
        "packages": {p: _version(p) for p in ("aiokafka", "starlette",
                                              "uvicorn", "orjson", "httpx", "aiohttp")},
    }


def write_json(figures: list[Figure], run: dict[str, Any], path: Path = RESULTS) -> None:
    data: dict[str, Any] = {f.key: f.as_json() for f in figures}
    data["_run"] = run
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def markers(section: str | None = None) -> tuple[str, str]:
    """The markers around a generated section: the full run's, or a module's own."""
    if section is None:
        return BEGIN, END
    return (f"<!-- bench:{section}:begin (written by `python -m bench --only {section}`; "
            "edit outside these markers) -->", f"<!-- bench:{section}:end -->")


def markdown(figures: list[Figure], run: dict[str, Any], section: str | None = None) -> str:
    m = run["machine"]
    begin, end = markers(section)
    lines = [
        begin,
        "",
        f"Last run: {run['finished']} — `{run['command']}` in {run['seconds']:.0f} s"
        + (" (quick mode: fewer, shorter runs)" if run.get("quick") else ""),
        "",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['os']}; "
        f"load average {run['load_before']:.1f} before and {run['load_after']:.1f} after the run",
        f"- Python {m['python']}; Kafka {m['kafka']} on the same machine; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        "",
        "| figure | Flare | baseline | ratio | goal | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: ""}[f.goal_met()]
        if f.problems:
            met += " (run had problems)"
        lines.append(f"| {f.title} | {_fmt(f.value)} {f.unit} | {f.baseline_title}: "
                     f"{_fmt(f.baseline)} | {f.ratio:.2f} | {f.goal_text()} | {met} |")
    lines.append("")
    for f in figures:
        if f.details:
            shown = "; ".join(f"{k}: {_fmt(v) if isinstance(v, (int, float)) else v}"
                              for k, v in f.details.items())
            lines.append(f"- {f.title} — {shown}")
    missed = [f for f in figures if f.goal_met() is False and f.when_missed]
    if missed:
        lines += ["", "Goals missed in this run, why (measured in it), and the next step:", ""]
        lines += [f"- {f.title}: {f.when_missed}" for f in missed]
    lines += ["", end]
    return "\n".join(lines)


def write_docs(figures: list[Figure], run: dict[str, Any], path: Path = DOCS,
               section: str | None = None) -> None:
    """Replace a generated section of docs/benchmarks.md (the full run's, or the named
    module's own); keep the prose around it."""
    begin, end = markers(section)
    generated = markdown(figures, run, section)
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: generated, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    path.write_text(text)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def from_dict(found: dict[str, Any]) -> Figure:
    """A figure given as a plain dict by a module with the older interface
    (``run(bootstrap, workdir) -> list[dict]``, e.g. bench/dispatch.py): ``name``, ``value``,
    ``unit``, ``baseline: {name, value}``, ``ratio``, ``goal`` (words)."""
    baseline = found.get("baseline") or {}
    value, base = float(found.get("value") or 0), float(baseline.get("value") or 0)
    figure = Figure(key=re.sub(r"[^a-z0-9]+", "_", str(found.get("name", "figure")).lower()).strip("_"),
                    title=str(found.get("name", "figure")), unit=str(found.get("unit", "")),
                    value=value, baseline=base, baseline_title=str(baseline.get("name", "baseline")),
                    goal_note=str(found.get("goal") or ""),
                    goal_ratio=found.get("goal_ratio"), goal_max=found.get("goal_max"))
    # The module computed the ratio itself; keep its direction (lower is better for times).
    if value and base and found.get("ratio") is not None:
        figure.higher_is_better = abs(found["ratio"] - value / base) <= abs(found["ratio"] - base / value)
    figure.details = {k: v for k, v in found.items()
                      if k not in ("name", "value", "unit", "baseline", "ratio", "goal",
                                   "goal_ratio", "goal_max")}
    return figure
