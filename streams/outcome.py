"""The outcome record: one per circuit, in the contract's shape."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

STATES = ("closed", "closed_late", "broken", "open")


class LegOutcome(msgspec.Struct, frozen=True):
    outcome: str
    closed_at: str | None
    latency_s: float | None


class Outcome(msgspec.Struct, frozen=True):
    """A circuit's record; a later record for the same order replaces an earlier one."""

    order_id: str
    store_id: str | None
    origin: str | None
    cancelled_at: str
    state: str
    legs: dict[str, LegOutcome]
    phantom_units: int
    picks_after_cancel: int
    pickup_attempts_after_cancel: int
    manual_closures: int


def iso(ts: float) -> str:
    """RFC 3339 in UTC with a Z, seconds precision unless the event had more."""
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Outcome)


def encode(outcome: Outcome) -> bytes:
    return _encoder.encode(outcome)


def decode(raw: bytes | str) -> Outcome:
    return _decoder.decode(raw)
