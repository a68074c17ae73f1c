"""`simulate`, `replay` and `demo`: the tracker on files, no broker needed."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import IO, Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from circuitwatch.cli.errors import CliError, user_errors
from circuitwatch.cli.summary import LEG_HEADER, STORE_HEADER, Summary, markdown_table, rich_table
from circuitwatch.config import CircuitConfig, load_config
from circuitwatch.events import encode
from circuitwatch.metrics.prometheus import MetricsServer, build_registry, write_exposition
from circuitwatch.streams.dead_letter import DeadLetter
from circuitwatch.streams.outcome import encode as encode_outcome
from circuitwatch.streams.replay import ReplayResult, replay_files, run_events, write_outcomes
from circuitwatch.streams.simulate import SimConfig, Simulation, simulate
from circuitwatch.streams.tracker import CircuitTracker

DEFAULT_STORE = "circuitwatch-outcomes.db"

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="circuit.yaml with the leg table and SLAs (default: the contract's).",
)


def _load(config_path: str | None) -> CircuitConfig:
    with user_errors():
        return load_config(config_path)


def _leg_rate(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    rates = {}
    for value in values:
        leg, sep, rate = value.partition("=")
        try:
            rates[leg] = float(rate)
        except ValueError:
            sep = ""
        if not sep or not 0 <= rates.get(leg, -1) <= 1:
            raise click.BadParameter(f"{value!r}: expected LEG=RATE with RATE in [0, 1], e.g. wms=0.8")
    return rates


def _sim_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--orders", type=click.IntRange(1), default=5000, show_default=True, help="Orders in the day."
            ),
            click.option("--seed", type=int, default=7, show_default=True, help="Random seed (same seed, same day)."),
            click.option("--stores", type=click.IntRange(1, 999), default=12, show_default=True),
            click.option(
                "--day", type=click.DateTime(["%Y-%m-%d"]), default="2026-11-27", show_default=True, help="UTC day."
            ),
            click.option(
                "--cancel-rate", type=click.FloatRange(0, 1), default=0.12, show_default=True, help="Orders cancelled."
            ),
            click.option(
                "--failure-rate",
                type=click.FloatRange(0, 1),
                default=0.06,
                show_default=True,
                help="Chance that an owed leg of a cancelled order fails (never acked, late, contradicted, manual).",
            ),
            click.option(
                "--leg-failure",
                multiple=True,
                callback=_leg_rate,
                metavar="LEG=RATE",
                help="Per-leg failure rate, e.g. --leg-failure wms=0.9 for a WMS outage. Repeatable.",
            ),
            click.option("--duplicate-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True),
            click.option(
                "--out-of-order-rate",
                type=click.FloatRange(0, 1),
                default=0.05,
                show_default=True,
                help="Events that arrive late but within the allowed lateness.",
            ),
            click.option(
                "--late-arrival-rate",
                type=click.FloatRange(0, 1),
                default=0.002,
                show_default=True,
                help="Events that arrive behind the watermark (records get corrected).",
            ),
        ]
    ):
        f = option(f)
    return f


def _sim_config(kw: dict[str, Any]) -> SimConfig:
    day = kw["day"]
    return SimConfig(
        orders=kw["orders"],
        seed=kw["seed"],
        stores=kw["stores"],
        day=date(day.year, day.month, day.day),
        cancel_rate=kw["cancel_rate"],
        failure_rate=kw["failure_rate"],
        leg_failure=kw["leg_failure"],
        duplicate_rate=kw["duplicate_rate"],
        out_of_order_rate=kw["out_of_order_rate"],
        late_arrival_rate=kw["late_arrival_rate"],
    )


def _unknown_legs(sim_cfg: SimConfig, config: CircuitConfig) -> None:
    unknown = sorted(set(sim_cfg.leg_failure) - set(config.legs))
    if unknown:
        raise CliError(f"--leg-failure: unknown leg {unknown[0]!r}; legs are {', '.join(config.legs)}")


def write_jsonl(sim: Simulation, out: IO[bytes]) -> None:
    for ev in sim.events:
        out.write(encode(ev) + b"\n")


def write_truth(sim: Simulation, path: str | Path) -> None:
    """The simulator's injected ground truth, one expected outcome per line."""
    Path(path).write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in sim.truth))


@click.command("simulate")
@_sim_options
@config_option
@click.option("--truth", type=click.Path(dir_okay=False), help="Also write the injected ground truth (JSONL).")
def simulate_cmd(config_path: str | None, truth: str | None, **kw: Any) -> None:
    """Write a synthetic multi-store BOPIS day as canonical events (JSONL) to stdout.

    Cancellations come from the storefront, the store and the OMS; handoff failures
    are injected per leg (never acked, late, contradicted, manual workaround), with
    out-of-order arrivals, late arrivals and duplicates.

    \b
    circuitwatch simulate --orders 20000 --seed 7 > events.jsonl
    circuitwatch simulate --leg-failure wms=0.9 --truth truth.jsonl > outage.jsonl
    """
    config = _load(config_path)
    sim_cfg = _sim_config(kw)
    _unknown_legs(sim_cfg, config)
    sim = simulate(sim_cfg, config)
    try:
        write_jsonl(sim, sys.stdout.buffer)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` is fine
        sys.stderr.close()
        return
    if truth:
        write_truth(sim, truth)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--outcomes", type=click.Path(dir_okay=False, allow_dash=True), help="Write one outcome record a circuit."
)
@click.option("--metrics-out", type=click.Path(dir_okay=False), help="Write the final Prometheus exposition text.")
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False),
    default="circuitwatch-dead-letter.jsonl",
    show_default=True,
    help="Where rejected lines are kept (created on the first reject).",
)
@click.option(
    "--store",
    default=None,
    metavar="URL|PATH",
    help=f"Outcome store the records are upserted into (SQLite file or SQLAlchemy URL), read by `kpi`"
    f" [default: {DEFAULT_STORE}, skipped with a warning if it cannot be written].",
)
@click.option("--no-store", is_flag=True, help="Do not write the outcome store.")
@config_option
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def replay(
    files: tuple[str, ...],
    outcomes: str | None,
    metrics_out: str | None,
    dead_letter: str,
    store: str | None,
    no_store: bool,
    config_path: str | None,
    quiet: bool,
) -> None:
    """Run canonical events (JSONL; `-` is stdin; .gz is fine) through the tracker in event time.

    Each rejected line is reported as FILE:LINE: FIELD: REASON on stderr, kept in
    the dead letter, and counted; the rest is processed. Exit status 1 when any
    line was rejected.
    """
    tracker = CircuitTracker(_load(config_path))
    dlq = DeadLetter(dead_letter, tracker.stats, echo=sys.stderr)
    with user_errors():
        try:
            result = replay_files(tracker, files, dlq)
        finally:
            dlq.close()
        if outcomes:
            if outcomes == "-":
                for o in result.ordered():
                    sys.stdout.buffer.write(encode_outcome(o) + b"\n")
            else:
                write_outcomes(result.ordered(), outcomes)
        if metrics_out:
            write_exposition(build_registry(tracker.stats, tracker.rules.legs), metrics_out)
        if store is not None:
            _upsert(store, result)  # asked for: a failure is an error
        elif not no_store:
            try:
                _upsert(DEFAULT_STORE, result)
            except CliError as e:
                click.echo(f"warning: {e.format_message()}; outcomes not stored (see --store)", err=True)
    if not quiet:
        states = ", ".join(f"{n} {s}" for s, n in sorted(result.states().items()))
        click.echo(f"{result.events} events, {len(result.outcomes)} circuits ({states or 'none'})", err=True)
    if dlq.count:
        raise CliError(f"{dlq.count} line(s) rejected; kept in {dead_letter}", exit_code=1)


@click.command()
@click.option("--orders", type=click.IntRange(1), default=6000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.06, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="circuitwatch-demo", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address of /metrics.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True, help="0 picks a free port.")
@click.option("--serve", is_flag=True, help="Keep serving /metrics until interrupted.")
@config_option
def demo(
    orders: int,
    seed: int,
    failure_rate: float,
    out_dir: str,
    host: str,
    port: int,
    serve: bool,
    config_path: str | None,
) -> None:
    """Simulate a multi-store day with injected handoff failures and watch it.

    No broker needed: the same tracker as `replay` and the Kafka worker, with
    /metrics served while it runs, a summary per leg and store, and outcomes,
    metrics and a report written under --out.
    """
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 110)  # a log or a pipe: keep the tables whole
    config = _load(config_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_day(SimConfig(orders=orders, seed=seed, failure_rate=failure_rate), config, console)
    with open(out / "events.jsonl", "wb") as fh:
        write_jsonl(sim, fh)
    write_truth(sim, out / "truth.jsonl")

    tracker = CircuitTracker(config)
    registry = build_registry(tracker.stats, tracker.rules.legs)
    server = _serve(registry, host, port, console)
    try:
        console.print(f"serving [bold]{server.url}[/bold]")
        with Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("events", total=len(sim.events))
            result = run_events(tracker, iter(sim.events), progress=lambda n: bar.advance(task, n))
        write_outcomes(result.ordered(), out / "outcomes.jsonl")
        write_exposition(registry, out / "metrics.prom")
        _upsert(out / "outcomes.db", result)
        summary = Summary.of(result.outcomes.values())
        legs = summary.leg_rows(tracker.rules.legs)
        stores = summary.store_rows()
        console.print(rich_table("Legs: how each handoff did", LEG_HEADER, legs))
        console.print(rich_table("Stores, worst first", STORE_HEADER, stores))
        _write_report(out / "report.md", result, summary, legs, stores, len(sim.events))
        console.print(
            f"{len(sim.events)} events, {len(result.outcomes)} cancellations: "
            + ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
        )
        kpi = _kpi_export(result, out / "kpi", config, console)
        console.print(f"wrote {out}/: outcomes.jsonl, outcomes.db, metrics.prom, report.md, events.jsonl, truth.jsonl")
        if kpi is not None:
            console.print(f"weekly KPI export: {kpi}")
        if serve:
            console.print(f"serving {server.url} until Ctrl-C")
            _wait_forever()
    finally:
        server.close()


def _upsert(target: str | Path, result: ReplayResult) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from circuitwatch.streams.outcome_store import OutcomeStore, store_error

    try:
        OutcomeStore(target).upsert(result.ordered())
    except (SQLAlchemyError, ModuleNotFoundError) as e:
        raise CliError(store_error(target, "write", e)) from None


def _kpi_export(result: ReplayResult, out: Path, config: CircuitConfig, console: Console) -> Path | None:
    """This week's KPI export, as the ops review would get it (needs the `kpi` extra)."""
    try:
        from circuitwatch.metrics.kpi import KpiError, export_week
    except ModuleNotFoundError as e:
        console.print(f"[yellow]no KPI export: {e.name} is not installed (pip install 'circuitwatch[kpi]')[/yellow]")
        return None
    try:
        report = export_week(result.ordered(), None, out, config=config)
    except KpiError as e:
        console.print(f"[yellow]no KPI export: {e}[/yellow]")
        return None
    console.print(report.headline())
    return report.html


def simulate_day(sim_cfg: SimConfig, config: CircuitConfig, console: Console) -> Simulation:
    with console.status(f"simulating {sim_cfg.orders} orders across {sim_cfg.stores} stores"):
        return simulate(sim_cfg, config)


def _serve(registry: Any, host: str, port: int, console: Console) -> MetricsServer:
    try:
        return MetricsServer(registry, host=host, port=port)
    except OSError as e:
        if port == 0:
            raise CliError(f"cannot serve /metrics on {host}: {e.strerror}") from None
        console.print(f"[yellow]port {port} is busy ({e.strerror}); using a free port[/yellow]")
        return MetricsServer(registry, host=host, port=0)


def _wait_forever() -> None:
    """Until Ctrl-C (SIGINT) or SIGTERM (a service manager, a container stop)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def _write_report(
    path: Path, result: ReplayResult, summary: Summary, legs: list[list[str]], stores: list[list[str]], events: int
) -> None:
    states = summary.states
    total = len(result.outcomes) or 1
    phantom = sum(o.phantom_units for o in result.outcomes.values())
    lines = [
        "# circuitwatch demo report",
        "",
        f"{events} events; {len(result.outcomes)} cancellations; "
        f"{states['broken']} broken ({states['broken'] / total:.1%}), "
        f"{states['closed_late']} closed late, {states['closed']} closed on time; "
        f"{phantom} units held past the inventory deadline.",
        "",
        "## Legs",
        "",
        markdown_table(LEG_HEADER, legs),
        "",
        "## Stores, worst first",
        "",
        markdown_table(STORE_HEADER, stores),
        "",
        "Outcome records: `outcomes.jsonl`; metrics at the end: `metrics.prom`; "
        "the simulator's injected ground truth: `truth.jsonl`.",
        "",
    ]
    path.write_text("\n".join(lines))
