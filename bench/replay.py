"""Replay throughput and tracker memory, against baselines measured in the same run.

    python bench/replay.py [--events 1000000] [--seed 7]

Prints: events/s of a plain orjson decode of the file's lines (the baseline), of
msgspec and pydantic decode+validate (why events are msgspec Structs), of the
whole replay as `circuitwatch replay FILE` runs it (read the file + decode and
validate + track + keep the latest outcome record per circuit), the
replay/orjson ratio (target >= 0.25), and the tracker's memory per tracked order
(target < 1 KB). Each rate is the best of --repeat runs in this process
(pydantic: of --repeat - 2). The simulated file is cached under .cache/bench/.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pydantic

from circuitwatch.events import Rejected, decode, encode
from circuitwatch.streams.replay import ReplayResult, replay_files
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"
EVENTS_PER_ORDER = 11.6


class PydanticLine(pydantic.BaseModel):
    line_id: str
    sku: str
    qty: int = pydantic.Field(ge=0)


class PydanticEvent(pydantic.BaseModel):
    """The same schema as circuitwatch.events.Event, for comparison only."""

    event_id: str = pydantic.Field(min_length=1)
    order_id: str = pydantic.Field(min_length=1)
    source: Literal["oms", "wms", "inventory", "storefront", "store", "notify"]
    type: str
    occurred_at: pydantic.AwareDatetime
    store_id: str | None = None
    lines: tuple[PydanticLine, ...] = ()
    status: str | None = None
    attrs: dict[str, Any] = {}


def events_file(n_events: int, seed: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"day-{n_events}-{seed}.jsonl"
    if not path.exists():
        sim = simulate(SimConfig(orders=int(n_events / EVENTS_PER_ORDER), seed=seed))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(encode(ev) + b"\n" for ev in sim.events))
        tmp.rename(path)
    return path


def rate(lines: list[bytes], fn: Callable[[bytes], object], repeat: int = 3) -> float:
    """Best of `repeat` passes, results dropped as they come (as a stream would)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for line in lines:
            fn(line)
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


def replay_rate(path: Path, repeat: int = 3) -> tuple[float, CircuitTracker, ReplayResult]:
    """Best of `repeat` runs of what `circuitwatch replay FILE` does before writing its output.

    Reading the file is part of it (the baseline decodes lines already in memory).
    """
    best = float("inf")
    tracker, result = CircuitTracker(), ReplayResult()
    for _ in range(repeat):
        gc.collect()
        tracker = CircuitTracker()
        rejected: list[Rejected] = []
        start = time.perf_counter()
        result = replay_files(tracker, [str(path)], rejected.append)
        best = min(best, time.perf_counter() - start)
        assert not rejected, rejected[0].describe()
    return result.events / best, tracker, result


def memory_per_order(lines: Iterable[bytes], stop_at: datetime) -> tuple[float, int, int]:
    """Traced bytes held by the tracker / orders it holds, mid-day (most orders open)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracker = CircuitTracker()
    cutoff = stop_at.timestamp()
    for line in lines:
        ev = decode(line)
        if ev.ts > cutoff:
            break
        tracker.on_event(ev)
    del ev
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    circuits = sum(1 for st in tracker.orders.values() if st.cancelled)
    return held / max(len(tracker.orders), 1), len(tracker.orders), circuits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path = events_file(args.events, args.seed)
    lines = path.read_bytes().splitlines()
    size = sum(map(len, lines)) / len(lines)
    print(f"file: {path.name}: {len(lines):,} events, {size:.0f} bytes/event on average")

    base = rate(lines, orjson.loads, args.repeat)
    msgspec_rate = rate(lines, decode, args.repeat)
    pydantic_rate = rate(lines, PydanticEvent.model_validate_json, max(1, args.repeat - 2))
    replay, tracker, result = replay_rate(path, args.repeat)
    print(f"orjson decode (baseline)        {base:>10,.0f} events/s")
    print(f"msgspec decode+validate         {msgspec_rate:>10,.0f} events/s   {msgspec_rate / base:5.2f} x baseline")
    print(f"pydantic model_validate_json    {pydantic_rate:>10,.0f} events/s   {pydantic_rate / base:5.2f} x baseline")
    print(
        f"replay: read + decode + track   {replay:>10,.0f} events/s   {replay / base:5.2f} x baseline (target >= 0.25)"
    )
    print(f"  circuits: {len(result.outcomes):,} records, {len(tracker.orders):,} orders tracked at the end")

    midday = datetime.fromisoformat("2026-11-27T16:00:00+00:00")
    per_order, orders, circuits = memory_per_order(lines, midday)
    print(
        f"tracker memory mid-day: {per_order:,.0f} bytes per tracked order "
        f"({orders:,} orders, {circuits:,} open circuits; target < 1024)"
    )


if __name__ == "__main__":
    main()
