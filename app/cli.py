"""The ``flare`` command line: ``flare start``, ``flare version``, ``flare with-kafka``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from app import __version__
from app.config import ConfigError, load

cli = typer.Typer(help="Flare: change notifications for documents, on Apache Kafka.",
                  no_args_is_help=True, add_completion=False)


@cli.command()
def start(config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                help="TOML file with settings (FLARE_* variables win).")) -> None:
    """Run the HTTP API and the stream worker in one process and one event loop."""
    try:
        settings = load(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    from app.server import serve

    serve(settings)


@cli.command()
def version() -> None:
    """Print Flare's version."""
    typer.echo(__version__)


@cli.command(name="with-kafka", context_settings={"allow_extra_args": True,
                                                  "ignore_unknown_options": True})
def with_kafka(ctx: typer.Context,
               data_dir: Path = typer.Option(Path("var/kafka"), help="Broker data (kept between runs)."),
               nodes: int = typer.Option(1, help="1, or 3 for a fault-tolerant cluster.")) -> None:
    """Run a command with FLARE_KAFKA_BOOTSTRAP set, starting a local broker if none is configured.

    Example: flare with-kafka -- flare start
    """
    from app.local_kafka import run_with_broker

    if not ctx.args:
        typer.echo("error: give the command to run after --", err=True)
        raise typer.Exit(2)
    raise typer.Exit(run_with_broker(list(ctx.args), data_dir, nodes=nodes))


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    cli()
