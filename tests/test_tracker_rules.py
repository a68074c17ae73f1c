"""One case per rule of the contract's circuit, table-driven.

Each scenario is a list of events for order BO-1 (cancelled at 14:01 unless
said otherwise) and a tick far later, so every deadline has passed.
"""

from __future__ import annotations

from typing import Any

import pytest

from circuitwatch.config import CircuitConfig
from tests.scenario import ev, legs, run, tick

PLACED = [
    ev("storefront", "order_placed", "13:00"),
    ev("oms", "order_placed", "13:00:02"),
    ev("inventory", "reservation_created", "13:00:04", units=(2, 1)),
]
CANCEL = ev("storefront", "cancelled", "14:01")
ALL_ACKED = [
    ev("oms", "cancelled", "14:01:04"),
    ev("inventory", "reservation_released", "14:02"),
    ev("notify", "customer_notified", "14:03", attrs={"kind": "cancellation"}),
]
LATER = tick("18:00")

CASES: list[tuple[str, list[Any], dict[str, Any]]] = [
    (
        "every owed leg acked in time: closed",
        [*PLACED, CANCEL, *ALL_ACKED, LATER],
        {
            "state": "closed",
            "legs": {"oms": "closed", "inventory": "closed", "storefront": "closed", "customer": "closed"},
            "phantom_units": 0,
        },
    ),
    (
        "oms is always owed: silent oms breaches",
        [*PLACED, CANCEL, *ALL_ACKED[1:], LATER],
        {"state": "broken", "legs": {"oms": "breached"}},
    ),
    (
        "wms not owed without a pick event",
        [*PLACED, CANCEL, *ALL_ACKED, LATER],
        {"absent": ["wms", "store"]},
    ),
    (
        "wms owed by pick_assigned, closed by pick_released",
        [*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, *ALL_ACKED, ev("wms", "pick_released", "14:04"), LATER],
        {"state": "closed", "legs": {"wms": "closed"}},
    ),
    (
        "wms closed by its own cancelled",
        [*PLACED, ev("wms", "picked", "13:40"), CANCEL, *ALL_ACKED, ev("wms", "cancelled", "14:02"), LATER],
        {"state": "closed", "legs": {"wms": "closed"}, "picks_after_cancel": 0},
    ),
    (
        "wms ack after its 5m deadline: late, circuit closed_late",
        [*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, *ALL_ACKED, ev("wms", "pick_released", "14:07"), LATER],
        {"state": "closed_late", "legs": {"wms": "late"}},
    ),
    (
        "wms silent past its deadline: breached",
        [*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, *ALL_ACKED, LATER],
        {"state": "broken", "legs": {"wms": "breached"}},
    ),
    (
        "picked after cancel, never released: contradicted, not breached",
        [*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, *ALL_ACKED, ev("wms", "picked", "14:03"), LATER],
        {"state": "broken", "legs": {"wms": "contradicted"}, "picks_after_cancel": 1},
    ),
    (
        "picked before the cancel is no contradiction",
        [*PLACED, ev("wms", "picked", "13:50"), CANCEL, *ALL_ACKED, ev("wms", "pick_released", "14:03"), LATER],
        {"state": "closed", "legs": {"wms": "closed"}, "picks_after_cancel": 0},
    ),
    (
        "contradicted, then released in time: closed, the pick still counted",
        [*PLACED, ev("wms", "picked", "14:02"), CANCEL, *ALL_ACKED, ev("wms", "pick_released", "14:04"), LATER],
        {"state": "closed", "legs": {"wms": "closed"}, "picks_after_cancel": 1},
    ),
    (
        "staged by wms after cancel contradicts wms",
        [*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, *ALL_ACKED, ev("wms", "staged", "14:02"), LATER],
        {"legs": {"wms": "contradicted"}},
    ),
    (
        "inventory silent: breached, reserved units are phantom",
        [*PLACED, CANCEL, ALL_ACKED[0], ALL_ACKED[2], LATER],
        {"state": "broken", "legs": {"inventory": "breached"}, "phantom_units": 3},
    ),
    (
        "inventory released late: late, units were held past the deadline",
        [*PLACED, CANCEL, ALL_ACKED[0], ALL_ACKED[2], ev("inventory", "reservation_released", "14:20"), LATER],
        {"state": "closed_late", "legs": {"inventory": "late"}, "phantom_units": 3},
    ),
    (
        "inventory not owed without a reservation",
        [ev("oms", "order_placed", "13:00"), ev("oms", "cancelled", "14:01"), ALL_ACKED[2], LATER],
        {"state": "closed", "legs": {"oms": "closed", "customer": "closed"}, "absent": ["inventory", "storefront"]},
    ),
    (
        "storefront closed by status_changed to a cancelled status (any case)",
        [
            *PLACED,
            ev("oms", "cancel_requested", "14:01"),
            *ALL_ACKED,
            ev("storefront", "status_changed", "14:01:30", status="Canceled"),
            LATER,
        ],
        {"state": "closed", "legs": {"storefront": "closed"}, "origin": "oms"},
    ),
    (
        "storefront reads the cancel as an update: contradicted",
        [
            *PLACED,
            ev("oms", "cancel_requested", "14:01"),
            *ALL_ACKED,
            ev("storefront", "status_changed", "14:01:30", status="reserved"),
            LATER,
        ],
        {"state": "broken", "legs": {"storefront": "contradicted"}},
    ),
    (
        "storefront silent: breached after 2m",
        [*PLACED, ev("oms", "cancel_requested", "14:01"), *ALL_ACKED, LATER],
        {"state": "broken", "legs": {"storefront": "breached"}},
    ),
    (
        "store owed by any store event; display_cleared closes it",
        [
            *PLACED,
            ev("store", "ready_for_pickup", "13:50"),
            CANCEL,
            *ALL_ACKED,
            ev("store", "display_cleared", "14:08"),
        ],
        {"legs": {"store": "closed"}},
    ),
    (
        "store closed by its own cancelled",
        [*PLACED, ev("store", "staged", "13:50"), CANCEL, *ALL_ACKED, ev("store", "cancelled", "14:05"), LATER],
        {"state": "closed", "legs": {"store": "closed"}},
    ),
    (
        "pickup handed over after cancel: store contradicted, attempt counted",
        [
            *PLACED,
            ev("store", "ready_for_pickup", "13:50"),
            CANCEL,
            *ALL_ACKED,
            ev("store", "picked_up", "14:30"),
            LATER,
        ],
        {"state": "broken", "legs": {"store": "contradicted"}, "pickup_attempts_after_cancel": 1},
    ),
    (
        "store silent past 10m: breached",
        [*PLACED, ev("store", "ready_for_pickup", "13:50"), CANCEL, *ALL_ACKED, LATER],
        {"legs": {"store": "breached"}},
    ),
    (
        "customer closed only by a cancellation notice",
        [*PLACED, CANCEL, *ALL_ACKED[:2], ev("notify", "customer_notified", "14:03", attrs={"kind": "ready"}), LATER],
        {"state": "broken", "legs": {"customer": "breached"}},
    ),
    (
        "customer notified after 15m: late",
        [*PLACED, CANCEL, *ALL_ACKED[:2], ev("notify", "customer_notified", "14:20", attrs={"kind": "cancellation"})],
        {"state": "closed_late", "legs": {"customer": "late"}},
    ),
    (
        "an ack with an event time before the cancel counts, latency 0",
        [*PLACED, ev("inventory", "reservation_released", "14:00"), CANCEL, ALL_ACKED[0], ALL_ACKED[2], LATER],
        {"state": "closed", "legs": {"inventory": "closed"}, "latency": {"inventory": 0.0}},
    ),
    (
        "an ack that arrives before the cancel (out of order) counts",
        [*PLACED, *ALL_ACKED, CANCEL, LATER],
        {"state": "closed", "latency": {"oms": 4.0, "inventory": 60.0, "customer": 120.0}},
    ),
    (
        "manual_close after the deadline: late, a workaround",
        [*PLACED, CANCEL, ALL_ACKED[0], ALL_ACKED[2], ev("oms", "manual_close", "15:00", attrs={"leg": "inventory"})],
        {"state": "closed_late", "legs": {"inventory": "late"}, "manual_closures": 1},
    ),
    (
        "manual_close in time: closed, still a workaround",
        [*PLACED, CANCEL, *ALL_ACKED[:2], ev("oms", "manual_close", "14:05", attrs={"leg": "customer"}), LATER],
        {"state": "closed", "legs": {"customer": "closed"}, "manual_closures": 1},
    ),
    (
        "earliest cancellation signal wins: origin and cancelled_at",
        [*PLACED, ev("oms", "cancelled", "14:01:04"), ev("store", "cancelled", "14:00:30"), CANCEL, LATER],
        {"origin": "store", "cancelled_at": "2026-11-27T14:00:30Z"},
    ),
    (
        "deadlines not yet reached: open",
        [*PLACED, CANCEL, ev("oms", "cancelled", "14:01:04")],
        {"state": "open", "legs": {"oms": "closed", "inventory": "open", "customer": "open"}},
    ),
    (
        "a duplicate event_id changes nothing",
        [
            *PLACED,
            ev("inventory", "reservation_created", "13:00:04", units=(2, 1), event_id="inventory-dup"),
            ev("inventory", "reservation_created", "13:00:04", units=(2, 1), event_id="inventory-dup"),
            CANCEL,
            ALL_ACKED[0],
            ALL_ACKED[2],
            LATER,
        ],
        {"phantom_units": 6},  # PLACED's 3 units + one (not two) copies of the duplicate
    ),
]


@pytest.mark.parametrize(("name", "events", "expect"), CASES, ids=[c[0] for c in CASES])
def test_contract_rule(name: str, events: list[Any], expect: dict[str, Any]) -> None:
    outcome = run(events)["BO-1"]
    got = legs(outcome)
    for leg, want in expect.get("legs", {}).items():
        assert got.get(leg) == want, f"{leg}: {got}"
    for leg in expect.get("absent", []):
        assert leg not in got
    for leg, seconds in expect.get("latency", {}).items():
        assert outcome.legs[leg].latency_s == seconds
    for field in (
        "state",
        "origin",
        "cancelled_at",
        "phantom_units",
        "picks_after_cancel",
        "pickup_attempts_after_cancel",
        "manual_closures",
    ):
        if field in expect:
            assert getattr(outcome, field) == expect[field], field


def test_never_cancelled_order_has_no_circuit() -> None:
    assert run([*PLACED, ev("store", "picked_up", "15:00"), LATER]) == {}


def test_record_shape_matches_the_contract() -> None:
    outcome = run([*PLACED, ev("wms", "pick_assigned", "13:30"), CANCEL, ALL_ACKED[0], LATER])["BO-1"]
    assert outcome.store_id == "S017"
    assert outcome.cancelled_at == "2026-11-27T14:01:00Z"
    assert outcome.legs["oms"].closed_at == "2026-11-27T14:01:04Z"
    assert outcome.legs["oms"].latency_s == 4.0
    assert outcome.legs["wms"].closed_at is None
    assert outcome.legs["wms"].latency_s is None


def test_a_stack_without_wms_inventory_or_notifications_is_configuration_only() -> None:
    config = CircuitConfig.model_validate(
        {
            "legs": {
                "oms": {"sla": "1m", "closed_by": [{"source": "oms", "type": "cancelled"}]},
                "storefront": {
                    "sla": "30s",
                    "owed_when": [{"source": "storefront"}],
                    "closed_by": [{"source": "storefront", "type": "cancelled"}],
                },
                "store": {
                    "sla": "5m",
                    "owed_when": [{"source": "store"}],
                    "closed_by": [{"source": "store", "type": "display_cleared"}],
                },
            }
        }
    )
    events = [
        ev("storefront", "order_placed", "13:00"),
        ev("store", "ready_for_pickup", "13:30"),
        CANCEL,
        ev("oms", "cancelled", "14:02:30"),
        ev("store", "display_cleared", "14:03"),
        LATER,
    ]
    outcome = run(events, config)["BO-1"]
    assert legs(outcome) == {"oms": "late", "storefront": "closed", "store": "closed"}
    assert outcome.state == "closed_late"
