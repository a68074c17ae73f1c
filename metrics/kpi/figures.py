"""The weekly figures, per store and for all stores, computed with pandas.

Every figure is a groupby over a frame in which each circuit appears twice:
once under its store and once under `ALL`, so the overall row is computed by
the same code as a store's row and cannot drift from it.

Which week a circuit belongs to is decided by its local cancellation time.
Two figures look across the boundary instead: phantom unit-hours are accrued
inside the week (a reservation held from Sunday into Monday is split between the
weeks), and sync debt is what is still open at the week's end, whenever it began.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from circuitwatch.metrics.kpi.frames import Frames
from circuitwatch.metrics.kpi.weeks import Window

ALL = "ALL"
INVENTORY_LEG = "inventory"
STATES = {"closed": "closed_on_time", "closed_late": "closed_late", "broken": "broken", "open": "open"}
LEG_OUTCOMES = ("closed", "late", "breached", "contradicted", "open")
AGE_BUCKETS = ("<1h", "1-4h", "4-24h", "1-3d", "3-7d", ">7d")
_Q = np.array([0.5, 0.95])
_AGE_EDGES = [0.0, 3600.0, 4 * 3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0, np.inf]
TABLES = ("summary", "origins", "legs", "daily", "sync_debt", "worst_stores", "week_over_week")


@dataclass(frozen=True)
class Week:
    """One week's tables, and the data behind the charts."""

    window: Window
    summary: pd.DataFrame  # index store_id (ALL first)
    origins: pd.DataFrame  # index store_id, a column per origin
    legs: pd.DataFrame  # index (store_id, leg)
    daily: pd.DataFrame  # index local day, all stores
    sync_debt: pd.DataFrame  # index store_id, a column per age bucket
    reconciliation_s: pd.Series  # whole-circuit reconciliation times of the week's closed circuits


def _with_all(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df.assign(store_id=ALL), df], ignore_index=True)


def _rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """A share; undefined (NaN), not 0, when nothing could have happened."""
    return numerator / denominator.where(denominator > 0)


def _counts(df: pd.DataFrame, by: list[str], column: str, values: Iterable[str]) -> pd.DataFrame:
    """Occurrences of each value of `column` per group, zero-filled, one column per value."""
    table = df.groupby([*by, column]).size().unstack(column, fill_value=0)
    return table.reindex(columns=list(values), fill_value=0)


def _quantiles(values: pd.Series, keys: pd.Series, prefix: str) -> pd.DataFrame:
    q = values.groupby(keys).quantile(_Q).unstack()
    q = q.reindex(columns=[0.5, 0.95])
    q.columns = [f"{prefix}_p50_s", f"{prefix}_p95_s"]
    return q


def stores_index(stores: Iterable[str]) -> pd.Index:
    return pd.Index([ALL, *sorted(set(stores) - {ALL})], name="store_id")


def compute_week(
    frames: Frames, win: Window, stores: pd.Index, leg_names: Sequence[str], minutes_per_pick: float
) -> Week:
    """All tables of one week for the given stores (ALL first) and legs (in circuit order)."""
    start, end = win.start.tz_convert("UTC"), win.end.tz_convert("UTC")
    circuits, legs = frames.circuits, frames.legs
    in_week = (circuits["cancelled_at"] >= start) & (circuits["cancelled_at"] < end)
    cw = _with_all(circuits[in_week])
    lw = _with_all(legs[(legs["cancelled_at"] >= start) & (legs["cancelled_at"] < end)])
    by_store = cw.groupby("store_id")

    # -- circuits ------------------------------------------------------------
    s = pd.DataFrame(index=stores)
    s["cancellations"] = by_store.size()
    states = _counts(cw, ["store_id"], "state", STATES).rename(columns=STATES)
    s = s.join(states)
    s = s.join(_quantiles(cw["reconciliation_s"], cw["store_id"], "reconciliation"))
    sums = by_store[["phantom_units", "picks_after_cancel", "pickup_attempts_after_cancel", "manual_closures"]].sum()
    s = s.join(sums)
    flags = cw[["phantom_units", "manual_closures"]].gt(0).groupby(cw["store_id"]).sum()
    s["phantom_circuits"] = flags["phantom_units"]
    s["circuits_with_manual_closure"] = flags["manual_closures"]
    inventory = lw[lw["leg"] == INVENTORY_LEG]
    s["inventory_circuits"] = inventory.groupby("store_id").size()
    s["phantom_unit_hours"] = _phantom_unit_hours(frames, start, end)
    debt, debt_legs = _sync_debt(frames, end)
    s["sync_debt_circuits"] = debt.sum(axis=1)
    s["sync_debt_legs"] = debt_legs
    counts = [c for c in s.columns if not c.endswith(("_s", "_hours"))]
    s[counts] = s[counts].fillna(0).astype("int64")
    s["phantom_unit_hours"] = s["phantom_unit_hours"].fillna(0.0)
    for state in STATES.values():
        s[f"{state}_share"] = _rate(s[state], s["cancellations"])
    s["phantom_inventory_rate"] = _rate(s["phantom_circuits"], s["inventory_circuits"])
    s["pick_labour_minutes"] = s["picks_after_cancel"] * float(minutes_per_pick)
    s["manual_closure_share"] = _rate(s["circuits_with_manual_closure"], s["cancellations"])
    summary = s[_SUMMARY_ORDER]

    # -- origins -------------------------------------------------------------
    origin_names = sorted(cw["origin"].unique())
    origins = _counts(cw, ["store_id"], "origin", origin_names).reindex(stores, fill_value=0)
    origins.columns.name = None
    origins["total"] = origins.sum(axis=1)

    # -- legs ----------------------------------------------------------------
    legs_t = _counts(lw, ["store_id", "leg"], "outcome", LEG_OUTCOMES)
    legs_t = legs_t.reindex(pd.MultiIndex.from_product([stores, leg_names], names=["store_id", "leg"]), fill_value=0)
    legs_t.columns.name = None
    legs_t.insert(0, "owed", legs_t.sum(axis=1))
    for outcome, name in (("closed", "on_time"), ("late", "late"), ("breached", "breach"), ("contradicted", "contra")):
        legs_t[f"{name}_rate"] = _rate(legs_t[outcome], legs_t["owed"])
    legs_t = legs_t.rename(columns={"contra_rate": "contradiction_rate"})
    keys = [lw["store_id"], lw["leg"]]
    q = lw["latency_s"].groupby(keys).quantile(_Q).unstack().reindex(columns=[0.5, 0.95])
    q.columns = ["latency_p50_s", "latency_p95_s"]
    legs_t = legs_t.join(q)

    # -- daily (all stores) ------------------------------------------------------
    daily = _daily(cw[cw["store_id"] == ALL], lw[lw["store_id"] == ALL], win)

    reconciliation = cw.loc[cw["store_id"] == ALL, "reconciliation_s"].dropna().reset_index(drop=True)
    return Week(win, summary, origins, legs_t, daily, debt.reindex(stores, fill_value=0), reconciliation)


_SUMMARY_ORDER = [
    "cancellations",
    "closed_on_time",
    "closed_late",
    "broken",
    "open",
    "closed_on_time_share",
    "closed_late_share",
    "broken_share",
    "open_share",
    "reconciliation_p50_s",
    "reconciliation_p95_s",
    "phantom_units",
    "phantom_circuits",
    "inventory_circuits",
    "phantom_inventory_rate",
    "phantom_unit_hours",
    "picks_after_cancel",
    "pick_labour_minutes",
    "pickup_attempts_after_cancel",
    "manual_closures",
    "circuits_with_manual_closure",
    "manual_closure_share",
    "sync_debt_circuits",
    "sync_debt_legs",
]


def _all_first(store: str) -> str:
    return "" if store == ALL else store


def _phantom_unit_hours(frames: Frames, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Units x hours held past the inventory deadline, accrued inside [start, end).

    A reservation never released is held until the end of the window.
    """
    c, legs = frames.circuits, frames.legs
    held = c[(c["phantom_units"] > 0) & (c["cancelled_at"] < end)]
    inv = legs.loc[legs["leg"] == INVENTORY_LEG, ["order_id", "closed_at", "deadline"]]
    held = held.merge(inv, on="order_id", how="left")
    since = held["deadline"].fillna(held["cancelled_at"])
    since = since.where(since > start, start)
    until = held["closed_at"].fillna(end)
    until = until.where(until < end, end)
    hours = (until - since).dt.total_seconds().clip(lower=0.0) / 3600.0 * held["phantom_units"]
    per_store: pd.Series = hours.groupby(held["store_id"]).sum()
    per_store[ALL] = hours.sum()
    return per_store


def _sync_debt(frames: Frames, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """Circuits with a leg past its deadline and still open at `end`, by the circuit's age then."""
    legs = frames.legs
    open_at_end = (
        (legs["cancelled_at"] < end)
        & (legs["deadline"] <= end)
        & (legs["closed_at"].isna() | (legs["closed_at"] > end))
    )
    debt_legs = _with_all(legs[open_at_end])
    circuits = debt_legs.drop_duplicates(["store_id", "order_id"]).copy()
    age = (end - circuits["cancelled_at"]).dt.total_seconds()
    circuits["age"] = pd.cut(age, _AGE_EDGES, right=False, labels=list(AGE_BUCKETS))
    table = circuits.groupby(["store_id", "age"], observed=False).size().unstack("age", fill_value=0)
    table = table.reindex(columns=list(AGE_BUCKETS), fill_value=0)
    table.columns = pd.Index([str(c) for c in table.columns])
    return table, debt_legs.groupby("store_id").size()


def _daily(cw: pd.DataFrame, lw: pd.DataFrame, win: Window) -> pd.DataFrame:
    local = cw.assign(day=cw["cancelled_at"].dt.tz_convert(win.tz).dt.normalize())
    g = local.groupby("day")
    d = pd.DataFrame(index=win.days)
    d["cancellations"] = g.size()
    d["broken"] = local["state"].eq("broken").groupby(local["day"]).sum()
    d["phantom_circuits"] = local["phantom_units"].gt(0).groupby(local["day"]).sum()
    d["phantom_units"] = g["phantom_units"].sum()
    inv_days = lw.loc[lw["leg"] == INVENTORY_LEG, "cancelled_at"].dt.tz_convert(win.tz).dt.normalize()
    d["inventory_circuits"] = inv_days.value_counts()
    breaches = lw[lw["outcome"].isin(["breached", "contradicted"])]
    d["legs_breached"] = breaches["cancelled_at"].dt.tz_convert(win.tz).dt.normalize().value_counts()
    d = d.fillna(0).astype("int64")
    d["phantom_inventory_rate"] = _rate(d["phantom_circuits"], d["inventory_circuits"])
    d.index = win.days.strftime("%Y-%m-%d %a")
    d.index.name = "day"
    return d


def worst_stores(summary: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """Stores ranked by broken circuits, then phantom unit-hours, then sync debt."""
    stores = summary.drop(index=ALL, errors="ignore")
    stores = stores[(stores["cancellations"] > 0) | (stores["sync_debt_circuits"] > 0)]
    ranked = stores.sort_values(
        ["broken", "phantom_unit_hours", "sync_debt_circuits"], ascending=False, kind="stable"
    ).head(n)
    cols = ["cancellations", "broken", "broken_share", "phantom_unit_hours", "picks_after_cancel", "sync_debt_circuits"]
    return ranked[cols]


def figures_long(week: Week) -> pd.DataFrame:
    """Every figure of a week as (store_id, figure, value): the shape week-over-week compares."""
    parts = [week.summary.rename_axis("store_id").reset_index().melt("store_id", var_name="figure")]
    origins = week.origins.drop(columns="total").add_prefix("origin.")
    parts.append(origins.rename_axis("store_id").reset_index().melt("store_id", var_name="figure"))
    legs = week.legs.drop(columns=["latency_p50_s", "latency_p95_s"]).reset_index()
    legs = legs.melt(["store_id", "leg"], var_name="figure")
    legs["figure"] = "leg." + legs["leg"] + "." + legs["figure"]
    parts.append(legs.drop(columns="leg"))
    lat = week.legs[["latency_p50_s", "latency_p95_s"]].reset_index().melt(["store_id", "leg"], var_name="figure")
    lat["figure"] = "leg." + lat["leg"] + "." + lat["figure"]
    parts.append(lat.drop(columns="leg"))
    debt = week.sync_debt.add_prefix("sync_debt.")
    parts.append(debt.rename_axis("store_id").reset_index().melt("store_id", var_name="figure"))
    long = pd.concat(parts, ignore_index=True)
    long["value"] = pd.to_numeric(long["value"]).astype(float)
    return long


def week_over_week(this: Week, prev: Week) -> pd.DataFrame:
    """Each figure this week, the week before, and the change (change_pct NaN when it was 0)."""
    this_long, prev_long = figures_long(this), figures_long(prev)
    merged = this_long.merge(prev_long, on=["store_id", "figure"], how="outer", suffixes=("_this", "_prev"))
    figure_rank = pd.Series(range(len(order := pd.concat([this_long, prev_long])["figure"].unique())), index=order)
    merged = merged.rename(columns={"value_this": "this_week", "value_prev": "previous_week"})
    merged["change"] = merged["this_week"] - merged["previous_week"]
    merged["change_pct"] = merged["change"] / merged["previous_week"].where(merged["previous_week"] != 0).abs()
    merged.insert(0, "week", this.window.week)
    merged["store_order"] = merged["store_id"].map(_all_first)
    merged["figure_order"] = merged["figure"].map(figure_rank)
    merged = merged.sort_values(["store_order", "figure_order"], kind="stable")
    merged = merged.drop(columns=["store_order", "figure_order"])
    return merged.reset_index(drop=True)


def leg_order(configured: Iterable[str], frames: Frames) -> list[str]:
    """Legs in circuit-config order, then any the records hold that the config does not."""
    names = list(configured)
    seen = set(frames.legs["leg"].unique())
    return [n for n in names if n in seen] + sorted(seen - set(names))
