"""Properties the contract promises, checked on simulated days (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitwatch.config import default_config
from circuitwatch.events import Event
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.replay import ReplayResult, run_events
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker

LATENESS = default_config().allowed_lateness
small_days = st.builds(
    SimConfig,
    orders=st.integers(20, 120),
    seed=st.integers(0, 10_000),
    cancel_rate=st.sampled_from([0.3, 0.6]),
    failure_rate=st.sampled_from([0.1, 0.4]),
    out_of_order_rate=st.just(0.0),
    late_arrival_rate=st.just(0.0),
    duplicate_rate=st.just(0.0),
)
common = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def final(events: list[Event], tracker: CircuitTracker | None = None) -> dict[str, Outcome]:
    return run_events(tracker or CircuitTracker(), events).outcomes


def reorder_within_lateness(events: list[Event], rng: random.Random) -> list[Event]:
    """Delay each event's arrival by less than the allowed lateness."""
    arrivals = [(ev.ts + rng.uniform(0, LATENESS * 0.95), i, ev) for i, ev in enumerate(events)]
    return [ev for _, _, ev in sorted(arrivals)]


@common
@given(day=small_days, shuffle_seed=st.integers(0, 2**32))
def test_arrival_order_within_lateness_does_not_change_outcomes(day: SimConfig, shuffle_seed: int) -> None:
    events = simulate(day).events
    in_time_order = sorted(events, key=lambda ev: ev.ts)
    reordered = reorder_within_lateness(events, random.Random(shuffle_seed))
    baseline_tracker, reordered_tracker = CircuitTracker(), CircuitTracker()
    assert final(reordered, reordered_tracker) == final(in_time_order, baseline_tracker)
    assert sum(reordered_tracker.stats.late_events.values()) == 0


@common
@given(day=small_days, shuffle_seed=st.integers(0, 2**32))
def test_any_arrival_order_gives_the_same_final_outcomes(day: SimConfig, shuffle_seed: int) -> None:
    """Even far behind the watermark: late events are applied and records corrected."""
    config = default_config().model_copy(
        update={"retention": default_config().retention.model_copy(update={"closed": 30 * 86400.0})}
    )
    events = simulate(day).events
    shuffled = list(events)
    random.Random(shuffle_seed).shuffle(shuffled)
    in_order = final(sorted(events, key=lambda ev: ev.ts), CircuitTracker(config))
    tracker = CircuitTracker(config)
    assert final(shuffled, tracker) == in_order
    # ...and every leg closure is counted once, however often a late signal reclassifies it
    # (a cancellation dated earlier can turn an on-time close into a late one)
    closed = sum(1 for o in in_order.values() for leg in o.legs.values() if leg.outcome in ("closed", "late"))
    assert sum(tracker.stats.closures.values()) == closed
    assert sum(h.count for h in tracker.stats.leg_latency.values()) == closed


@common
@given(day=small_days, data=st.data())
def test_duplicates_change_nothing(day: SimConfig, data: st.DataObject) -> None:
    events = simulate(day).events
    picks = data.draw(st.lists(st.integers(0, len(events) - 1), min_size=1, max_size=50))
    with_dups = list(events)
    for i in sorted(picks, reverse=True):
        with_dups.insert(min(i + 3, len(with_dups)), events[i])
    plain, duped = CircuitTracker(), CircuitTracker()
    assert final(with_dups, duped) == final(events, plain)
    assert duped.stats.events == plain.stats.events
    assert sum(duped.stats.duplicates.values()) == len(picks)


@common
@given(day=small_days, cut=st.floats(0.0, 1.0))
def test_split_replay_with_state_carried_over_equals_one_run(day: SimConfig, cut: float) -> None:
    events = simulate(day).events
    k = int(len(events) * cut)
    one_run = final(events)

    first = CircuitTracker()
    partial = ReplayResult()
    for ev in events[:k]:
        for outcome in first.on_event(ev):
            partial.outcomes[outcome.order_id] = outcome
    second = CircuitTracker()
    second.restore(first.snapshot())
    assert run_events(second, events[k:], result=partial).outcomes == one_run
