"""The tracker's metric updates, as plain numbers.

The core counts into these dicts (a dict increment costs ~50 ns; a labelled
prometheus_client call costs ~1 µs, which the hot path cannot pay per event).
`metrics.prometheus` reads them at scrape time; nothing here does I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

# Leg acknowledgements take seconds to hours; a late one can take a day.
LATENCY_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
)  # fmt: skip


@dataclass
class Histogram:
    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class TrackerStats:
    """Counters (monotonic) and gauges (set from tracker state) by label tuple."""

    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, type)
    duplicates: Counter[str] = field(default_factory=Counter)  # source
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, reason)
    cancellations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (store, origin)
    closures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (leg, timeliness)
    breaches: Counter[str] = field(default_factory=Counter)  # leg
    contradictions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (leg, kind)
    manual_closures: Counter[str] = field(default_factory=Counter)  # leg
    picks_after_cancel: Counter[str] = field(default_factory=Counter)  # store
    pickups_after_cancel: Counter[str] = field(default_factory=Counter)  # store
    late_events: Counter[str] = field(default_factory=Counter)  # source
    outcomes_emitted: Counter[str] = field(default_factory=Counter)  # state
    evicted: Counter[str] = field(default_factory=Counter)  # why
    # gauges
    open_circuits: int = 0
    tracked_orders: int = 0
    unclosed_legs: Counter[str] = field(default_factory=Counter)  # leg
    phantom_units: Counter[str] = field(default_factory=Counter)  # store
    reserved_units: Counter[str] = field(default_factory=Counter)  # store
    watermark: float = 0.0
    last_event: dict[str, float] = field(default_factory=dict)  # source -> event time
    # histograms
    leg_latency: dict[str, Histogram] = field(default_factory=dict)
    circuit_close: Histogram = field(default_factory=Histogram)
    stores: set[str] = field(default_factory=set)

    def reject(self, source: str, reason: str) -> None:
        self.rejected[(source, reason)] += 1

    def latency(self, leg: str) -> Histogram:
        hist = self.leg_latency.get(leg)
        if hist is None:
            hist = self.leg_latency[leg] = Histogram()
        return hist
