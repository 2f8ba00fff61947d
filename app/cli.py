"""The ``flare`` command line: ``flare start``, ``flare config``, ``flare listen``,
``flare backfill``, ``flare replay``, ``flare version``, ``flare with-kafka``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from app import __version__
from app.config import ConfigError, load
from app.settings_help import effective, start_epilog

cli = typer.Typer(help="Flare: change notifications for documents, on Apache Kafka.",
                  no_args_is_help=True, add_completion=False)


CONFIG_OPTION = typer.Option(None, "--config", "-c",
                             help="TOML file with settings (FLARE_* variables win).")


@cli.command(epilog=start_epilog())
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


@cli.command(name="config")
def show_config(config: Optional[Path] = CONFIG_OPTION) -> None:
    """Print the settings `flare start` would use (as TOML, secrets masked)."""
    try:
        settings = load(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(effective(settings))


@cli.command()
def listen(port: int = typer.Option(9000, "--port", "-p", help="Port to listen on."),
           host: str = typer.Option("127.0.0.1", help="Address to listen on."),
           secret: Optional[str] = typer.Option(
               None, "--secret", "-s", help="The subscription's whsec_... secret: check"
               " webhook-signature (401 when invalid)."),
           headers: bool = typer.Option(False, "--headers", help="Print every header too."),
           status: int = typer.Option(200, help="Status to answer (e.g. 500 to watch retries).")
           ) -> None:
    """Run a local receiver that prints each notification it gets (Ctrl-C stops it)."""
    from app.listen import listen as run

    try:
        run(host, port, secret, headers, status)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc}", err=True)
        raise typer.Exit(2)


@cli.command()
def backfill(resource: str = typer.Option(..., "--resource", "-r", help="The resource id."),
             subscription: str = typer.Option(..., "--subscription", "-s",
                                              help="The subscription id."),
             url: str = typer.Option("http://127.0.0.1:8080", help="A Flare process's API."),
             token: Optional[str] = typer.Option(None, help="An API token, when Flare has some.")
             ) -> None:
    """Offer every live document of a resource to one subscription, as `create` (SPEC §11);
    revisions it already has are skipped."""
    import httpx

    path = f"/resources/{resource}/subscriptions/{subscription}/backfill"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(url.rstrip("/") + path, headers=headers, timeout=120.0)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach Flare at {url}: {exc}", err=True)
        raise typer.Exit(1)
    if answer.status_code != 202:
        typer.echo(f"error: {answer.status_code} {answer.text}", err=True)
        raise typer.Exit(1)
    offered = answer.json().get("offered", 0)
    typer.echo(f"offered {offered} documents to subscription {subscription}; the dispatcher"
               " sends those it does not have yet")


@cli.command()
def replay(app_id: Optional[str] = typer.Option(
               None, "--app-id", help="Rebuild into this app id (default: the configured one,"
               " which must have no process running)."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Only report what"
                                        " subscribers would be sent; write nothing."),
           as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
           config: Optional[Path] = CONFIG_OPTION) -> None:
    """Rebuild the tables from the topics into an app id and offer subscribers what they
    are missing (SPEC §10); nothing they already have is sent again."""
    try:
        settings = load(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    from app.replay import run
    from streams.replay import ReplayError

    from aiokafka.errors import KafkaError

    try:
        run(settings, app_id or settings.app_id, dry_run, as_json)
    except ReplayError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except KafkaError as exc:
        typer.echo(f"error: Kafka at {settings.kafka_bootstrap}: {exc!r}", err=True)
        raise typer.Exit(1)


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
