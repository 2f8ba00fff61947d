"""``python -m bench`` (``make bench``): every benchmark module in one run, one broker.

Options: ``--quick`` (smaller, shorter runs, for trying the harness), ``--only NAME``
(one module), ``--profile`` (also profile the changes stage once, see bench/changes.py),
``--documents N`` (the sizes bench/state.py tracks), ``--processes N`` (the ``flare start``
processes bench/e2e.py runs).
Results: printed as they come, then bench/results/latest.json and docs/benchmarks.md.
A full ``--only`` run of a module with a ``SECTION`` (bench/state.py) also writes
bench/results/<SECTION>.json and that module's own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from app import local_kafka
from bench import report

#: The benchmark modules, in order. Each has ``async def run(ctx: Context) -> list[Figure]``
#: (bench/report.py); a module with the older blocking ``run(bootstrap, workdir)`` returning
#: figure dicts (bench/dispatch.py) runs too, in a thread.
MODULES = ["bench.changes", "bench.api", "bench.dispatch", "bench.registry", "bench.e2e",
           "bench.state"]

WORK = report.ROOT / "var" / "bench"


@dataclass
class Context:
    bootstrap: str
    work: Path
    quick: bool
    profile: bool
    #: ``--documents``: the sizes bench/state.py tracks (empty: its defaults)
    documents: list[int] = field(default_factory=list)
    #: ``--processes``: how many ``flare start`` processes bench/e2e.py runs (empty: 1 and 2)
    processes: list[int] = field(default_factory=list)
    #: the figures of the modules that ran before, so a later one can reuse a baseline
    figures: list[report.Figure] = field(default_factory=list)

    def repeats(self, full: int) -> int:
        return 1 if self.quick else full


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this benchmark (changes, api, dispatch, registry, e2e,"
                             " state); repeatable")
    parser.add_argument("--documents", action="append", type=int, default=[], metavar="N",
                        help="state: documents tracked (default 1,000,000 and 10,000,000; "
                             "100,000 with --quick); repeatable")
    parser.add_argument("--processes", action="append", type=int, default=[], metavar="N",
                        help="e2e: flare start processes of one app id (default 1 and 2); "
                             "repeatable")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the changes stage under cProfile once, and Flare under "
                             "py-spy in the e2e benchmark")
    return parser.parse_args(argv)


async def _run_module(ctx: Context, name: str) -> list[report.Figure]:
    module = importlib.import_module(name)
    if inspect.iscoroutinefunction(module.run):
        return await module.run(ctx)
    # The older interface: run(bootstrap, workdir) -> list of figure dicts, blocking.
    found = await asyncio.to_thread(module.run, ctx.bootstrap, ctx.work)
    return [report.from_dict(item) for item in found]


async def _run_modules(ctx: Context, names: list[str]) -> list[report.Figure]:
    figures: list[report.Figure] = []
    for name in names:
        report.console.rule(f"[bold]{name.rsplit('.', 1)[1]}")
        try:
            found = await _run_module(ctx, name)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            report.console.print_exception(max_frames=8)
            found = [report.Figure(key=f"{name.rsplit('.', 1)[1]}_failed", title=f"{name} failed",
                                   unit="", value=0.0, baseline=0.0, baseline_title="—",
                                   problems=[f"{exc.__class__.__name__}: {exc}"])]
        for figure in found:
            report.show(figure)
            figures.append(figure)
            ctx.figures.append(figure)
    return figures


def _write_sections(names: list[str], figures: list[report.Figure], run: dict) -> list[Path]:
    """The record of a full ``--only`` run of a module that keeps its own section (a
    long benchmark run alone, e.g. bench/state.py): bench/results/<SECTION>.json and
    that section of docs/benchmarks.md."""
    written = []
    for name in names:
        section = getattr(importlib.import_module(name), "SECTION", None)
        if section is None:
            continue
        mine = [f for f in figures if f.key.startswith(f"{section}_")]
        path = report.RESULTS.with_name(f"{section}.json")
        report.write_json(mine, run, path)
        report.write_docs(mine, run, section=section)
        written += [path, report.DOCS]
    return written


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    names = [m for m in MODULES if not args.only or m.rsplit(".", 1)[1] in args.only]
    if not names:
        print(f"no benchmark named {args.only}; known: {[m.rsplit('.', 1)[1] for m in MODULES]}")
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    external = os.environ.get("FLARE_KAFKA_BOOTSTRAP")
    kafka = (f"external broker at {external}" if external
             else f"{local_kafka.KAFKA_VERSION} (one local KRaft node)")
    report.console.print(f"[bold]Flare benchmarks[/] — {os.cpu_count()} cores, "
                         f"load average {load_before:.1f}")
    try:
        with local_kafka.broker(WORK / "kafka", preferred_port=None,
                                log=report.console.print) as bootstrap:
            ctx = Context(bootstrap, WORK, args.quick, args.profile, args.documents,
                          processes=args.processes)
            figures = asyncio.run(_run_modules(ctx, names))
    except local_kafka.BrokerError as exc:
        report.console.print(f"[red]error:[/] {exc}")
        return 2
    run = {
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "finished": report.now(),
        "seconds": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "machine": report.machine(kafka),
    }
    report.console.rule()
    if args.quick or args.only:
        # A partial run must not replace the record of a full one.
        report.write_json(figures, run, report.PARTIAL)
        written = [report.PARTIAL]
        if not args.quick:
            written += _write_sections(names, figures, run)
    else:
        report.write_json(figures, run)
        report.write_docs(figures, run)
        written = [report.RESULTS, report.DOCS]
    report.console.print("written: " + ", ".join(str(p.relative_to(report.ROOT)) for p in written)
                         + f" ({run['seconds']:.0f} s)")
    return 1 if any(f.problems for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
