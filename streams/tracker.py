"""The circuit tracker: events in, outcome records and metric updates out.

Pure and deterministic: no I/O, no wall clock. Time comes from the events (the
watermark is the newest event time minus the allowed lateness) and, in live
mode, from `advance_clock(ts)` called by the runtime. The same object runs in
`demo`, `replay` and the Faust worker.

Shape, after bytewax's windowing logic: `on_event` (bytewax `on_item`),
`advance_clock` (`on_notify`), `flush` (`on_eof`), `snapshot`/`restore`.

Cost model (bench/replay.py): ~88% of orders are never cancelled, so most events
only record facts: a dedupe check, counters and a few bit operations, with no
per-event allocation beyond the result list. A cancelled order's events also
re-evaluate its circuit (`_refresh`, one pass over its legs); time-driven
changes come from a heap of wake-ups, popped only when the watermark passes
the earliest one.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from zlib import adler32, crc32

import msgspec

from circuitwatch.config import CircuitConfig, default_config
from circuitwatch.events import SOURCES, Event
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.order_state import (
    BREACHED,
    CLOSED,
    CONTRA_DUE,
    CONTRA_OPEN,
    INF,
    LATE,
    LEG_OUTCOME,
    NOT_OWED,
    OPEN,
    UNCLOSED_DUE,
    OrderState,
)
from circuitwatch.streams.outcome import LegOutcome, Outcome, iso
from circuitwatch.streams.rules import CLOSE, OWE, Plan, Rules

SNAPSHOT_VERSION = 1
_SOURCE_RANK = {s: i for i, s in enumerate(("oms", "storefront", "store", "wms", "inventory", "notify"))}
NO_STORE = "unknown"
# Two codes read the same in a record: a contradicted leg before and after its deadline.
_VISIBLE = bytes(CONTRA_OPEN if c == CONTRA_DUE else c for c in range(256))
# Legs without a close time read the same in every record; the structs are frozen, so shared.
_UNCLOSED = {code: LegOutcome(name, None, None) for code, name in LEG_OUTCOME.items()}
_EPOCH_DAY = date(1970, 1, 1)


def _is_open(codes: bytes) -> bool:
    """Some owed leg is not closed (yet)."""
    return OPEN in codes or BREACHED in codes or CONTRA_OPEN in codes or CONTRA_DUE in codes


def _state(codes: bytes) -> str:
    if BREACHED in codes or CONTRA_OPEN in codes or CONTRA_DUE in codes:
        return "broken"
    if OPEN in codes:
        return "open"
    return "closed_late" if LATE in codes else "closed"


def _event_hash(source: str, event_id: str) -> int:
    """64 stable bits for (source, event_id): two checksums, 0.3 µs, vs 1.5 µs for blake2b.

    A collision must happen within one order's few dozen events to matter. The
    value is stored in snapshots, so it must never change; `on_event` computes the
    same number from `_HASH_SEEDS`.
    """
    key = f"{source}\0{event_id}".encode()
    return crc32(key) << 32 | adler32(key)


# Both checksums are running ones: seeded with the "{source}\0" prefix, they give
# `_event_hash` from the event id's bytes alone, without building a key per event.
_HASH_SEEDS = {s: (crc32(f"{s}\0".encode()), adler32(f"{s}\0".encode())) for s in SOURCES}
_PACK_HASH = struct.Struct("=Q").pack  # the layout of OrderState.seen (and of the array('Q') it once was)


@lru_cache(maxsize=1 << 10)
def _day_text(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


@lru_cache(maxsize=1 << 14)  # a circuit's records repeat its cancel time and its legs' close times
def _iso(ts: float) -> str:
    """`outcome.iso(ts)`, the same text, 3x faster for whole seconds (almost every event time)."""
    if not ts.is_integer():
        return iso(ts)
    day, sec = divmod(int(ts), 86400)
    return f"{_day_text(day)}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"


def _latency(seconds: float) -> float:
    """A record's `latency_s`: round(max(0.0, seconds), 3), without round()'s 0.3 µs for whole seconds."""
    if seconds <= 0.0:
        return 0.0
    return seconds if seconds.is_integer() else round(seconds, 3)


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
        self._lateness = self.rules.lateness
        self._retention_inactive = self.rules.retention_inactive
        self._sla = self.rules.sla
        self._plans = self.rules.plans
        self._cancelled_statuses = self.rules.cancelled_statuses
        self._n = len(self.rules.legs)
        for leg in self.rules.legs:
            self.stats.latency(leg)

    # -- input -------------------------------------------------------------

    def on_event(self, ev: Event) -> list[Outcome]:
        """Apply one event; returns the outcome records it changed or finalised.

        Written flat on purpose: it runs once per event, and the common case (an
        order with no open circuit) must stay a few dict and bit operations.
        """
        out: list[Outcome] = []
        ts = ev.occurred_at.timestamp()
        source = ev.source
        oid = ev.order_id
        st = self.orders.get(oid)
        if st is None:
            st = self._new_order(oid)
        eid = ev.event_id.encode()
        crc, adl = _HASH_SEEDS[source]
        key = _PACK_HASH(crc32(eid, crc) << 32 | adler32(eid, adl))  # _event_hash(source, ev.event_id)
        seen = st.seen
        if seen.find(key) >= 0 and st.has_seen(key):  # find alone rules out almost every event
            self.stats.duplicates[source] += 1
            return out
        st.seen = seen + key
        stats = self.stats
        plan = self._plans[source][ev.type]
        counts = stats.events
        counts[plan.key] = counts.get(plan.key, 0) + 1
        last = stats.last_event
        if ts > last.get(source, -INF):
            last[source] = ts
        if ts < self.now:
            stats.late_events[source] += 1
        if ts > st.last_ts:
            st.last_ts = ts
        if plan.owe:
            st.owed |= plan.owe
        units_changed = not plan.only_owes and self._apply(st, ev, ts, plan)
        store = ev.store_id
        if store is not None and ts < st.store_ts:
            units_changed |= store != st.store
            st.store, st.store_ts = store, ts
        if st.cancel_at != INF:
            self._refresh(oid, st, out)
        else:
            if units_changed:
                self._report_units(st, 0)
            if st.wake_at == INF:
                self._schedule(oid, st, ts + self._retention_inactive)
        if ts > self._newest:
            self._newest = ts
            now = ts - self._lateness
            if now > self.now:
                self.now = stats.watermark = now
                wakes = self._wakes
                if wakes and wakes[0][0] < now:
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

    def _new_order(self, oid: str) -> OrderState:
        st = self.orders[oid] = OrderState()
        self.stats.tracked_orders += 1
        return st

    def _apply(self, st: OrderState, ev: Event, ts: float, plan: Plan) -> bool:
        """Record the facts beyond `plan.owe`; True when the order's reserved units may have changed."""
        for leg in plan.close:
            self._close(st, leg, ts, manual=False)
        contradicts = plan.contradict
        if plan.conditional:
            status, attrs = ev.status, ev.attrs
            cancelled: bool | None = None  # the status, normalised once per event rather than per rule
            for action in plan.conditional:
                if action.status is not None:
                    if status is None:
                        continue
                    if cancelled is None:
                        cancelled = status.strip().lower() in self._cancelled_statuses
                    if cancelled != (action.status == "cancelled"):
                        continue
                for k, v in action.attrs:
                    if str(attrs.get(k)) != v:
                        break
                else:
                    if action.role == OWE:
                        st.owed |= 1 << action.leg
                    elif action.role == CLOSE:
                        self._close(st, action.leg, ts, manual=False)
                    else:
                        contradicts |= 1 << action.leg
        if plan.remember and (contradicts or plan.counted):
            st.owed |= contradicts  # a system that acted on the order knew it
            if st.add_act(ts, contradicts, plan.kind) and ts > st.cancel_at:
                self._count_one(st, contradicts, plan.kind)
        return plan.special and self._apply_special(st, ev, ts)

    def _apply_special(self, st: OrderState, ev: Event, ts: float) -> bool:
        """Units, releases, pickups, manual closes and the cancellation itself."""
        etype = ev.type
        rules = self.rules
        if etype == "reservation_created":
            for line in ev.lines:  # a loop: sum() over a generator costs 1 µs
                st.units += line.qty
        elif etype == "reservation_released":
            if ts < st.released_at:
                st.released_at = ts
        elif etype == "picked_up":
            if ts < st.pickup_at:
                st.pickup_at = ts
        elif etype == "manual_close":
            leg = rules.leg_index(ev.attrs.get("leg"))
            if leg >= 0:
                self._close(st, leg, ts, manual=True)
        else:  # a cancellation signal
            key = (ts, _SOURCE_RANK.get(ev.source, 9))
            previous = st.cancel_at
            if st.origin is None or key < (st.cancel_at, _SOURCE_RANK.get(st.origin, 9)):
                st.cancel_at, st.origin = ts, ev.source
                if previous == INF:
                    st.owed |= rules.always_owed
                    store = st.store or ev.store_id or NO_STORE
                    self.stats.cancellations[(store, ev.source)] += 1
                    self.stats.stores.add(store)
                self._count_after_cancel(st, ts, previous)
        return True

    def _close(self, st: OrderState, leg: int, ts: float, *, manual: bool) -> None:
        if st.closes is None:
            st.closes = array("d", [INF]) * (2 * self._n)
        slot = leg + self._n if manual else leg
        if ts < st.closes[slot]:
            st.closes[slot] = ts

    def _count_after_cancel(self, st: OrderState, new: float, old: float) -> None:
        """A (new, earlier) cancellation turns already-seen picks into picks after cancel."""
        for ts, legs, kind in st.acts():
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

    def _evaluate(self, st: OrderState, contradicted: int) -> tuple[bytes, str, float, int]:
        """(each leg's code, the circuit's state, its next wake-up, manual closures) now.

        One pass over the legs, as this runs on every change to a circuit.
        `contradicted`: the legs some act after the cancellation contradicted. The
        wake-up is the nearest pending deadline or, once none is pending, when
        the final circuit may be evicted.
        """
        now, cancel, closes, owed, n = self.now, st.cancel_at, st.closes, st.owed, self._n
        codes = bytearray(n)
        pending, end, manual, broken, late = INF, -INF, 0, False, False
        for i, sla in enumerate(self._sla):
            if not (owed >> i) & 1:
                continue
            deadline = cancel + sla
            if deadline > end:
                end = deadline
            closed = INF
            if closes is not None:
                ack, by_hand = closes[i], closes[i + n]
                closed = by_hand if by_hand < ack else ack
                manual += by_hand < ack
            if closed != INF:
                if closed <= deadline:
                    codes[i] = CLOSED
                else:
                    codes[i] = LATE
                    late = True
                if closed > end:
                    end = closed
            elif (contradicted >> i) & 1:
                broken = True
                if now > deadline:
                    codes[i] = CONTRA_DUE
                else:
                    codes[i] = CONTRA_OPEN
                    if deadline < pending:
                        pending = deadline
            elif now > deadline:
                codes[i] = BREACHED
                broken = True
            else:
                codes[i] = OPEN
                if deadline < pending:
                    pending = deadline
        if broken:
            state = "broken"
        elif pending != INF:
            state = "open"
        else:
            state = "closed_late" if late else "closed"
        if pending == INF:
            pending = end + (self.rules.retention_broken if broken else self.rules.retention_closed)
        return bytes(codes), state, pending, manual

    def _phantom(self, st: OrderState, codes: bytes) -> tuple[int, int]:
        """Units held past the inventory deadline: (still held now, for the record)."""
        if self._inventory < 0 or st.pickup_at < st.cancel_at:
            return 0, 0
        code = codes[self._inventory]
        if code in (BREACHED, CONTRA_DUE):
            return st.units, st.units
        return 0, st.units if code == LATE else 0

    def _refresh(self, oid: str, st: OrderState, out: list[Outcome]) -> None:
        """Re-evaluate a circuit: metric deltas, its record if that changed, its next wake-up."""
        contradicted, picks, pickups = st.acts_after(st.cancel_at)
        codes, state, wake, manual = self._evaluate(st, contradicted)
        if codes != st.codes:
            self._report_legs(st, st.codes, codes, state == "open" or state == "broken")
            st.codes = codes
        phantom_now, phantom = self._phantom(st, codes)
        self._report_units(st, phantom_now)
        closes = st.closes.tobytes() if st.closes is not None else b""  # an earlier ack moves closed_at
        key = (codes.translate(_VISIBLE), closes, st.cancel_at, st.origin, st.store, phantom, picks, pickups, manual)
        if key != st.emitted_key and (state != "open" or st.emitted_key is not None):
            st.emitted_key = key
            self.stats.outcomes_emitted[state] += 1
            out.append(self._make_record(oid, st, codes, state, phantom, picks, pickups, manual))
        self._schedule(oid, st, wake)

    def _report_legs(self, st: OrderState, prev: bytes, codes: bytes, is_open: bool) -> None:
        """Metric deltas for the legs whose code changed from `prev` (b"": never reported)."""
        stats, legs, n = self.stats, self.rules.legs, self._n
        fresh = not prev
        prev = prev or bytes(n)
        was_open = _is_open(prev)
        stats.open_circuits += is_open - was_open
        closes = st.closes
        for i in range(n):
            before, after = prev[i], codes[i]
            if before == after:
                continue
            leg = legs[i]
            stats.unclosed_legs[leg] += (after in UNCLOSED_DUE) - (before in UNCLOSED_DUE)
            if before in (CLOSED, LATE):
                continue  # a late signal reclassified a closure (on time <-> late): counted already
            if after in (CLOSED, LATE) and closes is not None:
                ack, by_hand = closes[i], closes[i + n]
                stats.closures[(leg, "on_time" if after == CLOSED else "late")] += 1
                stats.latency(leg).observe(max(0.0, min(ack, by_hand) - st.cancel_at))
                if by_hand < ack:
                    stats.manual_closures[leg] += 1
            elif after == BREACHED:
                stats.breaches[leg] += 1
        if (was_open or fresh) and not is_open and closes is not None:
            last = max(min(closes[i], closes[i + n]) for i in range(n) if codes[i] != NOT_OWED)
            stats.circuit_close.observe(max(0.0, last - st.cancel_at))

    def _report_units(self, st: OrderState, phantom: int) -> None:
        """Move the order's reserved and phantom units in the store gauges, if they changed."""
        held = st.held_units()
        store = st.store or NO_STORE
        old = st.rep_store or NO_STORE
        stats = self.stats
        if store == old:  # the common case: one store, only the units move
            if held == st.rep_held and phantom == st.rep_phantom:
                return
            stats.reserved_units[store] += held - st.rep_held
            stats.phantom_units[store] += phantom - st.rep_phantom
        else:
            stats.reserved_units[old] -= st.rep_held
            stats.phantom_units[old] -= st.rep_phantom
            stats.reserved_units[store] += held
            stats.phantom_units[store] += phantom
        stats.stores.add(store)
        st.rep_store, st.rep_held, st.rep_phantom = store, held, phantom

    def _record(self, oid: str, st: OrderState) -> Outcome:
        """The circuit's record from its last reported codes (flush)."""
        contradicted, picks, pickups = st.acts_after(st.cancel_at)
        codes, state, _wake, manual = self._evaluate(st, contradicted)
        if st.codes:
            codes, state = st.codes, _state(st.codes)
        phantom = self._phantom(st, codes)[1]
        return self._make_record(oid, st, codes, state, phantom, picks, pickups, manual)

    def _make_record(
        self, oid: str, st: OrderState, codes: bytes, state: str, phantom: int, picks: int, pickups: int, manual: int
    ) -> Outcome:
        closes, n, cancel = st.closes, self._n, st.cancel_at
        legs: dict[str, LegOutcome] = {}
        for i, leg in enumerate(self.rules.legs):
            code = codes[i]
            if code == NOT_OWED:
                continue
            if code in (CLOSED, LATE) and closes is not None:
                ack, by_hand = closes[i], closes[i + n]
                closed = by_hand if by_hand < ack else ack
                legs[leg] = LegOutcome(LEG_OUTCOME[code], _iso(closed), _latency(closed - cancel))
            else:
                legs[leg] = _UNCLOSED[code]
        return Outcome(
            order_id=oid,
            store_id=st.store,
            origin=st.origin,
            cancelled_at=_iso(cancel),
            state=state,
            legs=legs,
            phantom_units=phantom,
            picks_after_cancel=picks,
            pickup_attempts_after_cancel=pickups,
            manual_closures=manual,
        )

    # -- time --------------------------------------------------------------

    def _schedule(self, oid: str, st: OrderState, at: float) -> None:
        if at != st.wake_at:
            st.wake_at = at
            heapq.heappush(self._wakes, (at, oid))

    def _advance(self, out: list[Outcome]) -> None:
        """Wake every order whose wake-up the watermark has passed (stale heap entries are skipped)."""
        now = max(self._newest, self._clock) - self._lateness
        if now > self.now:
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
        self._gauges(st, -1)
        self.stats.evicted[why] += 1
        del self.orders[oid]

    def _gauges(self, st: OrderState, sign: int) -> None:
        """Add (1) or remove (-1) everything an order contributes to the gauges."""
        stats = self.stats
        store = st.rep_store or NO_STORE
        stats.tracked_orders += sign
        stats.reserved_units[store] += sign * st.rep_held
        stats.phantom_units[store] += sign * st.rep_phantom
        if st.codes:
            stats.open_circuits += sign * _is_open(st.codes)
            for i, c in enumerate(st.codes):
                if c in UNCLOSED_DUE:
                    stats.unclosed_legs[self.rules.legs[i]] += sign

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
        for oid, st in items:
            if oid in self.orders:
                continue
            self.orders[oid] = st
            self._gauges(st, 1)
            if st.wake_at != INF:
                heapq.heappush(self._wakes, (st.wake_at, oid))
