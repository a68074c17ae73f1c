"""What the tracker remembers about one order, kept small and order-independent.

Every fact is stored so that applying the same events in any order gives the
same state: earliest times (min), flags (bitwise or), event-id hashes (a set).
That is what makes outcomes independent of arrival order, and it is why the
tracker never keeps the events themselves (a table value that grows with every
event is the classic Faust mistake). About 600 bytes an order; see bench/.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import msgspec

from circuitwatch.events import EVENT_TYPES

INF = float("inf")
MAX_ACTS = 64
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}

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
        "contra",  # array('d') of (ts, legs-bitmask * 16 + type index) pairs: picks, pickups, contradictions
        "emitted_key",  # summary of the last emitted outcome (None: never emitted)
        "last_ts",  # newest event time (inactivity TTL)
        "origin",
        "owed",  # bitmask of legs owed (set by owed_when events)
        "pickup_at",  # earliest picked_up
        "released_at",  # earliest reservation_released
        "rep_held",
        "rep_phantom",
        "rep_store",
        "seen",  # array('Q') of 64-bit (source, event_id) hashes
        "store",  # store id of the earliest event that named one
        "store_ts",
        "units",  # reserved units (reservation_created lines)
        "wake_at",  # when the tracker must look at this order again
    )

    def __init__(self) -> None:
        self.store: str | None = None
        self.store_ts = INF
        self.seen = array("Q")
        self.owed = 0
        self.closes: array[float] | None = None
        self.contra: array[float] | None = None
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

    def add_act(self, ts: float, legs: int, kind: str) -> bool:
        """Remember a pick, pickup or contradicting event; False once the bound is hit."""
        if self.contra is None:
            self.contra = array("d")
        if len(self.contra) >= 2 * MAX_ACTS:  # a runaway source cannot grow state
            return False
        self.contra.extend((ts, legs * 16 + _TYPE_INDEX[kind]))
        return True

    def acts(self) -> Iterator[tuple[float, int, str]]:
        """(ts, contradicted legs bitmask, event type) of each remembered act."""
        if self.contra is not None:
            it = iter(self.contra)
            for ts, code in zip(it, it, strict=True):
                legs, kind = divmod(int(code), 16)
                yield ts, legs, EVENT_TYPES[kind]

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
            self.seen.tobytes(),
            self.owed,
            self.closes.tobytes() if self.closes is not None else None,
            self.contra.tobytes() if self.contra is not None else None,
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
        st.seen = array("Q", seen)
        st.closes = array("d", closes) if closes is not None else None
        st.contra = array("d", contra) if contra is not None else None
        st.emitted_key = _tuplify(key) if key is not None else None
        return st

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(self.to_builtins())

    @classmethod
    def from_bytes(cls, raw: bytes) -> OrderState:
        return cls.from_builtins(msgspec.msgpack.decode(raw))


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value
