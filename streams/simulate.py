"""A synthetic multi-store BOPIS day with injected handoff failures.

Deterministic for a seed. It writes its ground truth from what it *injected*
(never from the tracker), so replaying its events is a real test of the
tracker: every injected failure must be found, and nothing else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from circuitwatch.config import CircuitConfig, default_config
from circuitwatch.events import Event, Line

LEGS_WITH_CONTRADICTION = {"wms", "storefront", "store"}
FAILURE_MODES = (("never", 0.4), ("late", 0.3), ("contradicted", 0.2), ("manual", 0.1))
ORIGINS = (("storefront", 0.5), ("store", 0.3), ("oms", 0.2))


@dataclass
class SimConfig:
    orders: int = 5000
    seed: int = 7
    stores: int = 12
    day: date = date(2026, 11, 27)
    cancel_rate: float = 0.12
    failure_rate: float = 0.06  # per owed leg of a cancelled order (the origin's own leg never fails)
    leg_failure: dict[str, float] = field(default_factory=dict)  # per-leg override, e.g. {"wms": 0.9}
    out_of_order_rate: float = 0.05  # arrival delayed within the allowed lateness
    late_arrival_rate: float = 0.002  # arrival delayed beyond it (a correction)
    duplicate_rate: float = 0.01


@dataclass
class Simulation:
    events: list[Event]  # in arrival order
    truth: list[dict[str, Any]]  # one expected outcome per cancelled order


class _Day:
    def __init__(self, cfg: SimConfig, circuit: CircuitConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.sla = {name: leg.sla for name, leg in circuit.legs.items()}
        self.lateness = circuit.allowed_lateness
        self.start = datetime(cfg.day.year, cfg.day.month, cfg.day.day, 7, tzinfo=UTC)
        self.stores = [f"S{n:03d}" for n in range(1, cfg.stores + 1)]
        self.store_weights = [1.0 / (1 + i * 0.35) for i in range(cfg.stores)]  # a few busy stores
        self.out: list[tuple[float, int, Event]] = []  # (arrival, seq, event)
        self.seq = 0

    def emit(self, order: str, store: str, source: str, etype: str, at: datetime, **kw: Any) -> None:
        self.seq += 1
        ev = Event(
            event_id=f"{source}-{self.seq}",
            order_id=order,
            source=source,  # type: ignore[arg-type]
            type=etype,  # type: ignore[arg-type]
            occurred_at=at.replace(microsecond=0),
            store_id=store,
            **kw,
        )
        rng, cfg = self.rng, self.cfg
        delay = rng.uniform(0.0, 3.0)
        roll = rng.random()
        if roll < cfg.late_arrival_rate:
            delay = rng.uniform(self.lateness + 300, self.lateness + 1800)
        elif roll < cfg.late_arrival_rate + cfg.out_of_order_rate:
            delay = rng.uniform(10.0, self.lateness * 0.8)
        arrival = ev.occurred_at.timestamp() + delay
        self.out.append((arrival, self.seq, ev))
        if rng.random() < cfg.duplicate_rate:
            self.out.append((arrival + rng.uniform(1.0, 60.0), self.seq, ev))

    def order(self, i: int) -> dict[str, Any] | None:
        rng, cfg = self.rng, self.cfg
        oid = f"BO-{10000 + i}"
        store = rng.choices(self.stores, self.store_weights)[0]
        web = rng.random() < 0.85
        wms = rng.random() < 0.7
        if i == 0:  # the day's last pickup: keeps the watermark past every deadline
            t0 = self.start + timedelta(hours=12)
            pickup_delay = timedelta(hours=4.5)
        else:
            t0 = self.start + timedelta(seconds=rng.uniform(0, 12 * 3600))
            pickup_delay = timedelta(minutes=rng.uniform(30, 240))
        lines = tuple(
            Line(line_id=str(n + 1), sku=f"SKU-{rng.randint(1000, 9999)}", qty=rng.randint(1, 3))
            for n in range(rng.choice((1, 1, 1, 2, 2, 3, 4)))
        )
        units = sum(line.qty for line in lines)
        assign = t0 + timedelta(minutes=rng.uniform(5, 40))
        picked = assign + timedelta(minutes=rng.uniform(3, 20))
        staged = picked + timedelta(minutes=rng.uniform(2, 10))
        ready = staged + timedelta(minutes=1)
        pickup = ready + pickup_delay
        flow: list[tuple[str, str, datetime, dict[str, Any]]] = []
        if web:
            flow.append(("storefront", "order_placed", t0, {}))
        flow.append(("oms", "order_placed", t0 + timedelta(seconds=2), {}))
        flow.append(("inventory", "reservation_created", t0 + timedelta(seconds=4), {"lines": lines}))
        flow.append(("notify", "customer_notified", t0 + timedelta(seconds=30), {"attrs": {"kind": "confirmation"}}))
        if wms:
            flow.append(("wms", "pick_assigned", assign, {}))
            flow.append(("wms", "picked", picked, {}))
        else:
            flow.append(("store", "picked", picked, {}))
        flow.append(("store", "staged", staged, {}))
        flow.append(("store", "ready_for_pickup", ready, {}))
        flow.append(("notify", "customer_notified", ready + timedelta(seconds=20), {"attrs": {"kind": "ready"}}))
        if web:
            flow.append(("storefront", "status_changed", ready + timedelta(seconds=5), {"status": "ready_for_pickup"}))
        flow.append(("store", "picked_up", pickup, {}))
        if web:
            flow.append(("storefront", "status_changed", pickup + timedelta(seconds=5), {"status": "completed"}))

        cancel_at: datetime | None = None
        if i != 0 and rng.random() < cfg.cancel_rate:
            latest = min(pickup - timedelta(minutes=1), self.start + timedelta(hours=13, minutes=30))
            earliest = t0 + timedelta(minutes=1)
            if latest > earliest:
                cancel_at = (earliest + (latest - earliest) * rng.random()).replace(microsecond=0)
        for source, etype, at, kw in flow:
            if cancel_at is None or at < cancel_at:
                self.emit(oid, store, source, etype, at, **kw)
        if cancel_at is None:
            return None
        return self.cancel(oid, store, cancel_at, units, web=web, flow=flow)

    def cancel(
        self,
        oid: str,
        store: str,
        tc: datetime,
        units: int,
        *,
        web: bool,
        flow: list[tuple[str, str, datetime, dict[str, Any]]],
    ) -> dict[str, Any]:
        rng, cfg = self.rng, self.cfg
        origins = [(o, w) for o, w in ORIGINS if o != "storefront" or web]
        origin = rng.choices([o for o, _ in origins], [w for _, w in origins])[0]
        happened = {(s, t) for s, t, at, _ in flow if at < tc}
        owed = {"oms", "customer", "inventory"}
        if ("wms", "pick_assigned") in happened:
            owed.add("wms")
        if web:
            owed.add("storefront")
        if any(s == "store" for s, _ in happened) or origin == "store":
            owed.add("store")
        owed &= set(self.sla)
        if origin == "oms":
            self.emit(oid, store, "oms", "cancel_requested", tc)
        else:
            self.emit(oid, store, origin, "cancelled", tc)

        legs: dict[str, str] = {}
        picks = pickups = manual = 0
        for leg in sorted(owed):
            sla = self.sla[leg]
            deadline = tc + timedelta(seconds=sla)
            if leg == origin != "oms":  # its own `cancelled` closes the origin's leg (oms only requested)
                legs[leg] = "closed"
                continue
            rate = cfg.leg_failure.get(leg, cfg.failure_rate)
            mode = "ok"
            if rng.random() < rate:
                modes = [(m, w) for m, w in FAILURE_MODES if m != "contradicted" or leg in LEGS_WITH_CONTRADICTION]
                mode = rng.choices([m for m, _ in modes], [w for _, w in modes])[0]
            if mode == "ok":
                self._ack(oid, store, leg, tc + timedelta(seconds=rng.uniform(1, sla * 0.7)))
                legs[leg] = "closed"
            elif mode == "late":
                self._ack(oid, store, leg, deadline + timedelta(seconds=rng.uniform(30, 1200)))
                legs[leg] = "late"
            elif mode == "manual":
                at = tc + timedelta(hours=rng.uniform(1, 3))
                self.emit(oid, store, "oms", "manual_close", at, attrs={"leg": leg, "by": "ops"})
                legs[leg] = "late"
                manual += 1
            elif mode == "contradicted":
                at = tc + timedelta(seconds=rng.uniform(20, sla * 0.8))
                if leg == "wms":
                    self.emit(oid, store, "wms", "picked", at)
                    picks += 1
                elif leg == "storefront":
                    self.emit(oid, store, "storefront", "status_changed", at, status="reserved")
                elif rng.random() < 0.5:
                    self.emit(oid, store, "store", "picked_up", at)
                    pickups += 1
                else:
                    self.emit(oid, store, "store", "staged", at)
                legs[leg] = "contradicted"
            else:
                legs[leg] = "breached"
        inventory = legs.get("inventory")
        state = (
            "broken"
            if any(v in ("breached", "contradicted") for v in legs.values())
            else "closed_late"
            if "late" in legs.values()
            else "closed"
        )
        return {
            "order_id": oid,
            "store_id": store,
            "origin": origin,
            "cancelled_at": tc.isoformat().replace("+00:00", "Z"),
            "state": state,
            "legs": legs,
            "phantom_units": units if inventory in ("breached", "late") else 0,
            "picks_after_cancel": picks,
            "pickup_attempts_after_cancel": pickups,
            "manual_closures": manual,
        }

    def _ack(self, oid: str, store: str, leg: str, at: datetime) -> None:
        if leg == "oms":
            self.emit(oid, store, "oms", "cancelled", at)
        elif leg == "wms":
            self.emit(oid, store, "wms", "pick_released", at)
        elif leg == "inventory":
            self.emit(oid, store, "inventory", "reservation_released", at)
        elif leg == "storefront":
            self.emit(oid, store, "storefront", "status_changed", at, status="cancelled")
        elif leg == "store":
            self.emit(oid, store, "store", "display_cleared", at)
        elif leg == "customer":
            self.emit(oid, store, "notify", "customer_notified", at, attrs={"kind": "cancellation"})


def simulate(cfg: SimConfig | None = None, circuit: CircuitConfig | None = None) -> Simulation:
    """Simulate one day; the default circuit's legs and SLAs unless given."""
    cfg = cfg or SimConfig()
    day = _Day(cfg, circuit or default_config())
    truth = [t for i in range(cfg.orders) if (t := day.order(i)) is not None]
    day.out.sort(key=lambda item: (item[0], item[1]))
    return Simulation(events=[ev for _, _, ev in day.out], truth=truth)
