"""What the tracker remembers about one order, kept small and order-independent.

Every fact is stored so that applying the same events in any order gives the
same state: earliest times (min), flags (bitwise or), event-id hashes (a set).
That is what makes outcomes independent of arrival order, and it is why the
tracker never keeps the events themselves (a table value that grows with every
event is the classic Faust mistake). About 780 bytes an order; see bench/.

The two growing fields, `seen` and `contra`, are packed immutable bytes: an
event touches one small object for each instead of an array header plus its
separately allocated buffer. Their bytes are exactly what snapshots and Faust
tables have always held (array('Q') and array('d') layouts).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator
from typing import Any

import msgspec

from circuitwatch.events import EVENT_TYPES

INF = float("inf")
MAX_ACTS = 64
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
_PICKED, _PICKED_UP = _TYPE_INDEX["picked"], _TYPE_INDEX["picked_up"]
_ACT = struct.Struct("=dd")  # one act in `contra`: (ts, legs * 16 + type index), the array('d') layout

# Leg codes: the tracker's view of one leg at one moment.
NOT_OWED, OPEN, CLOSED, LATE, BREACHED, CONTRA_OPEN, CONTRA_DUE = range(7)
LEG_OUTCOME = {
    OPEN: "open",
    CLOSED: "closed",
    LATE: "late",
    BREACHED: "breached",
    CONTRA_OPEN: "contradicted",
    CONTRA_DUE: "contradicted",
}
UNCLOSED_DUE = frozenset({BREACHED, CONTRA_DUE})  # past deadline, still open


class OrderState:
    """One order's facts plus what has been reported for it (metrics, outcome)."""

    __slots__ = (
        "cancel_at",  # earliest cancellation signal (INF: not cancelled)
        "closes",  # array('d'): [earliest ack per leg..., earliest manual close per leg...]
        # what has been reported, so that changes become metric deltas
        "codes",  # bytes: leg codes last reported
        "contra",  # bytes: packed (ts, legs-bitmask * 16 + type index) doubles: picks, pickups, contradictions
        "emitted_key",  # summary of the last emitted outcome (None: never emitted)
        "last_ts",  # newest event time (inactivity TTL)
        "origin",
        "owed",  # bitmask of legs owed (set by owed_when events)
        "pickup_at",  # earliest picked_up
        "released_at",  # earliest reservation_released
        "rep_held",
        "rep_phantom",
        "rep_store",
        "seen",  # bytes: packed native-order uint64 (source, event_id) hashes; see `has_seen`
        "store",  # store id of the earliest event that named one
        "store_ts",
        "units",  # reserved units (reservation_created lines)
        "wake_at",  # when the tracker must look at this order again
    )

    def __init__(self) -> None:
        self.store: str | None = None
        self.store_ts = INF
        self.seen = b""
        self.owed = 0
        self.closes: array[float] | None = None
        self.contra: bytes | None = None
        self.cancel_at = INF
        self.origin: str | None = None
        self.units = 0
        self.released_at = INF
        self.pickup_at = INF
        self.last_ts = -INF
        self.wake_at = INF
        self.codes = b""
        self.rep_store: str | None = None
        self.rep_held = 0
        self.rep_phantom = 0
        self.emitted_key: tuple[Any, ...] | None = None

    def has_seen(self, key: bytes) -> bool:
        """Whether the packed 8-byte hash `key` is among the seen ones.

        `find` searches in C without boxing every element as an int (as `in` on an
        array('Q') does); a match only counts at a multiple of 8, not straddling
        two hashes.
        """
        seen = self.seen
        i = seen.find(key)
        while i >= 0 and i % 8:
            i = seen.find(key, i + 1)
        return i >= 0

    def add_act(self, ts: float, legs: int, kind: str) -> bool:
        """Remember a pick, pickup or contradicting event; False once the bound is hit."""
        contra = self.contra
        if contra is None:
            contra = b""
        elif len(contra) >= _ACT.size * MAX_ACTS:  # a runaway source cannot grow state
            return False
        self.contra = contra + _ACT.pack(ts, legs * 16 + _TYPE_INDEX[kind])
        return True

    def acts(self) -> Iterator[tuple[float, int, str]]:
        """(ts, contradicted legs bitmask, event type) of each remembered act."""
        if self.contra is not None:
            for ts, code in _ACT.iter_unpack(self.contra):
                legs, kind = divmod(int(code), 16)
                yield ts, legs, EVENT_TYPES[kind]

    def acts_after(self, cancel_at: float) -> tuple[int, int, int]:
        """(legs contradicted, picks, pickup attempts) by the acts after `cancel_at`.

        One pass, without naming each act's type as `acts()` does: every
        re-evaluation of a circuit needs all three.
        """
        contra = self.contra
        legs = picks = pickups = 0
        if contra is not None:
            for ts, packed in _ACT.iter_unpack(contra):
                if ts > cancel_at:
                    code = int(packed)
                    legs |= code >> 4
                    kind = code & 15
                    picks += kind == _PICKED
                    pickups += kind == _PICKED_UP
        return legs, picks, pickups

    @property
    def cancelled(self) -> bool:
        return self.cancel_at != INF

    def held_units(self) -> int:
        """Units the inventory system still holds for this order."""
        if self.released_at != INF or self.pickup_at < self.cancel_at:
            return 0
        return self.units

    def to_builtins(self) -> list[Any]:
        return [
            self.store,
            self.store_ts,
            self.seen,
            self.owed,
            self.closes.tobytes() if self.closes is not None else None,
            self.contra,
            self.cancel_at,
            self.origin,
            self.units,
            self.released_at,
            self.pickup_at,
            self.last_ts,
            self.wake_at,
            self.codes,
            self.rep_store,
            self.rep_held,
            self.rep_phantom,
            list(self.emitted_key) if self.emitted_key is not None else None,
        ]

    @classmethod
    def from_builtins(cls, data: list[Any]) -> OrderState:
        st = cls()
        (
            st.store,
            st.store_ts,
            seen,
            st.owed,
            closes,
            contra,
            st.cancel_at,
            st.origin,
            st.units,
            st.released_at,
            st.pickup_at,
            st.last_ts,
            st.wake_at,
            st.codes,
            st.rep_store,
            st.rep_held,
            st.rep_phantom,
            key,
        ) = data
        st.seen = _packed(seen, 8)
        st.closes = array("d", closes) if closes is not None else None
        st.contra = _packed(contra, _ACT.size) if contra is not None else None
        st.emitted_key = _tuplify(key) if key is not None else None
        return st

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(self.to_builtins())

    @classmethod
    def from_bytes(cls, raw: bytes) -> OrderState:
        return cls.from_builtins(msgspec.msgpack.decode(raw))


def _packed(raw: bytes, size: int) -> bytes:
    """Stored packed values, checked as array() checked them when it held them."""
    if len(raw) % size:
        raise ValueError(f"bytes length not a multiple of item size {size}")
    return bytes(raw)


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
