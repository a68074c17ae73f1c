"""Expose `TrackerStats` as the contract's `circuitwatch_*` metrics.

A custom collector reads the tracker's plain counters at scrape time, so the hot
path never calls prometheus_client. The registry is the caller's (never the
global one), and every bounded label value (legs, sources, types, timeliness,
reasons) is exported from the start, at zero, so `rate()` and `absent()` alerts
are not blind before the first incident. Store labels appear with the first
event of a store. No order id or SKU is ever a label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from circuitwatch.events import EVENT_TYPES, SOURCES
from circuitwatch.metrics.stats import Histogram, TrackerStats

PREFIX = "circuitwatch_"
TIMELINESS = ("on_time", "late")
CONTRADICTION_KINDS = ("picked", "staged", "picked_up", "status_changed")
REJECT_REASONS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "unknown_value",
    "naive_timestamp",
    "bad_timestamp",
    "renamed_field",  # payload drift seen by the source adapters
    "unknown_topic",
    "unresolved_order",
    "too_large",
)
STATES = ("closed", "closed_late", "broken", "open")


class TrackerCollector(Collector):
    def __init__(self, stats: TrackerStats, legs: Sequence[str], *, sources: Sequence[str] = SOURCES) -> None:
        self.stats = stats
        self.legs = tuple(legs)
        self.sources = tuple(sources)

    def collect(self) -> Iterable[Metric]:
        s, legs, sources = self.stats, self.legs, self.sources
        stores = sorted(set(s.stores))  # copy: the tracker thread may add a store meanwhile
        yield _counter(
            "events",
            "Canonical events accepted, by source and type.",
            ("source", "type"),
            {(src, t): 0 for src in sources for t in EVENT_TYPES},
            s.events,
        )
        yield _counter(
            "events_duplicate",
            "Events ignored because their event_id was already seen.",
            ("source",),
            {(src,): 0 for src in sources},
            _keyed(s.duplicates),
        )
        yield _counter(
            "events_rejected",
            "Input rejected to the dead letter, by source and reason.",
            ("source", "reason"),
            {(src, r): 0 for src in (*sources, "unknown") for r in REJECT_REASONS},
            s.rejected,
        )
        yield _counter(
            "cancellations",
            "Circuits opened: first cancellation signal of an order.",
            ("store", "origin"),
            {(st, o): 0 for st in stores for o in sources},
            s.cancellations,
        )
        yield _counter(
            "leg_closures",
            "Legs acknowledged, on time or late.",
            ("leg", "timeliness"),
            {(leg, t): 0 for leg in legs for t in TIMELINESS},
            s.closures,
        )
        yield _counter(
            "leg_breaches",
            "Legs still open at their deadline.",
            ("leg",),
            {(leg,): 0 for leg in legs},
            _keyed(s.breaches),
        )
        yield _counter(
            "leg_contradictions",
            "Systems that acted as if a cancelled order were live.",
            ("leg", "kind"),
            {(leg, k): 0 for leg in legs for k in CONTRADICTION_KINDS},
            s.contradictions,
        )
        yield _counter(
            "manual_closures",
            "Legs closed by a manual_close workaround.",
            ("leg",),
            {(leg,): 0 for leg in legs},
            _keyed(s.manual_closures),
        )
        yield _counter(
            "picks_after_cancel",
            "Pick events after the order was cancelled.",
            ("store",),
            {(st,): 0 for st in stores},
            _keyed(s.picks_after_cancel),
        )
        yield _counter(
            "pickup_attempts_after_cancel",
            "Pickups attempted on cancelled orders.",
            ("store",),
            {(st,): 0 for st in stores},
            _keyed(s.pickups_after_cancel),
        )
        yield _counter(
            "late_events",
            "Events that arrived behind the watermark (applied, record corrected).",
            ("source",),
            {(src,): 0 for src in sources},
            _keyed(s.late_events),
        )
        yield _counter(
            "outcomes_emitted",
            "Outcome records emitted (a correction is emitted again).",
            ("state",),
            {(st,): 0 for st in STATES},
            _keyed(s.outcomes_emitted),
        )
        yield _gauge("open_circuits", "Circuits with an owed leg not yet closed.", (), {(): s.open_circuits})
        yield _gauge("tracked_orders", "Orders held in tracker state.", (), {(): s.tracked_orders})
        yield _gauge(
            "unclosed_legs",
            "Legs past their deadline and still not closed (sync debt).",
            ("leg",),
            {(leg,): s.unclosed_legs.get(leg, 0) for leg in legs},
        )
        yield _gauge(
            "phantom_units",
            "Reserved units of cancelled orders past the inventory deadline.",
            ("store",),
            {(st,): s.phantom_units.get(st, 0) for st in stores},
        )
        yield _gauge(
            "reserved_units",
            "Units currently reserved, by store.",
            ("store",),
            {(st,): s.reserved_units.get(st, 0) for st in stores},
        )
        yield _gauge(
            "watermark_timestamp_seconds",
            "Event-time watermark: newest event time minus allowed lateness.",
            (),
            {(): max(s.watermark, 0.0)},
        )
        yield _gauge(
            "last_event_timestamp_seconds",
            "Event time of the newest event, by source.",
            ("source",),
            {(src,): ts for src, ts in dict(s.last_event).items()},
        )
        latency = HistogramMetricFamily(
            PREFIX + "leg_latency_seconds", "Cancellation to leg acknowledgement.", labels=("leg",)
        )
        for leg in legs:
            hist = s.leg_latency.get(leg) or Histogram()
            latency.add_metric([leg], hist.cumulative(), hist.sum)
        yield latency
        close = HistogramMetricFamily(
            PREFIX + "circuit_close_seconds", "Cancellation to the last owed leg acknowledged.", labels=()
        )
        close.add_metric([], s.circuit_close.cumulative(), s.circuit_close.sum)
        yield close


def _keyed(counter: Mapping[str, int]) -> dict[tuple[str, ...], int]:
    return {(k,): v for k, v in dict(counter).items()}


def _counter(
    name: str,
    doc: str,
    labels: Sequence[str],
    zeros: dict[Any, float],
    values: Mapping[Any, float],
) -> CounterMetricFamily:
    fam = CounterMetricFamily(PREFIX + name, doc, labels=labels)
    for key, value in {**zeros, **dict(values)}.items():
        fam.add_metric(list(key), value)
    return fam


def _gauge(name: str, doc: str, labels: Sequence[str], values: Mapping[Any, float]) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(PREFIX + name, doc, labels=labels)
    for key, value in values.items():
        fam.add_metric(list(key), value)
    return fam


def build_registry(stats: TrackerStats, legs: Sequence[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrackerCollector(stats, legs))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def write_exposition(registry: CollectorRegistry, path: str | Path) -> None:
    Path(path).write_bytes(exposition(registry))


class MetricsServer:
    """`/metrics` on a loopback port by default; port 0 picks a free one."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 9464) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.registry = registry
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
