"""``flare replay`` on the terminal: rich progress (records done / total per topic, rate,
time left) on stderr while streams/replay.py works, then a summary on stdout."""

from __future__ import annotations

import asyncio

import orjson
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                           TextColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from app.config import Settings
from streams.replay import Summary, replay


#: Missing documents listed per subscription on the terminal.
SHOWN = 10


class RateColumn(ProgressColumn):
    """Records per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


def run(settings: Settings, app_id: str, dry_run: bool, as_json: bool) -> Summary:
    errors = Console(stderr=True)
    tasks: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  RateColumn(), TimeRemainingColumn(), console=errors,
                  transient=False) as bar:
        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                label = {"offers": "offers to subscribers"}.get(task, task)
                tasks[task] = bar.add_task(label, total=total)
            bar.update(tasks[task], completed=done, total=total)

        summary = asyncio.run(replay(settings, app_id, dry_run, progress))
    if as_json:
        print(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        show(summary, Console())
    return summary


def show(summary: Summary, console: Console) -> None:
    read = ", ".join(f"{n:,} records of {topic}" for topic, n in summary.read.items())
    console.print(f"read {read} in {summary.seconds:.1f}s")
    console.print(f"documents: {summary.documents_live:,} live, {summary.documents_deleted:,}"
                  f" deleted; delivery records: {summary.deliveries:,}")
    table = Table(title="what subscribers are missing")
    table.add_column("subscription", no_wrap=True, min_width=36)
    table.add_column("resource", overflow="ellipsis", no_wrap=True, max_width=8)
    for column in ("create", "update", "delete"):
        table.add_column(column, justify="right", min_width=6)
    for sid, counts in sorted(summary.by_subscription().items()):
        table.add_row(sid, summary.subscriptions.get(sid, "?"), str(counts["create"]),
                      str(counts["update"]), str(counts["delete"]))
    console.print(table)
    for sid in sorted({g.subscription_id for g in summary.missing}):
        gaps = [g for g in summary.missing if g.subscription_id == sid]
        console.print(f"{sid} is missing:", highlight=False)
        for gap in gaps[:SHOWN]:
            console.print(f"  {gap.action} {gap.url} (revision {gap.revision})",
                          highlight=False, soft_wrap=True)
        if len(gaps) > SHOWN:
            console.print(f"  ... and {len(gaps) - SHOWN} more (--json lists all)")
    missing, subscribers = len(summary.missing), len({g.subscription_id for g in summary.missing})
    if summary.dry_run:
        console.print(f"dry run: {missing} missing documents for {subscribers} subscription(s)"
                      " would be offered; nothing was written")
    else:
        console.print(f"wrote {summary.changelog_records:,} changelog records of app id"
                      f" {summary.app_id!r} and committed its groups at the snapshot;"
                      f" offered {summary.offers} missing documents to {subscribers}"
                      f" subscription(s). Start Flare with FLARE_APP_ID={summary.app_id}"
                      " to run on these tables.")
