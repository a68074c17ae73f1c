"""Keeping the Faust table the source of truth for the in-memory tracker.

The tracker mutates `OrderState`s in place. `TouchedOrders` is the dict it keeps
them in, instrumented: every order the tracker looks up (an event, a wake-up)
or adds is remembered, every eviction too, so that after a batch exactly those
orders are written to the table (one write per order per batch) or deleted.
"""

from __future__ import annotations

from collections.abc import Iterable

from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.order_state import OrderState

_MISSING = object()


class TouchedOrders(dict[str, OrderState]):
    """A dict that records the keys the tracker read, set or deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[str] = set()
        self.deleted: set[str] = set()

    def get(self, key: str, default: OrderState | None = None) -> OrderState | None:  # type: ignore[override]
        self.touched.add(key)
        return super().get(key, default)

    def __setitem__(self, key: str, value: OrderState) -> None:
        self.touched.add(key)
        self.deleted.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.deleted.add(key)
        self.touched.discard(key)
        super().__delitem__(key)

    def drain(self) -> tuple[dict[str, bytes], set[str]]:
        """(serialised states to write, order ids to delete) since the last drain."""
        writes: dict[str, bytes] = {}
        for oid in self.touched:
            st = dict.get(self, oid)
            if st is not None:
                writes[oid] = st.to_bytes()
        deleted = self.deleted - writes.keys()
        self.touched = set()
        self.deleted = set()
        return writes, deleted


def reset_gauges(stats: TrackerStats) -> None:
    """Zero what `load_orders` rebuilds, keeping the monotonic counters."""
    stats.open_circuits = 0
    stats.tracked_orders = 0
    stats.unclosed_legs.clear()
    stats.phantom_units.clear()
    stats.reserved_units.clear()


def newest_event_time(states: Iterable[OrderState]) -> float | None:
    """The restored watermark source: the newest event time in the table.

    The order holding the newest event is never evicted (retention > 0), so the
    maximum over the table is the newest event time the worker had applied.
    """
    newest = max((st.last_ts for st in states), default=None)
    return newest if newest is not None and newest != float("-inf") else None
