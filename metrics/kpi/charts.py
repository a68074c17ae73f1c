"""The report's four charts as PNG bytes (matplotlib's object API: no pyplot state, no display)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from circuitwatch.metrics.kpi.figures import ALL

SIZE = (8.0, 4.0)  # inches
DPI = 100
_BLUE, _ORANGE, _RED, _GREY = "#1F77B4", "#FF7F0E", "#D62728", "#7F7F7F"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    return fig, ax


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def phantom_rate_per_day(daily: pd.DataFrame) -> bytes:
    fig, ax = _figure("Phantom inventory rate per day (share of reservations held past the deadline)")
    rate = daily["phantom_inventory_rate"].astype(float) * 100.0
    x = np.arange(len(daily))
    ax.bar(x, rate.fillna(0.0), color=_RED)
    ax.set_xticks(x, [str(d) for d in daily.index], rotation=0, fontsize=8)
    ax.set_ylabel("% of circuits with a reservation")
    top = float(np.nanmax(rate.to_numpy())) if rate.notna().any() else 0.0
    ax.set_ylim(0, max(1.0, top * 1.2))
    for xi, (value, n) in enumerate(zip(rate, daily["cancellations"], strict=True)):
        label = "no cancellations" if n == 0 else f"{value:.1f}%"
        ax.text(xi, 0 if n == 0 else value, label, ha="center", va="bottom", fontsize=7)
    return _png(fig)


def breaches_per_leg(legs: pd.DataFrame) -> bytes:
    fig, ax = _figure("Legs not closed in time, per leg (all stores)")
    overall = legs.xs(ALL, level="store_id") if ALL in legs.index.get_level_values("store_id") else legs.iloc[0:0]
    overall = overall[overall["owed"] > 0]
    if overall.empty:
        _empty(ax, "no legs owed this week")
        return _png(fig)
    x = np.arange(len(overall))
    bottom = np.zeros(len(overall))
    for column, color in (("breached", _RED), ("contradicted", _ORANGE), ("late", _BLUE)):
        values = overall[column].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, color=color, label=column)
        bottom += values
    ax.set_xticks(x, list(overall.index))
    ax.set_ylabel("legs")
    ax.set_ylim(0, max(1.0, float(bottom.max()) * 1.25))
    ax.legend(ncols=3, loc="upper left")
    return _png(fig)


def reconciliation_distribution(seconds: pd.Series) -> bytes:
    fig, ax = _figure("Whole-circuit reconciliation time (closed circuits)")
    values = seconds.dropna().to_numpy(dtype=float) / 60.0
    if len(values) == 0:
        _empty(ax, "no circuit closed this week")
        return _png(fig)
    low = max(values.min(), 1 / 60.0)
    bins = np.geomspace(low, max(values.max(), low * 2), 30).tolist()
    ax.hist(np.clip(values, low, None), bins=bins, color=_BLUE)
    ax.set_xscale("log")
    ax.set_xlabel("minutes from cancellation to the last acknowledgement (log scale)")
    ax.set_ylabel("circuits")
    for q, style in ((0.5, "--"), (0.95, ":")):
        v = float(np.quantile(values, q))
        ax.axvline(max(v, low), color=_RED, linestyle=style, label=f"p{int(q * 100)} = {v:.1f} min")
    ax.legend()
    return _png(fig)


def worst_stores_chart(worst: pd.DataFrame) -> bytes:
    fig, ax = _figure("The ten worst stores: broken circuits")
    if worst.empty or not (worst["broken"] > 0).any():
        _empty(ax, "no broken circuit this week")
        return _png(fig)
    ranked = worst.iloc[::-1]
    y = np.arange(len(ranked))
    ax.barh(y, ranked["broken"].to_numpy(dtype=float), color=_RED)
    ax.set_xlim(0, float(ranked["broken"].max()) * 1.2)
    ax.set_yticks(y, [str(s) for s in ranked.index])
    ax.set_xlabel("broken circuits (a leg breached or contradicted, never closed)")
    for yi, (n, share) in enumerate(zip(ranked["broken"], ranked["broken_share"], strict=True)):
        ax.text(n, yi, f" {n} ({share:.0%})", va="center", fontsize=8)
    return _png(fig)


def all_charts(
    daily: pd.DataFrame, legs: pd.DataFrame, reconciliation_s: pd.Series, worst: pd.DataFrame
) -> dict[str, bytes]:
    return {
        "phantom_rate_per_day": phantom_rate_per_day(daily),
        "breaches_per_leg": breaches_per_leg(legs),
        "reconciliation_time": reconciliation_distribution(reconciliation_s),
        "worst_stores": worst_stores_chart(worst),
    }
