"""`/metrics` of a worker: the contract's metrics plus who owns which partitions."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from circuitwatch.metrics.prometheus import MetricsServer, build_registry
from circuitwatch.streams.faust.app import Runtime


class WorkerCollector(Collector):
    """Scale-out seen from outside: partitions owned, tracker rebuilds."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterable[Metric]:
        rt = self.rt
        try:
            owned = len(rt.assigned_partitions())
        except Exception:  # the consumer is not started yet
            owned = 0
        yield GaugeMetricFamily(
            "circuitwatch_worker_assigned_partitions",
            "Partitions of the canonical events topic this worker owns.",
            value=owned,
        )
        restarts = CounterMetricFamily(
            "circuitwatch_worker_loop_restarts",
            "Failures the validator and the outcome sink survived (broker, database); each replays its batch.",
            labels=["loop"],
        )
        for loop in (rt.repartitioner, rt.outcome_sink):
            if loop is not None:
                restarts.add_metric([loop.name], loop.restarts)
        yield restarts
        yield CounterMetricFamily(
            "circuitwatch_worker_rebuilds",
            "Tracker rebuilds from the table (start, rebalance, recovery).",
            value=rt.rebuilds,
        )


def start_metrics(rt: Runtime) -> MetricsServer:
    registry = build_registry(rt.stats, rt.tracker.rules.legs)
    registry.register(WorkerCollector(rt))
    rt.metrics = MetricsServer(registry, host=rt.settings.metrics_host, port=rt.settings.metrics_port)
    return rt.metrics
