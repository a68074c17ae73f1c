"""The HTML report: one self-contained file (charts embedded as PNG data URIs) that can be mailed on."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from circuitwatch.metrics.kpi.figures import ALL
from circuitwatch.metrics.kpi.writers import is_percent

CHART_TITLES = {
    "phantom_rate_per_day": "Phantom inventory rate per day",
    "breaches_per_leg": "Breaches per leg",
    "reconciliation_time": "Reconciliation time distribution",
    "worst_stores": "The ten worst stores",
}
_HEADLINE = (
    ("cancellations", "Cancellations"),
    ("closed_on_time_share", "Closed on time"),
    ("broken", "Broken circuits"),
    ("phantom_unit_hours", "Phantom unit-hours"),
    ("pick_labour_minutes", "Labour on cancelled picks (min)"),
    ("sync_debt_circuits", "Open sync debt at week end"),
)
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:0}.sub{color:#666;margin-top:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.card .v{font-size:1.6em;font-weight:600}.card .d{color:#666;font-size:.85em}
table{border-collapse:collapse;margin:8px 0 24px;font-size:.85em}
th{background:#1F3A5F;color:#fff;padding:4px 8px;text-align:right}
td{padding:3px 8px;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:6px 0 18px}
.note{background:#fff7e0;border-left:4px solid #f0a000;padding:6px 10px;margin:6px 0}
"""


def _fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        if is_percent(column):
            return f"{value:.1%}"
        if float(value).is_integer():
            return f"{int(value):,}"
        return f"{value:,.1f}"
    return str(value)


def table_html(table: pd.DataFrame) -> str:
    flat = table.reset_index() if any(n is not None for n in table.index.names) else table
    formatters = {c: (lambda v, c=str(c): _fmt(c, v)) for c in flat.columns}
    return flat.to_html(index=False, formatters=formatters, border=0, escape=True, na_rep="–")


def _change(this: float, prev: float, column: str) -> str:
    if math.isnan(this) or math.isnan(prev):
        return "no figure the week before"
    delta = this - prev
    if is_percent(column):
        return f"{delta * 100:+.1f} pts vs. the week before"
    text = f"{int(delta):+,}" if float(delta).is_integer() else f"{delta:+,.1f}"
    return f"{text} vs. the week before"


def render(
    title: str,
    subtitle: str,
    tables: Mapping[str, pd.DataFrame],
    previous_summary: pd.DataFrame,
    charts: Mapping[str, bytes],
    notes: Sequence[str],
) -> str:
    summary = tables["summary"]
    cards = []
    for column, label in _HEADLINE:
        this = summary[column].to_dict()[ALL]
        prev = previous_summary[column].to_dict().get(ALL, float("nan"))
        cards.append(
            f'<div class="card"><div>{html.escape(label)}</div><div class="v">{_fmt(column, this)}</div>'
            f'<div class="d">{html.escape(_change(float(this), float(prev), column))}</div></div>'
        )
    imgs = [
        f"<h3>{html.escape(CHART_TITLES.get(name, name))}</h3>"
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in charts.items()
    ]
    wow = tables["week_over_week"]
    overall_wow = wow[wow["store_id"] == ALL].drop(columns=["week", "store_id"]).set_index("figure")
    sections = [
        ("Per store (figures as rows)", summary.T.rename_axis("figure")),
        ("Cancellations by origin", tables["origins"]),
        ("Legs, all stores", tables["legs"].loc[[ALL]].droplevel("store_id")),
        ("Day by day, all stores", tables["daily"]),
        ("Open sync debt at the end of the week, by circuit age", tables["sync_debt"]),
        ("The ten worst stores", tables["worst_stores"]),
        ("Week over week, all stores", overall_wow),
    ]
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{table_html(t)}" for h, t in sections)
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>"
        f'<p class="sub">{html.escape(subtitle)}</p>{note_html}\n<div class="cards">{"".join(cards)}</div>\n'
        f"<h2>Charts</h2>\n{''.join(imgs)}\n{body}\n"
        "<h2>How to read this</h2><p>Shares and rates are fractions of the week's cancelled circuits "
        "(a leg's rates: of the circuits that owed that leg). Reconciliation time is from the cancellation to "
        "the last acknowledgement, for circuits that closed. Phantom units are units still reserved past the "
        "inventory deadline; phantom unit-hours count the hours they were held inside this week. Sync debt is "
        "every circuit with a leg past its deadline and still open at the end of the week, whatever week it "
        "began in. The same figures are in the XLSX workbook, the CSV files and the Parquet file.</p>"
        "</body></html>\n"
    )
