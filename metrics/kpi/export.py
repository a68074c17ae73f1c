"""`export_week`: load outcome records, compute one ISO week, write every file.

Nothing is written when there is nothing to report (an empty week, an unknown
store): the caller gets a `KpiError` saying why, instead of an empty file that
would be forwarded as if the week had gone well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from circuitwatch.config import CircuitConfig, load_config
from circuitwatch.metrics.kpi import charts as charts_mod
from circuitwatch.metrics.kpi.figures import (
    ALL,
    Week,
    compute_week,
    leg_order,
    stores_index,
    week_over_week,
    worst_stores,
)
from circuitwatch.metrics.kpi.frames import Frames, build_frames, read_outcomes_file
from circuitwatch.metrics.kpi.report import render
from circuitwatch.metrics.kpi.weeks import KpiError, Window, previous, week_of, window
from circuitwatch.metrics.kpi.writers import atomic_path, write_csvs, write_parquet, write_xlsx
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.outcome_store import OutcomeStore, safe_url

DEFAULT_MINUTES_PER_PICK = 3.0
Source = OutcomeStore | str | Path | Iterable[Outcome]


@dataclass
class KpiReport:
    """What was written, and the tables behind it."""

    window: Window
    tables: dict[str, pd.DataFrame]
    charts: dict[str, bytes]
    html: Path
    xlsx: Path
    parquet: Path
    csv: list[Path]
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.html, self.xlsx, self.parquet, *self.csv]

    def headline(self) -> str:
        s = self.tables["summary"].loc[ALL].to_dict()
        return (
            f"{self.window.week}: {int(s['cancellations'])} cancellations, "
            f"{s['closed_on_time_share']:.1%} closed on time, {int(s['broken'])} broken, "
            f"{s['phantom_unit_hours']:.1f} phantom unit-hours, {int(s['sync_debt_circuits'])} circuits of sync debt"
        )


def _config(config: CircuitConfig | str | Path | None) -> CircuitConfig:
    return config if isinstance(config, CircuitConfig) else load_config(config)


def _is_url(text: str) -> bool:
    return "://" in text or text.endswith((".db", ".sqlite", ".sqlite3"))


def load_outcomes(source: Source, win: Window | None = None) -> list[Outcome]:
    """Records from a store (or its URL / .db path), an outcomes JSONL(.gz) file, or memory.

    From a store only what the week needs is read: the week and the one before,
    plus older circuits that did not close on time (sync debt, phantom hours).
    """
    if isinstance(source, str | Path) and _is_url(str(source)):
        if "://" not in str(source) and not Path(source).exists():
            raise KpiError(f"{safe_url(source)}: no such outcome store")
        with OutcomeStore(source) as store:
            return load_outcomes(store, win)
    if isinstance(source, OutcomeStore):
        if win is None:
            return source.outcomes()
        return source.outcomes(previous(win).start.to_pydatetime(), win.end.to_pydatetime(), unfinished_since=True)
    if isinstance(source, str | Path):
        return read_outcomes_file(source)
    return list(source)


def export_week(
    source: Source,
    week: str | None = None,
    out_dir: str | Path = "kpi",
    tz: str = "UTC",
    config: CircuitConfig | str | Path | None = None,
    *,
    minutes_per_pick: float = DEFAULT_MINUTES_PER_PICK,
    stores: Sequence[str] | None = None,
) -> KpiReport:
    """Write the KPI export of one ISO week (None: the week of the newest cancellation) to `out_dir`."""
    if minutes_per_pick < 0:
        raise KpiError("--minutes-per-pick cannot be negative")
    cfg = _config(config)
    sla = {name: leg.sla for name, leg in cfg.legs.items()}
    win = window(week, tz) if week is not None else None
    if win is None and isinstance(source, str | Path | OutcomeStore) and not _is_file(source):
        win = _newest_week(source, tz)
    frames = build_frames(load_outcomes(source, win), sla)
    if len(frames) == 0:
        raise KpiError(f"{_name(source)}: no outcome records")
    if win is None:
        win = window(week_of(frames.circuits["cancelled_at"].max(), tz), tz)
    frames = _select_stores(frames, win, stores)
    return _export(frames, win, cfg, Path(out_dir), minutes_per_pick, _name(source))


def _is_file(source: object) -> bool:
    return isinstance(source, str | Path) and not _is_url(str(source))


def _newest_week(source: OutcomeStore | str | Path, tz: str) -> Window | None:
    if isinstance(source, OutcomeStore):
        newest = source.newest_cancellation()
    else:
        if "://" not in str(source) and not Path(source).exists():
            raise KpiError(f"{safe_url(source)}: no such outcome store")
        with OutcomeStore(source) as store:
            newest = store.newest_cancellation()
    if newest is None:
        return None
    return window(week_of(pd.Timestamp(newest), tz), tz)


def _name(source: Source) -> str:
    if isinstance(source, OutcomeStore):
        return safe_url(source.url)
    if isinstance(source, str | Path):
        return safe_url(source) if _is_url(str(source)) else str(source)
    return "the outcome records"


def _select_stores(frames: Frames, win: Window, stores: Sequence[str] | None) -> Frames:
    c = frames.circuits
    start, end = win.start.tz_convert("UTC"), win.end.tz_convert("UTC")
    in_week = c[(c["cancelled_at"] >= start) & (c["cancelled_at"] < end)]
    if in_week.empty:
        first = week_of(c["cancelled_at"].min(), win.tz)
        last = week_of(c["cancelled_at"].max(), win.tz)
        span = first if first == last else f"{first} to {last}"
        raise KpiError(f"no cancellations in {win.describe()}; the outcome records cover {span}")
    if not stores:
        return frames
    present = set(in_week["store_id"])
    missing = [s for s in stores if s not in present]
    if missing:
        raise KpiError(
            f"no cancellations for store {', '.join(missing)} in {win.week}; "
            f"stores with cancellations that week: {', '.join(sorted(present))}"
        )
    keep = set(stores)
    return Frames(c[c["store_id"].isin(keep)], frames.legs[frames.legs["store_id"].isin(keep)])


def _export(frames: Frames, win: Window, cfg: CircuitConfig, out: Path, mpp: float, source: str) -> KpiReport:
    prev_win = previous(win)
    c = frames.circuits
    prev_start = prev_win.start.tz_convert("UTC")
    recent = c[(c["cancelled_at"] >= prev_start) & (c["cancelled_at"] < win.end.tz_convert("UTC"))]
    stores = stores_index(recent["store_id"])
    legs = leg_order(cfg.legs, frames)
    this = compute_week(frames, win, stores, legs, mpp)
    prev = compute_week(frames, prev_win, stores, legs, mpp)
    worst = worst_stores(this.summary)
    tables: dict[str, pd.DataFrame] = {
        "summary": this.summary,
        "origins": this.origins,
        "legs": this.legs,
        "daily": this.daily,
        "sync_debt": this.sync_debt,
        "worst_stores": worst,
        "week_over_week": week_over_week(this, prev),
    }
    notes = _notes(this, prev)
    chart_png = charts_mod.all_charts(this.daily, this.legs, this.reconciliation_s, worst)

    out.mkdir(parents=True, exist_ok=True)
    prefix = f"kpi-{win.week}"
    charts_dir = out / "charts"
    charts_dir.mkdir(exist_ok=True)
    for name, png in chart_png.items():
        with atomic_path(charts_dir / f"{prefix}-{name}.png") as tmp:
            tmp.write_bytes(png)
    csv = write_csvs(tables, out, prefix)
    parquet = tables["week_over_week"].assign(tz=win.tz)
    parquet_path = write_parquet(parquet, out / f"{prefix}.parquet")
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    about = {
        "report": f"circuitwatch weekly KPI export {win.week}",
        "week": win.describe(),
        "time zone": win.tz,
        "source": source,
        "generated at": generated,
        "minutes per pick": f"{mpp:g}",
        "SLAs": ", ".join(f"{k} {v.sla:g}s" for k, v in cfg.legs.items()),
        "notes": " / ".join(notes) or "-",
    }
    xlsx = write_xlsx(tables, about, out / f"{prefix}.xlsx")
    page = render(
        f"Cancellation circuit — weekly KPIs {win.week}",
        f"{win.describe()} · source {source} · generated {generated}",
        tables,
        prev.summary,
        chart_png,
        notes,
    )
    html_path = out / f"{prefix}.html"
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return KpiReport(win, tables, chart_png, html_path, xlsx, parquet_path, csv, notes)


def _notes(this: Week, prev: Week) -> list[str]:
    s, p = this.summary, prev.summary
    quiet = s.index[(s["cancellations"] == 0) & (p["cancellations"].reindex(s.index, fill_value=0) > 0)]
    notes = []
    if len(quiet):
        notes.append(f"no cancellations this week (but some the week before) at: {', '.join(map(str, quiet))}")
    if "unknown" in s.index:
        notes.append("some circuits carry no store id; they are reported under 'unknown'")
    still_open = int(s["open"].to_dict()[ALL])
    if still_open:
        notes.append(f"{still_open} circuits were still open (deadlines not reached) in the records")
    return notes
