"""Watermark, live clock, late events, retention: time in the tracker."""

from __future__ import annotations

from circuitwatch.streams.order_state import OrderState
from circuitwatch.streams.tracker import CircuitTracker
from tests.scenario import at, ev, tick

PLACED = [ev("oms", "order_placed", "13:00"), ev("inventory", "reservation_created", "13:00:04", units=(2,))]
CANCEL = ev("oms", "cancel_requested", "14:01")


def feed(tracker: CircuitTracker, events: list[object]) -> list[object]:
    out = []
    for e in events:
        out.extend(tracker.on_event(e))  # type: ignore[arg-type]
    return out


def test_watermark_is_newest_event_time_minus_allowed_lateness() -> None:
    t = CircuitTracker()
    feed(t, [tick("14:00"), tick("13:00")])
    assert t.now == at("13:58").timestamp()
    assert t.stats.watermark == t.now


def test_a_silent_leg_breaches_on_the_wall_clock_in_live_mode() -> None:
    t = CircuitTracker()
    feed(t, [*PLACED, CANCEL, ev("oms", "cancelled", "14:01:10")])
    assert t.stats.breaches["inventory"] == 0
    # no more events; the runtime passes the wall clock: 14:09 - 2m lateness > 14:06 deadline
    records = t.advance_clock(at("14:09").timestamp())
    assert t.stats.breaches["inventory"] == 1
    assert t.stats.unclosed_legs["inventory"] == 1
    assert records
    assert records[-1].legs["inventory"].outcome == "breached"
    assert t.stats.phantom_units["S017"] == 2


def test_an_event_behind_the_watermark_is_applied_counted_and_corrects_the_record() -> None:
    t = CircuitTracker()
    first = feed(t, [*PLACED, CANCEL, ev("oms", "cancelled", "14:01:10"), tick("14:30")])
    assert first[-1].legs["inventory"].outcome == "breached"
    corrected = feed(t, [ev("inventory", "reservation_released", "14:03")])  # arrives ~27 minutes late
    assert t.stats.late_events["inventory"] == 1
    assert corrected[-1].legs["inventory"].outcome == "closed"
    assert t.stats.unclosed_legs["inventory"] == 0
    assert t.stats.phantom_units["S017"] == 0


def test_finished_circuits_are_evicted_after_retention_and_idle_orders_after_ttl() -> None:
    t = CircuitTracker()
    feed(
        t,
        [
            *PLACED,
            CANCEL,
            ev("oms", "cancelled", "14:01:10"),
            ev("inventory", "reservation_released", "14:02"),
            ev("notify", "customer_notified", "14:03", attrs={"kind": "cancellation"}),
            ev("oms", "order_placed", "14:05", order="IDLE"),
        ],
    )
    assert {"BO-1", "IDLE"} <= set(t.orders)
    day = 86400
    # the watermark is the clock minus 2m lateness; BO-1 closed at its last deadline, 14:16
    t.advance_clock(at("14:17").timestamp() + 2 * day)
    assert "BO-1" in t.orders  # within the 2d retention
    t.advance_clock(at("14:19").timestamp() + 2 * day)
    assert "BO-1" not in t.orders
    t.advance_clock(at("14:06").timestamp() + 7 * day)
    assert "IDLE" in t.orders  # its last event was at 14:05: within the 7d inactivity TTL
    t.advance_clock(at("14:08").timestamp() + 7 * day)
    assert "IDLE" not in t.orders
    assert t.stats.evicted["retention"] >= 1
    assert t.stats.evicted["inactive"] >= 1
    assert t.stats.open_circuits == 0
    assert t.stats.reserved_units["S017"] == 0


def test_gauges_follow_open_and_unclosed_circuits() -> None:
    t = CircuitTracker()
    feed(t, [*PLACED, CANCEL])
    assert t.stats.open_circuits == 1
    assert t.stats.reserved_units["S017"] == 2
    feed(t, [ev("oms", "cancelled", "14:01:10"), ev("inventory", "reservation_released", "14:02")])
    assert t.stats.reserved_units["S017"] == 0
    feed(t, [ev("notify", "customer_notified", "14:05", attrs={"kind": "cancellation"})])
    assert t.stats.open_circuits == 0
    assert t.stats.circuit_close.count == 1
    assert t.stats.circuit_close.sum == 240.0


def test_order_state_round_trips_through_bytes() -> None:
    t = CircuitTracker()
    feed(t, [*PLACED, ev("wms", "picked", "14:05"), CANCEL])
    for oid, st in t.orders.items():
        again = OrderState.from_bytes(st.to_bytes())
        assert again.to_builtins() == st.to_builtins(), oid


def test_an_earlier_ack_arriving_after_a_later_one_re_emits_the_corrected_closed_at() -> None:
    t = CircuitTracker()
    feed(
        t,
        [
            *PLACED,
            CANCEL,
            ev("oms", "cancelled", "14:01:10"),
            ev("notify", "customer_notified", "14:02", attrs={"kind": "cancellation"}),
        ],
    )
    first = feed(t, [ev("inventory", "reservation_released", "14:05"), tick("14:30")])
    assert first[-1].legs["inventory"].closed_at == "2026-11-27T14:05:00Z"
    again = feed(t, [ev("inventory", "reservation_released", "14:03")])  # a second, earlier release arrives late
    assert again, "the corrected record must be emitted again"
    assert again[-1].legs["inventory"].closed_at == "2026-11-27T14:03:00Z"
    assert again[-1].legs["inventory"].latency_s == 120.0
