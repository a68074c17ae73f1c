"""The replay fast path's shortcuts give exactly what the plain computation gives.

Each shortcut in the tracker's hot path (seeded checksums, packed bytes instead
of arrays, cached and hand-formatted record text, plans that skip `_apply`) is
checked here against the straightforward form it replaces, including the state
layout that snapshots and Faust tables already hold.
"""

from __future__ import annotations

import random
from array import array
from datetime import UTC, datetime
from pathlib import Path
from zlib import adler32, crc32

import pytest

from circuitwatch.events import EVENT_TYPES, SOURCES, Event, Rejected, encode
from circuitwatch.streams.order_state import MAX_ACTS, OrderState
from circuitwatch.streams.outcome import iso
from circuitwatch.streams.reader import read_events
from circuitwatch.streams.rules import COUNTED_KINDS
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import _HASH_SEEDS, _PACK_HASH, CircuitTracker, _event_hash, _iso, _latency


@pytest.mark.parametrize("source", SOURCES)
def test_seeded_checksums_give_the_event_hash_in_the_array_layout(source: str) -> None:
    rng = random.Random(source)
    ids = ["", "x", "wms-88123", "ünïcødé-€", *(f"{source}-{rng.getrandbits(40)}" for _ in range(200))]
    crc, adl = _HASH_SEEDS[source]
    for event_id in ids:
        raw = event_id.encode()
        key = _PACK_HASH(crc32(raw, crc) << 32 | adler32(raw, adl))
        assert key == array("Q", [_event_hash(source, event_id)]).tobytes()


def test_seen_counts_only_whole_hashes() -> None:
    st = OrderState()
    st.seen = array("Q", [0x1122334455667788, 0x99AABBCCDDEEFF00]).tobytes()
    assert st.has_seen(st.seen[:8])
    assert st.has_seen(st.seen[8:])
    assert not st.has_seen(st.seen[4:12])  # straddles two hashes
    st.seen += st.seen[4:12]  # ... until it is a hash of its own, after the straddling match
    assert st.has_seen(st.seen[4:12])


def test_state_keeps_the_snapshot_layout_and_restored_state_still_dedupes() -> None:
    events = simulate(SimConfig(orders=60, seed=5, cancel_rate=0.5, duplicate_rate=0.0)).events
    tracker = CircuitTracker()
    for ev in events:
        tracker.on_event(ev)
    for oid, st in tracker.orders.items():
        mine = [ev for ev in events if ev.order_id == oid]
        assert st.seen == array("Q", [_event_hash(ev.source, ev.event_id) for ev in mine]).tobytes()
        acts = [(ts, legs * 16 + EVENT_TYPES.index(kind)) for ts, legs, kind in st.acts()]
        assert st.contra == (array("d", [x for act in acts for x in act]).tobytes() if acts else None)
    again = CircuitTracker()
    again.restore(tracker.snapshot())
    assert all(again.on_event(ev) == [] for ev in events)
    assert sum(again.stats.duplicates.values()) == len(events)
    assert again.snapshot() == tracker.snapshot()


def test_acts_after_agrees_with_acts() -> None:
    rng = random.Random(3)
    st = OrderState()
    assert st.acts_after(0.0) == (0, 0, 0)
    for _ in range(MAX_ACTS + 5):
        st.add_act(rng.uniform(0, 100), rng.getrandbits(6), rng.choice(EVENT_TYPES))
    assert len(list(st.acts())) == MAX_ACTS
    for cancel in (-1.0, 25.0, 50.0, 99.0, 200.0):
        after = [(legs, kind) for ts, legs, kind in st.acts() if ts > cancel]
        legs = 0
        for bits, _ in after:
            legs |= bits
        picks = sum(kind == "picked" for _, kind in after)
        pickups = sum(kind == "picked_up" for _, kind in after)
        assert st.acts_after(cancel) == (legs, picks, pickups)


def test_record_text_matches_outcome_formatting() -> None:
    rng = random.Random(11)
    times = [0.0, -1.0, -86401.0, 1795000000.0, 1795000000.5, 1e-6, 253402300799.0, -62135596800.0]
    times += [float(rng.randint(-62135596800, 253402300799)) for _ in range(3000)]
    times += [rng.uniform(-1e10, 1e10) for _ in range(3000)]
    assert [_iso(t) for t in times] == [iso(t) for t in times]
    spans = [0.0, -0.0, -3.0, 5.0, 1.2345, 1.0005, 0.0004, *(rng.uniform(-10, 1e6) for _ in range(3000))]
    assert [repr(_latency(s)) for s in spans] == [repr(round(max(0.0, s), 3)) for s in spans]


def test_plans_that_skip_apply_only_owe() -> None:
    plans = CircuitTracker().rules.plans
    skipping = {(s, t) for s, by_type in plans.items() for t, plan in by_type.items() if plan.only_owes}
    for source, etype in skipping:
        plan = plans[source][etype]
        assert (plan.close, plan.conditional, plan.remember, plan.special) == ((), (), False, False)
        assert (plan.key, plan.kind) == ((source, etype), etype)
        assert plan.counted == (etype in COUNTED_KINDS)
    assert {("oms", "order_placed"), ("wms", "pick_assigned"), ("store", "ready_for_pickup")} <= skipping


def test_whitespace_lines_are_skipped_and_numbering_holds(tmp_path: Path) -> None:
    at = datetime(2026, 11, 27, 14, tzinfo=UTC)
    line = encode(Event(event_id="oms-1", order_id="BO-1", source="oms", type="order_placed", occurred_at=at))
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([line, b"", b"  \t", b"\x0c", b"\r", b"{oops", line.replace(b"oms-1", b"oms-2")]))
    rejects: list[Rejected] = []
    assert [e.event_id for e in read_events([str(path)], rejects.append)] == ["oms-1", "oms-2"]
    assert [(r.line, r.reason) for r in rejects] == [(6, "malformed_json")]
