"""The weekly KPI export: the file finance, merchandising and fulfillment leads forward.

`export_week(source, week, out_dir, tz, config)` reads outcome records (an
`OutcomeStore`, its URL, an outcomes JSONL file or a list of `Outcome`), computes
the ISO week's figures per store and overall with pandas, and writes a CSV per
table, one Parquet file, an XLSX workbook and an HTML report with charts.
"""

from circuitwatch.metrics.kpi.export import DEFAULT_MINUTES_PER_PICK, KpiReport, export_week, load_outcomes
from circuitwatch.metrics.kpi.weeks import KpiError, Window, window

__all__ = ["DEFAULT_MINUTES_PER_PICK", "KpiError", "KpiReport", "Window", "export_week", "load_outcomes", "window"]
