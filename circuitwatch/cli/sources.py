"""`map` (a mapping over captured payloads, offline) and `ingest` (the standalone HTTP ingest)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import IO

import click

from circuitwatch.cli.errors import CliError, user_errors
from circuitwatch.config import ConfigError
from circuitwatch.events import Event, encode
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.dead_letter import DeadLetter
from circuitwatch.streams.sources.common import Mapped, iter_payloads
from circuitwatch.streams.sources.mapping import available, find_mapping
from circuitwatch.streams.sources.shopify import Delivery, ShopifyMapper
from circuitwatch.streams.sources.signature import SecretError, load_secret

mappings_dir_option = click.option(
    "--mappings-dir",
    "mappings_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Directory of your own mappings/*.yaml (searched before the shipped ones).",
)


@click.command("map")
@click.option("--source", "source", required=True, help="Mapping name (shopify, generic-oms, ...) or a .yaml path.")
@click.option("--topic", default=None, help="Shopify topic (default: from the file name, orders__cancelled.json).")
@click.option(
    "--dead-letter", "dead_letter", type=click.Path(dir_okay=False), default=None, help="Also append rejects."
)
@mappings_dir_option
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def map_cmd(
    source: str, topic: str | None, dead_letter: str | None, mappings_dirs: tuple[str, ...], files: tuple[str, ...]
) -> None:
    """Map captured payloads offline: canonical events to stdout, every reject to stderr.

    FILE holds one JSON document, a JSON array or JSON lines. Exits 1 when anything was rejected,
    so a mapping can be checked against real captures in CI.
    """
    stats = TrackerStats()
    letters = DeadLetter(dead_letter, stats, echo=sys.stderr)
    total = Mapped()
    ignored = 0
    with user_errors():
        if source == "shopify":
            mapper = ShopifyMapper()
            for f in files:
                raw = Path(f).read_bytes()
                t = topic or Path(f).name.split(".", 1)[0].replace("__", "/")
                for line, payload in iter_payloads(raw, f):
                    result = mapper.map(Delivery(t, payload, ref=f, line=line))
                    ignored += _emit(result, letters, sys.stdout)
                    total.extend(result)
            for r in mapper.expire(0):
                letters(r)
                total.rejected.append(r)
        else:
            mapping = find_mapping(source, list(mappings_dirs))
            for f in files:
                raw = Path(f).read_bytes()
                for line, payload in iter_payloads(raw, f):
                    result = mapping.map_payload(payload, file=f, line=line)
                    ignored += _emit(result, letters, sys.stdout)
                    total.extend(result)
    letters.close()
    click.echo(f"{len(total.events)} events, {len(total.rejected)} rejected, {ignored} ignored", err=True)
    if total.rejected:
        sys.exit(1)


def _emit(result: Mapped, letters: DeadLetter, out: IO[str]) -> int:
    for ev in result.events:
        out.write(encode(ev).decode() + "\n")
    for r in result.rejected:
        letters(r)
    if result.ignored:
        click.echo(f"ignored: {result.ignored}", err=True)
    return 1 if result.ignored else 0


@click.command("ingest")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8089, show_default=True, help="0 picks a free port.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Append canonical events (JSONL).")
@click.option("--outcomes", type=click.Path(dir_okay=False), default=None, help="Append outcome records (JSONL).")
@click.option(
    "--dead-letter",
    "dead_letter",
    type=click.Path(dir_okay=False),
    default="dead-letter.jsonl",
    show_default=True,
    help="Where rejected payloads go, with their reason.",
)
@click.option("--mapping", "mapping_names", multiple=True, help="Mappings served at /ingest/NAME (default: all).")
@mappings_dir_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="circuit.yaml.")
@click.option("--park-seconds", type=click.FloatRange(1), default=3600, show_default=True,
              help="How long a fulfillment-order webhook waits for its order id before it is rejected.")  # fmt: skip
def ingest_cmd(
    host: str,
    port: int,
    out: str | None,
    outcomes: str | None,
    dead_letter: str,
    mapping_names: tuple[str, ...],
    mappings_dirs: tuple[str, ...],
    config_path: str | None,
    park_seconds: float,
) -> None:
    """Embedded mode: receive webhooks over HTTP, run the tracker, serve /metrics.

    POST /webhooks/shopify (secret from SHOPIFY_WEBHOOK_SECRET or SHOPIFY_WEBHOOK_SECRET_FILE),
    POST /ingest/NAME for systems mapped by mappings/NAME.yaml, GET /metrics, GET /healthz.
    """
    from aiohttp import web

    from circuitwatch.config import load_config
    from circuitwatch.metrics.prometheus import build_registry
    from circuitwatch.streams.ingest_http import WebhookIngest, make_app
    from circuitwatch.streams.outcome import Outcome
    from circuitwatch.streams.outcome import encode as encode_outcome
    from circuitwatch.streams.tracker import CircuitTracker

    with user_errors():
        try:
            secret = load_secret()
        except SecretError as e:
            raise CliError(str(e)) from None
        config = load_config(config_path)
        names = list(mapping_names) or sorted(available(list(mappings_dirs)))
        try:
            mappings = {n: find_mapping(n, list(mappings_dirs)) for n in names}
        except ConfigError as e:
            raise CliError(str(e)) from None
    if secret is None:
        click.echo("warning: no SHOPIFY_WEBHOOK_SECRET(_FILE): every Shopify webhook will be refused (401)", err=True)

    stats = TrackerStats()
    tracker = CircuitTracker(config, stats)
    letters = DeadLetter(dead_letter, stats)
    ingest = WebhookIngest(secret=secret, dead_letter=letters, mappings=mappings)
    registry = build_registry(stats, tracker.rules.legs)
    ingest.register(registry)
    events_fh = open(out, "ab") if out else None  # noqa: SIM115 - lives as long as the server
    outcomes_fh = open(outcomes, "ab") if outcomes else None  # noqa: SIM115

    def sink(events: list[Event]) -> None:
        for ev in events:
            if events_fh is not None:
                events_fh.write(encode(ev) + b"\n")
            for outcome in tracker.on_event(ev):
                if outcomes_fh is not None:
                    outcomes_fh.write(encode_outcome(outcome) + b"\n")
        for fh in (events_fh, outcomes_fh):
            if fh is not None:
                fh.flush()

    async def serve() -> None:
        runner = web.AppRunner(make_app(ingest, sink, registry=registry))
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        click.echo(f"listening on http://{host}:{bound} (POST /webhooks/shopify, /ingest/NAME; GET /metrics)")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=5.0)
                sink_outcomes(tracker.advance_clock(time.time()))
                ingest.expire(park_seconds)
        finally:
            ingest.expire(0)
            await runner.cleanup()

    def sink_outcomes(items: list[Outcome]) -> None:
        if outcomes_fh is not None and items:
            for outcome in items:
                outcomes_fh.write(encode_outcome(outcome) + b"\n")
            outcomes_fh.flush()

    try:
        asyncio.run(serve())
    except OSError as e:
        raise CliError(f"cannot listen on {host}:{port} ({e.strerror})", exit_code=1) from None
    finally:
        letters.close()
        for fh in (events_fh, outcomes_fh):
            if fh is not None:
                fh.close()
    click.echo(f"stopped: {sum(stats.events.values())} events, {letters.count} rejected", err=True)
