"""Weekly figures of the hand-made outcome set (tests/kpi_fixtures.py), worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from circuitwatch.config import default_config
from circuitwatch.metrics.kpi.figures import ALL, Week, compute_week, leg_order, stores_index, week_over_week
from circuitwatch.metrics.kpi.frames import Frames, build_frames
from circuitwatch.metrics.kpi.weeks import KpiError, previous, week_of, window
from tests.kpi_fixtures import hand_made

SLA = {name: leg.sla for name, leg in default_config().legs.items()}
MINUTES_PER_PICK = 4.0


def frames() -> Frames:
    return build_frames(hand_made(), SLA)


def week(name: str, tz: str) -> Week:
    f = frames()
    return compute_week(f, window(name, tz), stores_index(f.circuits["store_id"]), leg_order(SLA, f), MINUTES_PER_PICK)


@pytest.fixture(scope="module")
def berlin() -> Week:
    return week("2026-W48", "Europe/Berlin")


def row(w: Week, store: str) -> dict[str, float]:
    return {str(k): float(v) for k, v in w.summary.loc[store].to_dict().items()}


def test_window_is_local_monday_to_monday() -> None:
    w = window("2026-W48", "Europe/Berlin")
    assert w.start == pd.Timestamp("2026-11-22T23:00:00Z")
    assert w.end == pd.Timestamp("2026-11-29T23:00:00Z")
    assert previous(w).week == "2026-W47"
    assert window("2027-W01").start == pd.Timestamp("2027-01-04T00:00:00Z")
    assert week_of(pd.Timestamp("2026-11-22T23:30:00Z"), "Europe/Berlin") == "2026-W48"
    assert week_of(pd.Timestamp("2026-11-22T23:30:00Z"), "UTC") == "2026-W47"


def test_dst_week_is_167_hours() -> None:
    w = window("2026-W13", "Europe/Berlin")  # clocks go forward on Sunday 2026-03-29
    assert (w.end - w.start) == pd.Timedelta(hours=167)
    assert list(w.days.hour) == [0] * 7


@pytest.mark.parametrize("bad", ["2026-48", "W48", "2026-W54", "2026-W00"])
def test_bad_week_is_a_clear_error(bad: str) -> None:
    with pytest.raises(KpiError, match="week"):
        window(bad)


def test_cancellations_and_states_per_store(berlin: Week) -> None:
    s = berlin.summary
    assert list(s.index) == [ALL, "S001", "S002", "S003", "S004"]
    assert s["cancellations"].to_dict() == {ALL: 5, "S001": 2, "S002": 2, "S003": 1, "S004": 0}
    assert s["closed_on_time"].to_dict() == {ALL: 2, "S001": 1, "S002": 0, "S003": 1, "S004": 0}
    assert s["closed_late"].to_dict() == {ALL: 2, "S001": 1, "S002": 1, "S003": 0, "S004": 0}
    assert s["broken"].to_dict() == {ALL: 1, "S001": 0, "S002": 1, "S003": 0, "S004": 0}
    a = row(berlin, ALL)
    assert (a["closed_on_time_share"], a["closed_late_share"], a["broken_share"], a["open_share"]) == (
        0.4,
        0.4,
        0.2,
        0.0,
    )
    assert math.isnan(row(berlin, "S004")["broken_share"])  # no cancellations: undefined, not 0


def test_cancellations_by_origin(berlin: Week) -> None:
    o = berlin.origins
    assert o.loc[ALL].to_dict() == {"oms": 2, "store": 1, "storefront": 2, "total": 5}
    assert o.loc["S001"].to_dict() == {"oms": 0, "store": 1, "storefront": 1, "total": 2}
    assert o.loc["S002"].to_dict() == {"oms": 1, "store": 0, "storefront": 1, "total": 2}


def test_reconciliation_percentiles(berlin: Week) -> None:
    # closed circuits: A 300, E 600, B 2100, D 7500 (the slowest leg of each)
    a = row(berlin, ALL)
    assert a["reconciliation_p50_s"] == pytest.approx((600 + 2100) / 2)
    assert a["reconciliation_p95_s"] == pytest.approx(2100 + 0.85 * (7500 - 2100))
    s1 = row(berlin, "S001")
    assert s1["reconciliation_p50_s"] == pytest.approx(1200.0)
    assert s1["reconciliation_p95_s"] == pytest.approx(300 + 0.95 * 1800)
    assert row(berlin, "S002")["reconciliation_p50_s"] == pytest.approx(7500.0)  # C is broken: not counted
    assert sorted(berlin.reconciliation_s) == [300.0, 600.0, 2100.0, 7500.0]


def test_phantom_units_rate_and_unit_hours(berlin: Week) -> None:
    a, s1, s2 = row(berlin, ALL), row(berlin, "S001"), row(berlin, "S002")
    assert (a["phantom_units"], s1["phantom_units"], s2["phantom_units"]) == (6, 3, 3)
    assert (a["phantom_circuits"], a["inventory_circuits"]) == (3, 4)
    assert a["phantom_inventory_rate"] == pytest.approx(0.75)
    assert s1["phantom_inventory_rate"] == pytest.approx(0.5)
    assert s2["phantom_inventory_rate"] == pytest.approx(1.0)
    assert math.isnan(row(berlin, "S003")["phantom_inventory_rate"])  # E owed no inventory leg
    # B: 3 units x 0.5 h (12:05-12:35, a late leg still counts)
    # C: 2 units x (11-26 08:05 .. week end 11-29 23:00) = 2 x 86h55m, never released
    # D: 1 unit x 5 min (22:55 .. 23:00); the rest falls into the next week
    b, c, d = 3 * 0.5, 2 * (86 + 55 / 60), 1 * (5 / 60)
    assert s1["phantom_unit_hours"] == pytest.approx(b)
    assert s2["phantom_unit_hours"] == pytest.approx(c + d)
    assert a["phantom_unit_hours"] == pytest.approx(b + c + d)


def test_circuit_spanning_two_weeks_splits_its_unit_hours() -> None:
    w49 = week("2026-W49", "Europe/Berlin")
    a = row(w49, ALL)
    assert a["cancellations"] == 0
    # D: 23:00 .. 00:55 = 1h55m; C: the whole week (168 h) x 2 units, still held
    assert row(w49, "S002")["phantom_unit_hours"] == pytest.approx(1 + 55 / 60 + 2 * 168)
    # at the end of W49 D is closed; C (2 legs) and F (1 leg) are still open
    assert (a["sync_debt_circuits"], a["sync_debt_legs"]) == (2, 3)


def test_picks_pickups_and_manual_closures(berlin: Week) -> None:
    a, s1, s2 = row(berlin, ALL), row(berlin, "S001"), row(berlin, "S002")
    assert (a["picks_after_cancel"], s1["picks_after_cancel"], s2["picks_after_cancel"]) == (3, 1, 2)
    assert (a["pick_labour_minutes"], s1["pick_labour_minutes"], s2["pick_labour_minutes"]) == (12.0, 4.0, 8.0)
    assert (a["pickup_attempts_after_cancel"], s2["pickup_attempts_after_cancel"]) == (1, 1)
    assert (a["manual_closures"], a["circuits_with_manual_closure"]) == (1, 1)
    assert a["manual_closure_share"] == pytest.approx(0.2)


def test_leg_rates_and_latency(berlin: Week) -> None:
    legs = berlin.legs.loc[ALL]
    assert list(legs.index) == ["oms", "wms", "inventory", "storefront", "store", "customer"]
    inv = legs.loc["inventory"]
    assert (inv["owed"], inv["closed"], inv["late"], inv["breached"], inv["contradicted"]) == (4, 1, 2, 1, 0)
    assert (inv["breach_rate"], inv["late_rate"], inv["on_time_rate"]) == (0.25, 0.5, 0.25)
    assert inv["latency_p50_s"] == pytest.approx(2100.0)  # 120, 2100, 7500
    assert inv["latency_p95_s"] == pytest.approx(2100 + 0.9 * 5400)
    wms = legs.loc["wms"]
    assert (wms["owed"], wms["late"], wms["contradicted"]) == (2, 1, 1)
    assert (wms["contradiction_rate"], wms["breach_rate"]) == (0.5, 0.0)
    oms = legs.loc["oms"]
    assert (oms["owed"], oms["on_time_rate"], oms["latency_p50_s"]) == (5, 1.0, 60.0)
    assert legs.loc["customer", "owed"] == 5
    assert berlin.legs.loc[("S002", "inventory"), "breach_rate"] == 0.5  # C breached, D late


def test_sync_debt_at_week_end_by_age(berlin: Week) -> None:
    d = berlin.sync_debt
    # C 3d15h (wms + inventory), D 10 min (inventory released after midnight), F from W47: 11d14h
    assert d.loc[ALL].to_dict() == {"<1h": 1, "1-4h": 0, "4-24h": 0, "1-3d": 0, "3-7d": 1, ">7d": 1}
    assert d.loc["S001"].to_dict() == {"<1h": 0, "1-4h": 0, "4-24h": 0, "1-3d": 0, "3-7d": 0, ">7d": 1}
    a = row(berlin, ALL)
    assert (a["sync_debt_circuits"], a["sync_debt_legs"]) == (3, 4)
    assert (row(berlin, "S002")["sync_debt_circuits"], row(berlin, "S002")["sync_debt_legs"]) == (2, 3)


def test_daily_phantom_rate_in_local_days(berlin: Week) -> None:
    d = berlin.daily
    assert list(d.index) == [
        "2026-11-23 Mon",
        "2026-11-24 Tue",
        "2026-11-25 Wed",
        "2026-11-26 Thu",
        "2026-11-27 Fri",
        "2026-11-28 Sat",
        "2026-11-29 Sun",
    ]
    assert d["cancellations"].tolist() == [1, 1, 1, 1, 0, 0, 1]  # E on Monday 00:30, D on Sunday 23:50
    rate = d["phantom_inventory_rate"].tolist()
    assert rate[1:4] == [0.0, 1.0, 1.0]
    assert rate[6] == 1.0
    assert math.isnan(rate[0])
    assert math.isnan(rate[4])


def test_time_zone_moves_a_circuit_between_weeks() -> None:
    utc = week("2026-W48", "UTC")
    a = row(utc, ALL)
    assert a["cancellations"] == 4  # E is Sunday 23:30 in UTC: W47
    # D's reservation is held until the UTC week's end, 11-30 00:00 (65 min); C for 87h55m
    assert a["phantom_unit_hours"] == pytest.approx(1.5 + 2 * (87 + 55 / 60) + 65 / 60)


def test_week_over_week(berlin: Week) -> None:
    prev = week("2026-W47", "Europe/Berlin")
    assert row(prev, ALL)["cancellations"] == 2  # F and G
    table = week_over_week(berlin, prev)
    wow = {
        (str(s), str(f)): r
        for s, f, r in zip(table["store_id"], table["figure"], table.to_dict("records"), strict=True)
    }
    c = wow[(ALL, "cancellations")]
    assert (c["this_week"], c["previous_week"], c["change"], c["change_pct"]) == (5, 2, 3, 1.5)
    debt = wow[(ALL, "sync_debt_circuits")]
    assert (debt["this_week"], debt["previous_week"]) == (3, 1)  # F alone at the end of W47
    s4 = wow[("S004", "cancellations")]
    assert (s4["this_week"], s4["previous_week"], s4["change_pct"]) == (0, 1, -1.0)
    assert math.isnan(wow[("S002", "cancellations")]["change_pct"])  # from 0: no percentage
    assert wow[(ALL, "leg.inventory.breach_rate")]["this_week"] == 0.25
    assert wow[(ALL, "origin.storefront")]["previous_week"] == 1
    assert table["store_id"].iloc[0] == ALL
