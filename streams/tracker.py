"""The circuit tracker: events in, outcome records and metric updates out.

Pure and deterministic: no I/O, no wall clock. Time comes from the events (the
watermark is the newest event time minus the allowed lateness) and, in live
mode, from `advance_clock(ts)` called by the runtime. The same object runs in
`demo`, `replay` and the Faust worker.

Shape, after bytewax's windowing logic: `on_event` (bytewax `on_item`),
`advance_clock` (`on_notify`), `flush` (`on_eof`), `snapshot`/`restore`.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Iterator
from hashlib import blake2b
from typing import Any

import msgspec

from circuitwatch.config import CircuitConfig, default_config
from circuitwatch.events import CANCEL_SIGNALS, Event
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.order_state import (
    BREACHED,
    CLOSED,
    CONTRA_DUE,
    CONTRA_OPEN,
    INF,
    LATE,
    LEG_OUTCOME,
    NOT_CLOSED,
    NOT_OWED,
    OPEN,
    PENDING,
    UNCLOSED_DUE,
    OrderState,
)
from circuitwatch.streams.outcome import LegOutcome, Outcome, iso
from circuitwatch.streams.rules import CLOSE, CONTRADICT, OWE, Rules

SNAPSHOT_VERSION = 1
_SOURCE_RANK = {s: i for i, s in enumerate(("oms", "storefront", "store", "wms", "inventory", "notify"))}
_COUNTED_KINDS = frozenset({"picked", "picked_up"})  # counted after cancel even without a leg
NO_STORE = "unknown"
# Two codes read the same in a record: a contradicted leg before and after its deadline.
_VISIBLE = bytes(CONTRA_OPEN if c == CONTRA_DUE else c for c in range(256))


def _event_hash(source: str, event_id: str) -> int:
    return int.from_bytes(blake2b(f"{source}\0{event_id}".encode(), digest_size=8).digest(), "little")


class CircuitTracker:
    def __init__(self, config: CircuitConfig | None = None, stats: TrackerStats | None = None) -> None:
        self.config = config or default_config()
        self.rules = Rules.compile(self.config)
        self.stats = stats if stats is not None else TrackerStats()
        self.orders: dict[str, OrderState] = {}
        self._wakes: list[tuple[float, str]] = []
        self._newest = -INF  # newest event time seen
        self._clock = -INF  # newest wall-clock time passed in (live mode)
        self.now = -INF  # watermark: everything before it is taken as complete
        self._inventory = self.rules.leg_index("inventory")
        self._n = len(self.rules.legs)
        for leg in self.rules.legs:
            self.stats.latency(leg)

    # -- input -------------------------------------------------------------

    def on_event(self, ev: Event) -> list[Outcome]:
        """Apply one event; returns the outcome records it changed or finalised."""
        out: list[Outcome] = []
        ts = ev.occurred_at.timestamp()
        source, etype = ev.source, ev.type
        oid = ev.order_id
        st = self.orders.get(oid)
        if st is None:
            st = self.orders[oid] = OrderState()
            self.stats.tracked_orders += 1
        h = _event_hash(source, ev.event_id)
        if h in st.seen:
            self.stats.duplicates[source] += 1
            return out
        st.seen.append(h)
        stats = self.stats
        stats.events[(source, etype)] += 1
        if ts > stats.last_event.get(source, -INF):
            stats.last_event[source] = ts
        if ts < self.now:
            stats.late_events[source] += 1
        if ts > st.last_ts:
            st.last_ts = ts
        if ev.store_id is not None and ts < st.store_ts:
            st.store, st.store_ts = ev.store_id, ts
        self._apply(st, ev, ts)
        if st.cancelled:
            self._refresh(oid, st, out)
        else:
            self._report_units(st)
            if st.wake_at == INF:
                self._schedule(oid, st, ts + self.rules.retention_inactive)
        if ts > self._newest:
            self._newest = ts
            self._advance(out)
        return out

    def advance_clock(self, wall_ts: float) -> list[Outcome]:
        """Live mode: time passes even when a leg is silent."""
        out: list[Outcome] = []
        if wall_ts > self._clock:
            self._clock = wall_ts
            self._advance(out)
        return out

    def flush(self) -> list[Outcome]:
        """The current record of every tracked circuit (end of a replay)."""
        return [self._record(oid, st) for oid, st in self.orders.items() if st.cancelled]

    # -- facts -------------------------------------------------------------

    def _apply(self, st: OrderState, ev: Event, ts: float) -> None:
        etype = ev.type
        rules = self.rules
        contradicts = 0
        for action in rules.actions.get((ev.source, etype), ()):
            if (action.status is not None or action.attrs) and not rules.matches(action, ev.status, ev.attrs):
                continue
            bit = 1 << action.leg
            if action.role == OWE:
                st.owed |= bit
            elif action.role == CLOSE:
                self._close(st, action.leg, ts, manual=False)
            elif action.role == CONTRADICT:
                contradicts |= bit
        if contradicts or etype in _COUNTED_KINDS:
            st.owed |= contradicts  # a system that acted on the order knew it
            self._note_contra(st, ts, contradicts, etype)
        if etype == "reservation_created":
            st.units += sum(line.qty for line in ev.lines)
        elif etype == "reservation_released":
            st.released_at = min(st.released_at, ts)
        elif etype == "picked_up":
            st.pickup_at = min(st.pickup_at, ts)
        elif etype == "manual_close":
            leg = rules.leg_index(ev.attrs.get("leg"))
            if leg >= 0:
                self._close(st, leg, ts, manual=True)
        elif etype in CANCEL_SIGNALS:
            key = (ts, _SOURCE_RANK.get(ev.source, 9))
            previous = st.cancel_at
            if st.origin is None or key < (st.cancel_at, _SOURCE_RANK.get(st.origin, 9)):
                st.cancel_at, st.origin = ts, ev.source
                if previous == INF:
                    st.owed |= rules.always_owed
                    self.stats.cancellations[(st.store or NO_STORE, ev.source)] += 1
                    self.stats.stores.add(st.store or NO_STORE)
                self._count_after_cancel(st, ts, previous)

    def _close(self, st: OrderState, leg: int, ts: float, *, manual: bool) -> None:
        if st.closes is None:
            st.closes = array("d", [INF]) * (2 * self._n)
        slot = leg + self._n if manual else leg
        if ts < st.closes[slot]:
            st.closes[slot] = ts

    def _note_contra(self, st: OrderState, ts: float, legs: int, kind: str) -> None:
        if st.contra is None:
            st.contra = []
        if len(st.contra) < 64:  # bounded: a runaway source cannot grow state
            st.contra.append((ts, legs, kind))
            if ts > st.cancel_at:
                self._count_one(st, legs, kind)

    def _count_after_cancel(self, st: OrderState, new: float, old: float) -> None:
        """A (new, earlier) cancellation turns already-seen picks into picks after cancel."""
        for ts, legs, kind in st.contra or ():
            if new < ts <= old:
                self._count_one(st, legs, kind)

    def _count_one(self, st: OrderState, legs: int, kind: str) -> None:
        store = st.store or NO_STORE
        for i, leg in enumerate(self.rules.legs):
            if (legs >> i) & 1:
                self.stats.contradictions[(leg, kind)] += 1
        if kind == "picked":
            self.stats.picks_after_cancel[store] += 1
        elif kind == "picked_up":
            self.stats.pickups_after_cancel[store] += 1

    # -- evaluation --------------------------------------------------------

    def _codes(self, st: OrderState) -> bytes:
        now, cancel, closes, n = self.now, st.cancel_at, st.closes, self._n
        contradicted = 0
        for ts, legs, _kind in st.contra or ():
            if ts > cancel:
                contradicted |= legs
        codes = bytearray(n)
        for i, sla in enumerate(self.rules.sla):
            if not (st.owed >> i) & 1:
                continue
            deadline = cancel + sla
            closed = min(closes[i], closes[i + n]) if closes is not None else INF
            if closed != INF:
                codes[i] = CLOSED if closed <= deadline else LATE
            elif (contradicted >> i) & 1:
                codes[i] = CONTRA_DUE if now > deadline else CONTRA_OPEN
            else:
                codes[i] = BREACHED if now > deadline else OPEN
        return bytes(codes)

    @staticmethod
    def _state(codes: bytes) -> str:
        if any(c in (BREACHED, CONTRA_OPEN, CONTRA_DUE) for c in codes):
            return "broken"
        if OPEN in codes:
            return "open"
        return "closed_late" if LATE in codes else "closed"

    def _phantom(self, st: OrderState, codes: bytes, *, now_only: bool) -> int:
        """Units held past the inventory deadline (now_only: and still held)."""
        if self._inventory < 0 or st.pickup_at < st.cancel_at:
            return 0
        code = codes[self._inventory]
        if code in UNCLOSED_DUE or (code == LATE and not now_only):
            return st.units
        return 0

    def _refresh(self, oid: str, st: OrderState, out: list[Outcome]) -> None:
        codes = self._codes(st)
        if codes != st.codes:
            self._report_legs(st, st.codes, codes)
            st.codes = codes
        self._report_units(st, self._phantom(st, codes, now_only=True))
        state = self._state(codes)
        visible = codes.translate(_VISIBLE)
        key = (visible, st.cancel_at, st.origin, st.store, self._phantom(st, codes, now_only=False), *self._counts(st))
        if key != st.emitted_key and (state != "open" or st.emitted_key is not None):
            st.emitted_key = key
            self.stats.outcomes_emitted[state] += 1
            out.append(self._record(oid, st))
        self._schedule(oid, st, self._next_wake(st, codes))

    def _report_legs(self, st: OrderState, prev: bytes, codes: bytes) -> None:
        stats, legs, n = self.stats, self.rules.legs, self._n
        fresh = not prev
        prev = prev or bytes(n)
        was_open = any(c in NOT_CLOSED for c in prev)
        is_open = any(c in NOT_CLOSED for c in codes)
        stats.open_circuits += is_open - was_open
        closes = st.closes
        for i in range(n):
            before, after = prev[i], codes[i]
            if before == after:
                continue
            leg = legs[i]
            stats.unclosed_legs[leg] += (after in UNCLOSED_DUE) - (before in UNCLOSED_DUE)
            if after in (CLOSED, LATE) and closes is not None:
                manual = closes[i + n] < closes[i]
                stats.closures[(leg, "on_time" if after == CLOSED else "late")] += 1
                stats.latency(leg).observe(max(0.0, min(closes[i], closes[i + n]) - st.cancel_at))
                if manual:
                    stats.manual_closures[leg] += 1
            elif after == BREACHED:
                stats.breaches[leg] += 1
        if (was_open or fresh) and not is_open and closes is not None:
            last = max(min(closes[i], closes[i + n]) for i in range(n) if codes[i] != NOT_OWED)
            stats.circuit_close.observe(max(0.0, last - st.cancel_at))

    def _report_units(self, st: OrderState, phantom: int = 0) -> None:
        held = st.held_units()
        store = st.store or NO_STORE
        if (store, held, phantom) == (st.rep_store or NO_STORE, st.rep_held, st.rep_phantom):
            return
        old = st.rep_store or NO_STORE
        self.stats.reserved_units[old] -= st.rep_held
        self.stats.phantom_units[old] -= st.rep_phantom
        self.stats.reserved_units[store] += held
        self.stats.phantom_units[store] += phantom
        self.stats.stores.add(store)
        st.rep_store, st.rep_held, st.rep_phantom = store, held, phantom

    def _counts(self, st: OrderState) -> tuple[int, int, int]:
        picks = pickups = 0
        for ts, _legs, kind in st.contra or ():
            if ts > st.cancel_at:
                picks += kind == "picked"
                pickups += kind == "picked_up"
        closes, n = st.closes, self._n
        manual = 0
        if closes is not None:
            manual = sum(1 for i in range(n) if (st.owed >> i) & 1 and closes[i + n] < closes[i])
        return picks, pickups, manual

    def _record(self, oid: str, st: OrderState) -> Outcome:
        codes = st.codes or self._codes(st)
        closes, n, cancel = st.closes, self._n, st.cancel_at
        legs: dict[str, LegOutcome] = {}
        for i, leg in enumerate(self.rules.legs):
            code = codes[i]
            if code == NOT_OWED:
                continue
            closed = min(closes[i], closes[i + n]) if closes is not None else INF
            if code in (CLOSED, LATE):
                legs[leg] = LegOutcome(LEG_OUTCOME[code], iso(closed), round(max(0.0, closed - cancel), 3))
            else:
                legs[leg] = LegOutcome(LEG_OUTCOME[code], None, None)
        picks, pickups, manual = self._counts(st)
        return Outcome(
            order_id=oid,
            store_id=st.store,
            origin=st.origin,
            cancelled_at=iso(cancel),
            state=self._state(codes),
            legs=legs,
            phantom_units=self._phantom(st, codes, now_only=False),
            picks_after_cancel=picks,
            pickup_attempts_after_cancel=pickups,
            manual_closures=manual,
        )

    # -- time --------------------------------------------------------------

    def _next_wake(self, st: OrderState, codes: bytes) -> float:
        sla, cancel = self.rules.sla, st.cancel_at
        pending = [cancel + sla[i] for i, c in enumerate(codes) if c in PENDING]
        if pending:
            return min(pending)
        closes, n = st.closes, self._n
        end = max(cancel + sla[i] for i, c in enumerate(codes) if c != NOT_OWED)
        if closes is not None:
            end = max([end] + [min(closes[i], closes[i + n]) for i, c in enumerate(codes) if c in (CLOSED, LATE)])
        broken = any(c in UNCLOSED_DUE for c in codes)
        return end + (self.rules.retention_broken if broken else self.rules.retention_closed)

    def _schedule(self, oid: str, st: OrderState, at: float) -> None:
        if at != st.wake_at:
            st.wake_at = at
            heapq.heappush(self._wakes, (at, oid))

    def _advance(self, out: list[Outcome]) -> None:
        now = max(self._newest, self._clock) - self.rules.lateness
        if now <= self.now:
            return
        self.now = self.stats.watermark = now
        wakes = self._wakes
        while wakes and wakes[0][0] < now:
            at, oid = heapq.heappop(wakes)
            st = self.orders.get(oid)
            if st is not None and st.wake_at == at:
                self._wake(oid, st, out)

    def _wake(self, oid: str, st: OrderState, out: list[Outcome]) -> None:
        st.wake_at = INF
        if not st.cancelled:
            if self.now > st.last_ts + self.rules.retention_inactive:
                self._evict(oid, st, "inactive")
            else:
                self._schedule(oid, st, st.last_ts + self.rules.retention_inactive)
            return
        self._refresh(oid, st, out)
        if st.wake_at < self.now:  # final and past its retention
            self._evict(oid, st, "retention")

    def _evict(self, oid: str, st: OrderState, why: str) -> None:
        stats = self.stats
        store = st.rep_store or NO_STORE
        stats.reserved_units[store] -= st.rep_held
        stats.phantom_units[store] -= st.rep_phantom
        if st.codes:
            stats.open_circuits -= any(c in NOT_CLOSED for c in st.codes)
            for i, c in enumerate(st.codes):
                if c in UNCLOSED_DUE:
                    stats.unclosed_legs[self.rules.legs[i]] -= 1
        stats.tracked_orders -= 1
        stats.evicted[why] += 1
        del self.orders[oid]

    # -- state -------------------------------------------------------------

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            {
                "version": SNAPSHOT_VERSION,
                "newest": self._newest,
                "clock": self._clock,
                "now": self.now,
                "orders": {oid: st.to_builtins() for oid, st in self.orders.items()},
            }
        )

    def restore(self, raw: bytes) -> None:
        """Load a snapshot; gauges are rebuilt from what each order reported."""
        data: dict[str, Any] = msgspec.msgpack.decode(raw)
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')} is not {SNAPSHOT_VERSION}")
        self._newest, self._clock, self.now = data["newest"], data["clock"], data["now"]
        self.stats.watermark = self.now
        self.load_orders((oid, OrderState.from_builtins(v)) for oid, v in data["orders"].items())

    def load_orders(self, items: Iterable[tuple[str, OrderState]]) -> None:
        """Adopt order states (a snapshot, or a Faust table after recovery)."""
        stats = self.stats
        for oid, st in items:
            if oid in self.orders:
                continue
            self.orders[oid] = st
            stats.tracked_orders += 1
            store = st.rep_store or NO_STORE
            stats.reserved_units[store] += st.rep_held
            stats.phantom_units[store] += st.rep_phantom
            if st.codes:
                stats.open_circuits += any(c in NOT_CLOSED for c in st.codes)
                for i, c in enumerate(st.codes):
                    if c in UNCLOSED_DUE:
                        stats.unclosed_legs[self.rules.legs[i]] += 1
            if st.wake_at != INF:
                heapq.heappush(self._wakes, (st.wake_at, oid))

    def run(self, events: Iterable[Event]) -> Iterator[Outcome]:
        for ev in events:
            yield from self.on_event(ev)
