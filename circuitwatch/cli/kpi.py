"""`circuitwatch kpi`: the weekly KPI export from the outcome store or an outcomes file."""

from __future__ import annotations

from pathlib import Path

import click

from circuitwatch.cli.core import DEFAULT_STORE
from circuitwatch.cli.errors import CliError, user_errors


@click.command(name="kpi")
@click.option(
    "--week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W48 (default: the week of the newest cancellation)."
)
@click.option(
    "--tz", default="UTC", show_default=True, help="IANA time zone the week is counted in (its local Monday 00:00)."
)
@click.option(
    "--from",
    "source",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="URL|FILE",
    help="Outcome store (SQLAlchemy URL or SQLite .db path) or an outcomes JSONL file from `replay --outcomes`.",
)
@click.option(
    "--out", "out_dir", default="kpi", show_default=True, type=click.Path(file_okay=False), help="Output directory."
)
@click.option("--config", type=click.Path(dir_okay=False), help="circuit.yaml with the leg SLAs (default: built in).")
@click.option(
    "--minutes-per-pick",
    type=click.FloatRange(min=0),
    default=None,
    help="Staff minutes one pick costs, for the labour of picks after cancel [default: 3].",
)
@click.option("--store", "stores", multiple=True, metavar="ID", help="Only these stores (repeatable).")
def kpi(
    week: str | None,
    tz: str,
    source: str,
    out_dir: str,
    config: str | None,
    minutes_per_pick: float | None,
    stores: tuple[str, ...],
) -> None:
    """Write the weekly KPI export: a CSV per table, one Parquet file, an XLSX
    workbook and an HTML report with charts, per store and for all stores."""
    from sqlalchemy.exc import SQLAlchemyError

    from circuitwatch.metrics.kpi import DEFAULT_MINUTES_PER_PICK, KpiError, export_week
    from circuitwatch.streams.outcome_store import store_error

    if "://" not in source and not Path(source).exists():
        raise CliError(f"{source}: no such outcome store or outcomes file (see --from)")
    with user_errors():
        try:
            report = export_week(
                source,
                week,
                Path(out_dir),
                tz,
                config,
                minutes_per_pick=DEFAULT_MINUTES_PER_PICK if minutes_per_pick is None else minutes_per_pick,
                stores=list(stores) or None,
            )
        except KpiError as e:
            raise CliError(str(e)) from None
        except (SQLAlchemyError, ModuleNotFoundError) as e:
            raise CliError(store_error(source, "read", e)) from None
    click.echo(report.headline())
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {len(report.files)} files to {out_dir}: report {report.html.name}, workbook {report.xlsx.name}")
