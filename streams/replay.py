"""Replay: canonical events from files through the tracker, in event time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from circuitwatch.events import Event, Rejected
from circuitwatch.streams.outcome import Outcome, encode
from circuitwatch.streams.reader import read_events
from circuitwatch.streams.tracker import CircuitTracker


@dataclass
class ReplayResult:
    """The latest record of every circuit, in the order circuits were cancelled."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    events: int = 0

    def ordered(self) -> list[Outcome]:
        return sorted(self.outcomes.values(), key=lambda o: (o.cancelled_at, o.order_id))

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o.state] = counts.get(o.state, 0) + 1
        return counts


def run_events(
    tracker: CircuitTracker,
    events: Iterable[Event],
    *,
    result: ReplayResult | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Feed events; a later record of a circuit replaces the earlier one."""
    result = result if result is not None else ReplayResult()
    outcomes = result.outcomes
    n = 0
    for ev in events:
        n += 1
        for outcome in tracker.on_event(ev):
            outcomes[outcome.order_id] = outcome
        if progress is not None and n % 4096 == 0:
            progress(4096)
    if progress is not None:
        progress(n % 4096)
    for outcome in tracker.flush():
        outcomes[outcome.order_id] = outcome
    result.events += n
    return result


def replay_files(
    tracker: CircuitTracker,
    paths: Iterable[str],
    on_reject: Callable[[Rejected], None],
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    return run_events(tracker, read_events(paths, on_reject), progress=progress)


def write_outcomes(outcomes: Iterable[Outcome], path: str | Path) -> int:
    n = 0
    with open(path, "wb") as fh:
        for outcome in outcomes:
            fh.write(encode(outcome) + b"\n")
            n += 1
    return n
