"""What every adapter shares: exact JSON parsing, paths, ids, times, drift records.

Drift is an exception carrying (field, reason, message): an adapter raises it the
moment a payload stops fitting, and the caller turns it into a `Rejected` for the
dead letter. Reasons are a small fixed set, so they can be a metric label.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import msgspec

from circuitwatch.events import Event, Rejected

# Bounded vocabulary for events_rejected_total{reason} (beyond the core's own).
MISSING_FIELD = "missing_field"
RENAMED_FIELD = "renamed_field"
WRONG_TYPE = "wrong_type"
UNKNOWN_VALUE = "unknown_value"
NAIVE_TIMESTAMP = "naive_timestamp"
BAD_TIMESTAMP = "bad_timestamp"
MALFORMED_JSON = "malformed_json"
INVALID_VALUE = "invalid_value"
UNKNOWN_TOPIC = "unknown_topic"
UNRESOLVED_ORDER = "unresolved_order"
TOO_LARGE = "too_large"

RAW_KEEP = 65536  # bytes of a rejected payload kept in the dead letter
MISSING: Any = object()
_NORM = re.compile(r"[^a-z0-9]")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class Drift(Exception):
    """A payload that does not fit what its mapping expects."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
        self.message = message


@dataclass
class Mapped:
    """The result of mapping one payload: events, rejects, or a counted 'not for the circuit'."""

    events: list[Event] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored: str | None = None  # why a well-formed payload carries nothing for the circuit
    parked: int = 0  # events waiting for an order id (see shopify.FulfillmentOrderIndex)

    def extend(self, other: Mapped) -> None:
        self.events.extend(other.events)
        self.rejected.extend(other.rejected)
        self.parked += other.parked
        if other.ignored and not self.ignored:
            self.ignored = other.ignored


def parse_json(raw: bytes | str) -> Any:
    """JSON with integers kept exact at any size (orjson would turn > 2^64 into a float)."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise Drift("-", MALFORMED_JSON, f"not valid JSON ({e})") from None


def split_path(path: str) -> list[str | int]:
    return [int(idx) if idx else name for name, idx in _SEGMENT.findall(path)]


def get_path(obj: Any, path: str | list[str | int]) -> Any:
    """The value at a dotted path (`a.b[0].c`), or MISSING."""
    parts = split_path(path) if isinstance(path, str) else path
    cur = obj
    for part in parts:
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return MISSING
            cur = cur[part]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return MISSING
            cur = cur[part]
    return cur


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def to_id(value: Any, field: str) -> str:
    """An id as exact text: strings as they are, integers by their digits (never a float)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or value == "":
        raise Drift(field, MISSING_FIELD, "is null or empty")
    raise Drift(field, WRONG_TYPE, f"expected a string or integer id, got {type_name(value)}")


def gid_tail(value: Any, field: str) -> str:
    """`gid://shopify/Location/12` and 12 name the same thing: keep the number."""
    text = to_id(value, field)
    return text.rsplit("/", 1)[-1] if text.startswith("gid://") else text


def to_qty(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Drift(field, WRONG_TYPE, f"expected an integer quantity, got {type_name(value)} {value!r}")
    if value < 0:
        raise Drift(field, INVALID_VALUE, f"negative quantity {value}")
    return value


def parse_time(value: Any, field: str, *, fmt: str = "rfc3339", zone: tzinfo | None = None) -> datetime:
    """A timezone-aware time; a naive one is drift unless the mapping names its zone."""
    if fmt in ("epoch_s", "epoch_ms"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Drift(field, WRONG_TYPE, f"expected epoch {fmt[6:]} as a number, got {type_name(value)}")
        return datetime.fromtimestamp(value / (1000 if fmt == "epoch_ms" else 1), tz=UTC)
    if not isinstance(value, str):
        raise Drift(field, WRONG_TYPE, f"expected a timestamp string, got {type_name(value)}")
    try:
        if fmt == "rfc3339":
            text = value.strip()
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        else:
            parsed = datetime.strptime(value.strip(), fmt)  # noqa: DTZ007 - zone applied below or rejected
    except ValueError:
        raise Drift(field, BAD_TIMESTAMP, f"{value!r} is not a {fmt} time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if zone is None:
            raise Drift(field, NAIVE_TIMESTAMP, f"{value!r} has no timezone offset")
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def build_event(data: dict[str, Any]) -> Event:
    """Validate a mapped dict as a canonical event (mapping output is checked too)."""
    try:
        return msgspec.convert(data, Event)
    except msgspec.ValidationError as e:
        text = str(e)
        where = text.rsplit(" - at `$.", 1)
        fld = where[1].rstrip("`") if len(where) == 2 else "-"
        reason = UNKNOWN_VALUE if "enum" in text else INVALID_VALUE
        raise Drift(f"(canonical).{fld}", reason, where[0]) from None


def make_reject(raw: bytes | str, drift: Drift, *, source: str, file: str, line: int = 0) -> Rejected:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > RAW_KEEP:
        text = text[:RAW_KEEP] + f"...[truncated, {len(text)} chars]"
    return Rejected(
        file=file,
        line=line,
        field=drift.field,
        reason=drift.reason,
        message=drift.message,
        source=source,
        raw=text.rstrip("\n"),
    )


def iter_payloads(raw: bytes, name: str) -> Iterator[tuple[int, bytes]]:
    """Captured payloads in a file: a JSON array, one JSON document, or JSON lines.

    Yields (line number, payload bytes); an array's items carry the array's line.
    """
    stripped = raw.lstrip()
    if stripped.startswith(b"["):
        try:
            items = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            items = None
        if isinstance(items, list):
            line = raw[: len(raw) - len(stripped)].count(b"\n") + 1
            for item in items:
                yield line, msgspec.json.encode(item)
            return
    if stripped.startswith(b"{"):
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError:
            pass
        else:
            yield raw[: len(raw) - len(stripped)].count(b"\n") + 1, raw
            return
    for n, text in enumerate(raw.splitlines(), 1):
        if text.strip():
            yield n, text


def similar_key(key: str, candidates: list[str], cutoff: float = 0.6, *, abbrev: bool = False) -> str | None:
    """The candidate that looks like `key` renamed (case, separators, a small edit or, with
    `abbrev`, an abbreviation such as quantity -> qty), if any."""
    norm = _NORM.sub("", key.lower())
    by_norm = {_NORM.sub("", c.lower()): c for c in candidates}
    if norm in by_norm:
        return by_norm[norm]
    close = difflib.get_close_matches(norm, list(by_norm), n=1, cutoff=cutoff)
    if close:
        return by_norm[close[0]]
    if abbrev:
        short = [c for n, c in by_norm.items() if len(n) >= 2 and (_abbreviates(n, norm) or _abbreviates(norm, n))]
        if len(short) == 1:
            return short[0]
    return None


def _abbreviates(short: str, long: str) -> bool:
    """`qty` abbreviates `quantity`: same first letter, letters in order."""
    if not short or not long or short[0] != long[0] or len(short) >= len(long):
        return False
    it = iter(long)
    return all(ch in it for ch in short)
