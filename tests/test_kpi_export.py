"""The export's files, opened and read back: XLSX, Parquet, CSV, HTML charts; the CLI and its errors."""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib import image as mpimg
from openpyxl import load_workbook

from circuitwatch.cli import cli
from circuitwatch.metrics.kpi import KpiError, KpiReport, export_week
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.outcome_store import OutcomeStore
from circuitwatch.streams.replay import run_events, write_outcomes
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker
from tests.kpi_fixtures import hand_made

CHARTS = ("phantom_rate_per_day", "breaches_per_leg", "reconciliation_time", "worst_stores")


@pytest.fixture(scope="module")
def day() -> list[Outcome]:
    """A simulated store day through the real tracker (the demo's path, smaller)."""
    sim = simulate(SimConfig(orders=1500, seed=11))
    return run_events(CircuitTracker(), sim.events).ordered()


@pytest.fixture(scope="module")
def report(day: list[Outcome], tmp_path_factory: pytest.TempPathFactory) -> KpiReport:
    out = tmp_path_factory.mktemp("kpi")
    with OutcomeStore(out / "outcomes.db") as store:
        store.upsert(day)
        return export_week(store, None, out / "export", "Europe/Berlin")


def assert_real_png(png: bytes) -> None:
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (400, 800)
    rgb = pixels[..., :3]
    assert float(rgb.std()) > 0.05  # not a blank canvas
    non_white = (rgb < 0.9).any(axis=-1).mean()
    assert non_white > 0.02  # bars, axes and text actually drawn


def test_week_defaults_to_the_newest_cancellation(report: KpiReport) -> None:
    assert report.window.week == "2026-W48"
    assert {p.name for p in report.files} >= {"kpi-2026-W48.html", "kpi-2026-W48.xlsx", "kpi-2026-W48.parquet"}
    assert all(p.stat().st_size > 0 for p in report.files)


def test_xlsx_figures_agree_with_the_outcome_records(report: KpiReport, day: list[Outcome]) -> None:
    summary = pd.read_excel(report.xlsx, sheet_name="summary").set_index("store_id")
    states = Counter(o.state for o in day)
    stores = Counter(o.store_id for o in day)
    assert summary.at["ALL", "cancellations"] == len(day)
    assert summary.at["ALL", "broken"] == states["broken"]
    assert summary.at["ALL", "closed_on_time"] == states["closed"]
    assert summary.at["ALL", "closed_late"] == states["closed_late"]
    assert summary.at["ALL", "phantom_units"] == sum(o.phantom_units for o in day)
    assert summary.at["ALL", "picks_after_cancel"] == sum(o.picks_after_cancel for o in day)
    assert summary.at["ALL", "manual_closures"] == sum(o.manual_closures for o in day)
    for store, n in stores.items():
        assert summary.at[store, "cancellations"] == n
    assert summary.drop(index="ALL")["cancellations"].sum() == len(day)
    legs = pd.read_excel(report.xlsx, sheet_name="legs").set_index(["store_id", "leg"])
    breached = Counter(name for o in day for name, leg in o.legs.items() if leg.outcome == "breached")
    for name, n in breached.items():
        assert legs.at[("ALL", name), "breached"] == n


def test_xlsx_has_a_sheet_per_table_and_formatted_headers(report: KpiReport) -> None:
    wb = load_workbook(report.xlsx)
    assert wb.sheetnames == ["about", *report.tables]
    ws = wb["summary"]
    header = {c.value: c for c in ws[1]}
    assert header["store_id"].font.bold
    assert header["cancellations"].fill.fgColor.rgb.endswith("1F3A5F")
    assert ws.freeze_panes == "B2"
    share_col = list(header).index("broken_share") + 1
    assert ws.cell(row=2, column=share_col).number_format == "0.0%"


def test_parquet_and_csv_hold_the_same_figures(report: KpiReport) -> None:
    tidy = pd.read_parquet(report.parquet)
    assert set(tidy.columns) >= {"week", "store_id", "figure", "this_week", "previous_week", "change", "tz"}
    cancellations = tidy[(tidy["store_id"] == "ALL") & (tidy["figure"] == "cancellations")]
    assert float(cancellations["this_week"].iloc[0]) == report.tables["summary"]["cancellations"].to_dict()["ALL"]
    csv = {p.name: p for p in report.csv}
    assert set(csv) == {f"kpi-2026-W48-{name}.csv" for name in report.tables}
    summary = pd.read_csv(csv["kpi-2026-W48-summary.csv"]).set_index("store_id")
    assert summary["broken"].to_dict()["ALL"] == report.tables["summary"]["broken"].to_dict()["ALL"]


def test_html_report_embeds_four_real_charts(report: KpiReport) -> None:
    html = report.html.read_text(encoding="utf-8")
    uris = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [name for name, _ in uris] == list(CHARTS)
    for _, data in uris:
        assert_real_png(base64.b64decode(data))
    for name in CHARTS:
        assert_real_png((report.html.parent / "charts" / f"kpi-2026-W48-{name}.png").read_bytes())
    assert "Week over week" in html
    assert "Open sync debt" in html


def test_charts_differ_with_the_data(report: KpiReport, tmp_path: Path) -> None:
    small = export_week(hand_made(), "2026-W48", tmp_path, "Europe/Berlin")
    for name in CHARTS:
        assert small.charts[name] != report.charts[name]
        assert_real_png(small.charts[name])


def test_empty_week_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(KpiError, match=r"no cancellations in 2026-W50 .*cover 2026-W47 to 2026-W48"):
        export_week(hand_made(), "2026-W50", tmp_path / "out", "Europe/Berlin")
    assert not (tmp_path / "out").exists()


def test_missing_store_is_named(tmp_path: Path) -> None:
    with pytest.raises(KpiError, match=r"store S004 in 2026-W48; stores with cancellations that week: S001, S002"):
        export_week(hand_made(), "2026-W48", tmp_path / "out", "Europe/Berlin", stores=["S004"])
    assert not (tmp_path / "out").exists()
    only = export_week(hand_made(), "2026-W48", tmp_path / "one", "Europe/Berlin", stores=["S001"])
    assert only.tables["summary"].at["ALL", "cancellations"] == 2


def test_store_quiet_this_week_is_noted(tmp_path: Path) -> None:
    report = export_week(hand_made(), "2026-W48", tmp_path, "Europe/Berlin")
    assert any("S004" in note for note in report.notes)
    assert report.tables["summary"].at["S004", "cancellations"] == 0


def test_cli_from_outcomes_file(tmp_path: Path, day: list[Outcome]) -> None:
    outcomes = tmp_path / "outcomes.jsonl"
    write_outcomes(day, outcomes)
    out = tmp_path / "kpi"
    args = ["kpi", "--week", "2026-W48", "--tz", "Europe/Berlin", "--from", str(outcomes), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--minutes-per-pick", "5"])
    assert result.exit_code == 0, result.output
    assert f"2026-W48: {len(day)} cancellations" in result.output
    summary = pd.read_csv(out / "kpi-2026-W48-summary.csv").set_index("store_id")
    picks = sum(o.picks_after_cancel for o in day)
    assert summary.at["ALL", "pick_labour_minutes"] == pytest.approx(5.0 * picks)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--week", "2026-W60"], "2026 has no ISO week 60"),
        (["--week", "2026-W50"], "no cancellations in 2026-W50"),
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--store", "S999"], "no cancellations for store S999"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    outcomes = tmp_path / "outcomes.jsonl"
    write_outcomes(hand_made(), outcomes)
    result = CliRunner().invoke(cli, ["kpi", "--from", str(outcomes), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_bad_outcome_line_names_file_and_line(tmp_path: Path) -> None:
    outcomes = tmp_path / "outcomes.jsonl"
    write_outcomes(hand_made(), outcomes)
    with outcomes.open("a") as fh:
        fh.write('{"order_id": "BO-X", "state": "broken"}\n')
    result = CliRunner().invoke(cli, ["kpi", "--from", str(outcomes), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{outcomes}:8: not an outcome record" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_missing_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["kpi", "--from", str(tmp_path / "nope.db")])
    assert result.exit_code == 2
    assert "no such outcome store" in result.output


def test_unit_hours_do_not_depend_on_record_order(tmp_path: Path) -> None:
    records = hand_made()
    a = export_week(records, "2026-W48", tmp_path / "a", "Europe/Berlin")
    b = export_week(list(reversed(records)), "2026-W48", tmp_path / "b", "Europe/Berlin")
    pd.testing.assert_frame_equal(a.tables["summary"], b.tables["summary"])
    hours = a.tables["summary"]["phantom_unit_hours"].to_dict()["ALL"]
    assert hours == pytest.approx(1.5 + 2 * (86 + 55 / 60) + 5 / 60)
