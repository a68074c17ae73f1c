"""The simulator's injected ground truth is recovered exactly by the tracker."""

from __future__ import annotations

import pytest

from circuitwatch.streams.replay import run_events
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker

FIELDS = ("state", "origin", "store_id", "phantom_units", "picks_after_cancel", "pickup_attempts_after_cancel")


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(orders=4000, seed=7),
        SimConfig(orders=3000, seed=11, failure_rate=0.3, duplicate_rate=0.05, out_of_order_rate=0.2),
        SimConfig(orders=2000, seed=3, leg_failure={"wms": 0.9}, late_arrival_rate=0.02),
    ],
    ids=["default-day", "chaotic-day", "wms-outage"],
)
def test_replay_recovers_the_injected_truth(cfg: SimConfig) -> None:
    sim = simulate(cfg)
    outcomes = run_events(CircuitTracker(), sim.events).outcomes
    truth = {t["order_id"]: t for t in sim.truth}
    assert set(outcomes) == set(truth)

    expected_broken = {
        (o, leg) for o, t in truth.items() for leg, v in t["legs"].items() if v in {"breached", "contradicted"}
    }
    found_broken = {
        (o, leg)
        for o, rec in outcomes.items()
        for leg, lo in rec.legs.items()
        if lo.outcome in {"breached", "contradicted"}
    }
    assert expected_broken, "the simulation injected no failures"
    true_positives = len(expected_broken & found_broken)
    assert true_positives / len(found_broken) == 1.0  # precision
    assert true_positives / len(expected_broken) == 1.0  # recall

    for oid, t in truth.items():
        rec = outcomes[oid]
        assert {leg: lo.outcome for leg, lo in rec.legs.items()} == t["legs"], oid
        assert rec.cancelled_at == t["cancelled_at"]
        assert rec.manual_closures == t["manual_closures"]
        for field in FIELDS:
            assert getattr(rec, field) == t[field], (oid, field)


def test_same_seed_same_day() -> None:
    assert simulate(SimConfig(orders=200, seed=5)).events == simulate(SimConfig(orders=200, seed=5)).events
    assert simulate(SimConfig(orders=200, seed=5)).events != simulate(SimConfig(orders=200, seed=6)).events
