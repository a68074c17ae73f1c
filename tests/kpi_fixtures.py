"""A small hand-made set of outcome records whose weekly figures are worked out by hand in the tests.

Default SLAs (s): oms 120, wms 300, inventory 300, storefront 120, store 600, customer 900.
Europe/Berlin is UTC+1 in November: 2026-W48 runs 2026-11-22T23:00Z .. 2026-11-29T23:00Z.

A  S001 storefront  Tue 11-24 10:00Z  closed       slowest leg customer 300 s
B  S001 store       Wed 11-25 12:00Z  closed_late  inventory late (closed 12:35, deadline 12:05, 3 units),
                                                   wms late via manual close, 1 pick after cancel
C  S002 oms         Thu 11-26 08:00Z  broken       wms contradicted, inventory breached (2 units),
                                                   2 picks and 1 pickup attempt after cancel
D  S002 storefront  Sun 11-29 22:50Z  closed_late  spans two weeks: inventory closed Mon 11-30 00:55Z
                    (23:50 local)                  (deadline 22:55Z, 1 unit)
E  S003 oms         11-22 23:30Z      closed       Monday 00:30 in Berlin (W48) but Sunday in UTC (W47)
F  S001 storefront  11-18 09:00Z      broken       week before; storefront breached, still open
G  S004 oms         11-20 10:00Z      closed       week before; S004 has nothing in W48
"""

from __future__ import annotations

from circuitwatch.streams.outcome import LegOutcome, Outcome


def leg(outcome: str, closed_at: str | None = None, latency_s: float | None = None) -> LegOutcome:
    return LegOutcome(outcome, closed_at, latency_s)


def outcome(oid: str, store: str, origin: str, at: str, state: str, legs: dict[str, LegOutcome], **kw: int) -> Outcome:
    return Outcome(
        order_id=oid,
        store_id=store,
        origin=origin,
        cancelled_at=at,
        state=state,
        legs=legs,
        phantom_units=kw.get("phantom", 0),
        picks_after_cancel=kw.get("picks", 0),
        pickup_attempts_after_cancel=kw.get("pickups", 0),
        manual_closures=kw.get("manual", 0),
    )


def hand_made() -> list[Outcome]:
    return [
        outcome(
            "BO-A",
            "S001",
            "storefront",
            "2026-11-24T10:00:00Z",
            "closed",
            {
                "oms": leg("closed", "2026-11-24T10:01:00Z", 60.0),
                "inventory": leg("closed", "2026-11-24T10:02:00Z", 120.0),
                "storefront": leg("closed", "2026-11-24T10:00:00Z", 0.0),
                "customer": leg("closed", "2026-11-24T10:05:00Z", 300.0),
            },
        ),
        outcome(
            "BO-B",
            "S001",
            "store",
            "2026-11-25T12:00:00Z",
            "closed_late",
            {
                "oms": leg("closed", "2026-11-25T12:00:30Z", 30.0),
                "wms": leg("late", "2026-11-25T12:20:00Z", 1200.0),
                "inventory": leg("late", "2026-11-25T12:35:00Z", 2100.0),
                "store": leg("closed", "2026-11-25T12:00:00Z", 0.0),
                "customer": leg("closed", "2026-11-25T12:10:00Z", 600.0),
            },
            phantom=3,
            picks=1,
            manual=1,
        ),
        outcome(
            "BO-C",
            "S002",
            "oms",
            "2026-11-26T08:00:00Z",
            "broken",
            {
                "oms": leg("closed", "2026-11-26T08:00:10Z", 10.0),
                "wms": leg("contradicted"),
                "inventory": leg("breached"),
                "customer": leg("closed", "2026-11-26T08:03:00Z", 180.0),
            },
            phantom=2,
            picks=2,
            pickups=1,
        ),
        outcome(
            "BO-D",
            "S002",
            "storefront",
            "2026-11-29T22:50:00Z",
            "closed_late",
            {
                "oms": leg("closed", "2026-11-29T22:51:00Z", 60.0),
                "inventory": leg("late", "2026-11-30T00:55:00Z", 7500.0),
                "storefront": leg("closed", "2026-11-29T22:50:00Z", 0.0),
                "customer": leg("closed", "2026-11-29T23:00:00Z", 600.0),
            },
            phantom=1,
        ),
        outcome(
            "BO-E",
            "S003",
            "oms",
            "2026-11-22T23:30:00Z",
            "closed",
            {
                "oms": leg("closed", "2026-11-22T23:31:00Z", 60.0),
                "customer": leg("closed", "2026-11-22T23:40:00Z", 600.0),
            },
        ),
        outcome(
            "BO-F",
            "S001",
            "storefront",
            "2026-11-18T09:00:00Z",
            "broken",
            {
                "oms": leg("closed", "2026-11-18T09:01:00Z", 60.0),
                "storefront": leg("breached"),
                "customer": leg("closed", "2026-11-18T09:10:00Z", 600.0),
            },
        ),
        outcome(
            "BO-G",
            "S004",
            "oms",
            "2026-11-20T10:00:00Z",
            "closed",
            {
                "oms": leg("closed", "2026-11-20T10:00:40Z", 40.0),
                "customer": leg("closed", "2026-11-20T10:02:00Z", 120.0),
            },
        ),
    ]
