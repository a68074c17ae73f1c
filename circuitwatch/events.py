"""The canonical event: the one shape every source is mapped to.

Events are msgspec Structs rather than pydantic models: decoding *and* validating
a 262-byte event with msgspec costs about a quarter of pydantic's
``model_validate_json`` (see ``bench/replay.py``), and the replay hot path cannot
afford pydantic's 215k events/s ceiling. Configuration stays on pydantic.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

Source = Literal["oms", "wms", "inventory", "storefront", "store", "notify"]
EventType = Literal[
    "order_placed",
    "reservation_created",
    "reservation_released",
    "pick_assigned",
    "picked",
    "pick_released",
    "staged",
    "ready_for_pickup",
    "picked_up",
    "cancel_requested",
    "cancelled",
    "status_changed",
    "display_cleared",
    "customer_notified",
    "manual_close",
]
SOURCES: tuple[str, ...] = get_args(Source)
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
CANCEL_SIGNALS = frozenset({"cancelled", "cancel_requested"})

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class Line(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    line_id: str
    sku: str
    qty: Annotated[int, msgspec.Meta(ge=0)]


class Event(msgspec.Struct, frozen=True):
    """One fact from one system about one order, in event time."""

    event_id: NonEmpty
    order_id: NonEmpty
    source: Source
    type: EventType
    occurred_at: AwareDatetime
    store_id: str | None = None
    lines: tuple[Line, ...] = ()
    status: str | None = None
    attrs: dict[str, Any] = {}

    @property
    def ts(self) -> float:
        return self.occurred_at.timestamp()


class Rejected(msgspec.Struct, frozen=True):
    """A line that could not become an event, with where and why."""

    file: str
    line: int
    field: str
    reason: str
    message: str
    source: str
    raw: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"

    def dead_letter(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


_decoder = msgspec.json.Decoder(Event)
# What `decode` raises for a bad line: catch these, then `reject` the line with its reason.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
_encoder = msgspec.json.Encoder()
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_SOURCE_PEEK = re.compile(rb'"source"\s*:\s*"([a-z_]{1,32})"')

# Bounded vocabulary for the `reason` label of events_rejected_total.
_REASONS = (
    ("missing required field", "missing_field"),
    ("timezone", "naive_timestamp"),
    ("datetime", "bad_timestamp"),
    ("Invalid enum value", "unknown_value"),
    (">=", "invalid_value"),
    ("<=", "invalid_value"),
    ("length", "invalid_value"),
    ("Expected `", "wrong_type"),
)
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(raw: bytes | str) -> Event:
    """Decode one event; raises msgspec.DecodeError/ValidationError."""
    return _decoder.decode(raw)


def reject(raw: bytes | str, error: Exception, *, file: str, line: int) -> Rejected:
    """Turn a decode error into a precise, countable rejection."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    message = str(error)
    field = "-"
    m = _AT.search(message)
    if m:
        field = m.group("path") or "-"
        message = message[: m.start()]
    if isinstance(error, msgspec.ValidationError):
        reason = next((code for needle, code in _REASONS if needle in message), "invalid_value")
        missing = _MISSING.search(message)
        if missing:
            name = missing.group("name")
            field = name if field == "-" else f"{field}.{name}"
    else:
        reason = "malformed_json"
    peek = _SOURCE_PEEK.search(text.encode() if isinstance(text, str) else text)
    source = peek.group(1).decode() if peek else "unknown"
    if source not in SOURCES:
        source = "unknown"
    return Rejected(
        file=file,
        line=line,
        field=field,
        reason=reason,
        message=message.strip(),
        source=source,
        raw=text.rstrip("\n"),
    )
