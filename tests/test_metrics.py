"""The exposition: contract names, bounded labels, and numbers that agree with the outcomes."""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from circuitwatch.metrics.prometheus import build_registry, exposition
from circuitwatch.streams.replay import run_events
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker

CONTRACT = {
    "circuitwatch_events": ("counter", {"source", "type"}),
    "circuitwatch_events_rejected": ("counter", {"source", "reason"}),
    "circuitwatch_cancellations": ("counter", {"store", "origin"}),
    "circuitwatch_leg_closures": ("counter", {"leg", "timeliness"}),
    "circuitwatch_leg_breaches": ("counter", {"leg"}),
    "circuitwatch_leg_contradictions": ("counter", {"leg", "kind"}),
    "circuitwatch_open_circuits": ("gauge", set()),
    "circuitwatch_unclosed_legs": ("gauge", {"leg"}),
    "circuitwatch_leg_latency_seconds": ("histogram", {"leg"}),
    "circuitwatch_circuit_close_seconds": ("histogram", set()),
    "circuitwatch_phantom_units": ("gauge", {"store"}),
    "circuitwatch_reserved_units": ("gauge", {"store"}),
    "circuitwatch_picks_after_cancel": ("counter", {"store"}),
    "circuitwatch_pickup_attempts_after_cancel": ("counter", {"store"}),
    "circuitwatch_manual_closures": ("counter", {"leg"}),
    "circuitwatch_late_events": ("counter", {"source"}),
    "circuitwatch_watermark_timestamp_seconds": ("gauge", set()),
    "circuitwatch_last_event_timestamp_seconds": ("gauge", {"source"}),
}


def families(tracker: CircuitTracker) -> dict[str, object]:
    text = exposition(build_registry(tracker.stats, tracker.rules.legs)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, object], name: str, **labels: str) -> float:
    fam = fams[name]
    total = 0.0
    for s in fam.samples:  # type: ignore[attr-defined]
        if s.name in (name, name + "_total") and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def test_every_contract_metric_is_exposed_with_its_labels_before_any_event() -> None:
    fams = families(CircuitTracker())
    for name, (kind, labels) in CONTRACT.items():
        assert name in fams, name
        assert fams[name].type == kind, name  # type: ignore[attr-defined]
        for sample in fams[name].samples:  # type: ignore[attr-defined]
            assert set(sample.labels) - {"le"} == labels, name
    # pre-initialised: rate() over these is 0, not absent
    assert value(fams, "circuitwatch_leg_breaches", leg="wms") == 0
    assert value(fams, "circuitwatch_leg_closures", leg="customer", timeliness="late") == 0


def test_metrics_agree_with_the_outcome_records() -> None:
    sim = simulate(SimConfig(orders=3000, seed=21, failure_rate=0.2, late_arrival_rate=0.0))
    tracker = CircuitTracker()
    outcomes = run_events(tracker, sim.events).outcomes.values()
    fams = families(tracker)
    legs = Counter((leg, lo.outcome) for o in outcomes for leg, lo in o.legs.items())
    for leg in tracker.rules.legs:
        # a late leg was also open at its deadline: counted as a breach when the watermark passed it first
        breaches = value(fams, "circuitwatch_leg_breaches", leg=leg)
        assert legs[(leg, "breached")] <= breaches <= legs[(leg, "breached")] + legs[(leg, "late")], leg
        assert value(fams, "circuitwatch_leg_closures", leg=leg, timeliness="late") == legs[(leg, "late")], leg
        assert value(fams, "circuitwatch_leg_closures", leg=leg, timeliness="on_time") == legs[(leg, "closed")], leg
        unclosed = legs[(leg, "breached")] + legs[(leg, "contradicted")]
        assert value(fams, "circuitwatch_unclosed_legs", leg=leg) == unclosed, leg
    assert value(fams, "circuitwatch_cancellations") == len(outcomes)
    assert value(fams, "circuitwatch_picks_after_cancel") == sum(o.picks_after_cancel for o in outcomes)
    broken_inventory = sum(
        o.phantom_units for o in outcomes if o.legs.get("inventory", None) and o.legs["inventory"].outcome == "breached"
    )
    assert value(fams, "circuitwatch_phantom_units") == broken_inventory
    assert value(fams, "circuitwatch_open_circuits") == sum(o.state == "broken" for o in outcomes)
    events = sum(1 for _ in {(e.source, e.event_id) for e in sim.events})
    assert value(fams, "circuitwatch_events") == events


def test_no_order_id_or_sku_ever_becomes_a_label() -> None:
    sim = simulate(SimConfig(orders=300, seed=2))
    tracker = CircuitTracker()
    run_events(tracker, sim.events)
    text = exposition(build_registry(tracker.stats, tracker.rules.legs)).decode()
    assert "BO-" not in text
    assert "SKU-" not in text
