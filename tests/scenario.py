"""A tiny language for circuit scenarios: events by (source, type, clock time)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from circuitwatch.config import CircuitConfig
from circuitwatch.events import Event, Line
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.replay import run_events
from circuitwatch.streams.tracker import CircuitTracker

DAY = datetime(2026, 11, 27, tzinfo=UTC)
_ids = itertools.count(1)


def at(clock: str) -> datetime:
    """'14:01' or '14:01:30' on the scenario day, UTC."""
    parts = [int(p) for p in clock.split(":")]
    h, m, s = ([*parts, 0, 0])[:3]
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def ev(source: str, etype: str, clock: str, order: str = "BO-1", **kw: Any) -> Event:
    lines = tuple(Line(line_id=str(i), sku=f"SKU-{i}", qty=q) for i, q in enumerate(kw.pop("units", ()), 1))
    return Event(
        event_id=kw.pop("event_id", f"{source}-{next(_ids)}"),
        order_id=order,
        source=source,  # type: ignore[arg-type]
        type=etype,  # type: ignore[arg-type]
        occurred_at=at(clock),
        store_id=kw.pop("store_id", "S017"),
        lines=lines,
        **kw,
    )


def tick(clock: str) -> Event:
    """An unrelated order's event: moves the watermark, nothing else."""
    return ev("oms", "order_placed", clock, order=f"TICK-{next(_ids)}")


def run(events: list[Event], config: CircuitConfig | None = None) -> dict[str, Outcome]:
    return run_events(CircuitTracker(config), events).outcomes


def legs(outcome: Outcome) -> dict[str, str]:
    return {name: leg.outcome for name, leg in outcome.legs.items()}
