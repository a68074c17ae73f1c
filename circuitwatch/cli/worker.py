"""`circuitwatch worker` and `circuitwatch produce`: the Kafka runtime's commands.

Faust and aiokafka are imported only when these commands run.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from circuitwatch.streams.faust.settings import WorkerSettings

from circuitwatch.cli.errors import CliError, user_errors


def _settings(**overrides: Any) -> WorkerSettings:
    from circuitwatch.streams.faust.settings import SettingsError, from_env

    try:
        return from_env(None, **overrides)
    except SettingsError as e:
        raise CliError(str(e)) from None


def _kafka_available() -> None:
    try:
        import aiokafka  # noqa: F401
        import faust  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise CliError(
            f"the Kafka runtime needs the 'kafka' extra: pip install 'circuitwatch[kafka]' ({e.name})"
        ) from None


@click.command()
@click.option("--broker", help="kafka://host:port (env CIRCUITWATCH_BROKER; default kafka://127.0.0.1:9092)")
@click.option("--app-id", help="consumer group and changelog prefix (env CIRCUITWATCH_APP_ID; default circuitwatch)")
@click.option(
    "--partitions", type=int, help="partitions of the topics; all workers must agree (env CIRCUITWATCH_PARTITIONS)"
)
@click.option("--metrics-host", help="address /metrics binds to (env CIRCUITWATCH_METRICS_HOST; default 127.0.0.1)")
@click.option(
    "--metrics-port", type=int, help="/metrics port, 0 = any free (env CIRCUITWATCH_METRICS_PORT; default 9464)"
)
@click.option(
    "--clock",
    type=click.Choice(["wall", "event"]),
    help="wall: deadlines also pass with real time (live); event: event time only, for backfills"
    " (env CIRCUITWATCH_CLOCK)",
)
@click.option("--store", help="table store: memory:// (default) or rocksdb:// (env CIRCUITWATCH_STORE)")
@click.option(
    "--webhooks-port",
    type=int,
    help="also serve POST /webhooks/shopify and /ingest/<mapping> on this port, 0 = any free"
    " (env CIRCUITWATCH_WEBHOOKS_PORT; host: CIRCUITWATCH_WEBHOOKS_HOST, default 127.0.0.1;"
    " secret: SHOPIFY_WEBHOOK_SECRET or SHOPIFY_WEBHOOK_SECRET_FILE)",
)
@click.option("--config", "config", type=click.Path(dir_okay=False), help="circuit.yaml (env CIRCUITWATCH_CONFIG)")
@click.option(
    "--outcome-store",
    help="where outcome records are upserted for `kpi`: SQLite file or SQLAlchemy URL, or off"
    " (env CIRCUITWATCH_OUTCOME_STORE; default circuitwatch-outcomes.db)",
)
@click.option("-l", "--loglevel", help="debug, info, warning (default), error (env CIRCUITWATCH_LOGLEVEL)")
def worker(
    broker: str | None,
    app_id: str | None,
    partitions: int | None,
    metrics_host: str | None,
    metrics_port: int | None,
    clock: str | None,
    store: str | None,
    webhooks_port: int | None,
    config: str | None,
    outcome_store: str | None,
    loglevel: str | None,
) -> None:
    """Run the Faust worker on Kafka: raw topics in, circuit outcomes out.

    Start more workers with the same --app-id to share the partitions; a
    restarted worker restores its state from the table's changelog.
    """
    _kafka_available()
    settings = _settings(
        broker=broker,
        app_id=app_id,
        partitions=partitions,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        clock=clock,
        store=store,
        webhooks_port=webhooks_port,
        config=config,
        outcome_store=outcome_store,
        loglevel=loglevel,
    )
    from circuitwatch.config import load_config

    with user_errors():
        load_config(settings.config)  # a bad circuit.yaml is a one-line error, before any connection
    if settings.outcome_store != "off":
        _check_outcome_store(settings.outcome_store)
    if settings.webhooks_port is not None:
        _check_webhook_secret()
    from circuitwatch.streams.faust.run import run_worker
    from circuitwatch.streams.faust.settings import SettingsError

    try:
        run_worker(settings)
    except OSError as e:
        raise CliError(f"worker: {e.strerror or e}", exit_code=1) from None
    except SettingsError as e:  # the topics as found on the broker (partition count, visibility)
        raise CliError(f"worker: {e}", exit_code=1) from None


def _check_outcome_store(url: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from circuitwatch.streams.outcome_store import OutcomeStore, store_error

    try:
        OutcomeStore(url).close()
    except (SQLAlchemyError, OSError, ModuleNotFoundError) as e:
        raise CliError(store_error(url, "open", e)) from None


def _check_webhook_secret() -> None:
    from circuitwatch.streams.sources.signature import SecretError, load_secret

    try:
        secret = load_secret()
    except SecretError as e:
        raise CliError(str(e)) from None
    if secret is None:
        click.echo("warning: no SHOPIFY_WEBHOOK_SECRET(_FILE): /webhooks/shopify refuses every request", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--topic", help="topic to write every line to (default: bopis.raw.<source> of each line)")
@click.option("--broker", help="kafka://host:port (env CIRCUITWATCH_BROKER)")
@click.option("--partitions", type=int, help="partitions for topics it creates (env CIRCUITWATCH_PARTITIONS)")
def produce(files: tuple[str, ...], topic: str | None, broker: str | None, partitions: int | None) -> None:
    """Load canonical events (JSONL, - = stdin, .gz ok) into Kafka, keyed by order id."""
    _kafka_available()
    from aiokafka.errors import KafkaError

    from circuitwatch.streams.faust.produce import produce_lines
    from circuitwatch.streams.faust.topics import ensure_topics
    from circuitwatch.streams.reader import open_input

    settings = _settings(broker=broker, partitions=partitions)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries right after topic creation are normal

    async def main() -> tuple[int, dict[str, int]]:
        await ensure_topics(settings)
        total, by_topic = 0, dict[str, int]()
        for path in files:
            with open_input(path) as fh:
                result = await produce_lines(fh, settings, topic=topic)
            total += result.messages
            for name, n in result.by_topic.items():
                by_topic[name] = by_topic.get(name, 0) + n
        return total, by_topic

    with user_errors():
        try:
            total, by_topic = asyncio.run(main())
        except KafkaError as e:
            raise CliError(f"{settings.broker}: {e}", exit_code=1) from None
    detail = ", ".join(f"{name}={n}" for name, n in sorted(by_topic.items()))
    click.echo(f"produced {total} messages to {settings.broker} ({detail})", err=True)
    sys.stdout.flush()
