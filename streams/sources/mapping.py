"""Declarative payload mapping (`mappings/*.yaml`) with drift detection.

A retailer brings in its OMS, WMS or store app with a YAML file: where the order
id, event id, time, store, lines and status are (dotted paths, `$.` = the
envelope when `records` splits a batch), and which raw event names or status
values mean which canonical type. The mapping is also the payload's contract:
a required field that is gone (or renamed: a near-identical unexpected key is
named in the reject), an unknown status value, a changed type or a naive time is
drift, rejected with the exact field and reason, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from circuitwatch.config import ConfigError, parse_yaml, validate_model
from circuitwatch.events import Event, EventType, Source
from circuitwatch.streams.sources.common import (
    MISSING,
    MISSING_FIELD,
    RENAMED_FIELD,
    UNKNOWN_VALUE,
    WRONG_TYPE,
    Drift,
    Mapped,
    build_event,
    get_path,
    make_reject,
    parse_json,
    parse_time,
    similar_key,
    split_path,
    to_id,
    to_qty,
    type_name,
)

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "mappings"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """Where one value is: `path`, or `join` of paths, or a constant `value`."""

    path: str | None = None
    join: list[str] | None = None
    value: str | int | None = None
    optional: bool = False
    format: str = "rfc3339"  # rfc3339 | epoch_s | epoch_ms | a strptime pattern
    zone: str | None = None  # IANA zone for times the system writes without an offset
    values: dict[str, str] | None = None  # raw -> canonical; any other raw value is drift

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if sum(x is not None for x in (self.path, self.join, self.value)) != 1:
            raise ValueError("give exactly one of path, join, value")
        return self

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Target(_Strict):
    type: EventType
    status: str | None = None
    attrs: dict[str, str] = Field(default_factory=dict)


class TypeSpec(_Strict):
    path: str
    values: dict[str, EventType | Target]
    ignore: list[str] = Field(default_factory=list)  # raw values deliberately not for the circuit


class LinesSpec(_Strict):
    path: str
    optional: bool = False
    line_id: str
    sku: str
    qty: str


def _field(v: Any) -> Any:
    return {"path": v} if isinstance(v, str) else v


class Mapping(_Strict):
    name: str
    source: Source
    description: str = ""
    records: str | None = None  # a path to an array: one canonical event per item
    event_id: FieldSpec
    order_id: FieldSpec
    occurred_at: FieldSpec
    type: TypeSpec
    store_id: FieldSpec | None = None
    status: FieldSpec | None = None
    lines: LinesSpec | None = None
    attrs: dict[str, FieldSpec] = Field(default_factory=dict)

    @field_validator("event_id", "order_id", "occurred_at", "store_id", "status", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _field(v)

    @field_validator("attrs", mode="before")
    @classmethod
    def _attrs_shorthand(cls, v: Any) -> Any:
        return {k: _field(x) for k, x in v.items()} if isinstance(v, dict) else v

    @cached_property
    def known(self) -> dict[tuple[str, ...], set[str]]:
        """Keys the mapping reads, by parent path: what a renamed key is compared against."""
        known: dict[tuple[str, ...], set[str]] = {}

        def add(path: str, base: tuple[str, ...] = ()) -> None:
            rooted = path.startswith("$.")
            parts = split_path(path[2:] if rooted else path)
            prefix = ("$",) if rooted and self.records is not None else base
            for i, part in enumerate(parts):
                if isinstance(part, str):
                    known.setdefault((*prefix, *(str(p) for p in parts[:i])), set()).add(part)

        specs = [self.event_id, self.order_id, self.occurred_at, self.store_id, self.status, *self.attrs.values()]
        for spec in specs:
            if spec is not None:
                for p in spec.join or ([spec.path] if spec.path else []):
                    add(p)
        add(self.type.path)
        if self.lines is not None:
            add(self.lines.path)
            for p in (self.lines.line_id, self.lines.sku, self.lines.qty):
                add(p, ("*",))
        return known

    # -- mapping -------------------------------------------------------------

    def map_payload(self, raw: bytes | str, *, file: str, line: int = 0) -> Mapped:
        """Map one payload (one JSON document); never raises for bad input."""
        out = Mapped()
        try:
            doc = parse_json(raw)
            records = self._records(doc)
        except Drift as d:
            out.rejected.append(make_reject(raw, d, source=self.source, file=file, line=line))
            return out
        for i, record in records:
            try:
                event = self.map_record(record, doc, index=i)
            except Drift as d:
                out.rejected.append(make_reject(raw, d, source=self.source, file=file, line=line))
                continue
            if event is None:
                out.ignored = f"{self.type.path} is listed under type.ignore"
            else:
                out.events.append(event)
        return out

    def _records(self, doc: Any) -> Iterator[tuple[int | None, Any]]:
        if not isinstance(doc, dict):
            raise Drift("-", WRONG_TYPE, f"expected a JSON object, got {type_name(doc)}")
        if self.records is None:
            return iter([(None, doc)])
        items = self._require(doc, doc, self.records, None)
        if not isinstance(items, list):
            raise Drift(self.records, WRONG_TYPE, f"expected an array, got {type_name(items)}")
        return iter(enumerate(items))

    def map_record(self, record: Any, doc: Any, *, index: int | None = None) -> Event | None:
        if not isinstance(record, dict):
            raise Drift(self._where(index, ""), WRONG_TYPE, f"expected an object, got {type_name(record)}")
        raw_type = self._require(record, doc, self.type.path, index)
        if isinstance(raw_type, dict | list):
            raise Drift(self._where(index, self.type.path), WRONG_TYPE, f"expected a name, got {type_name(raw_type)}")
        name = str(raw_type)
        if name in self.type.ignore:
            return None
        target = self.type.values.get(name)
        if target is None:
            known = ", ".join(sorted(self.type.values))
            raise Drift(self._where(index, self.type.path), UNKNOWN_VALUE, f"unknown value {name!r} (known: {known})")
        if isinstance(target, str):
            target = Target(type=target)
        data: dict[str, Any] = {
            "source": self.source,
            "type": target.type,
            "event_id": self._text(record, doc, self.event_id, index, "event_id"),
            "order_id": self._text(record, doc, self.order_id, index, "order_id"),
            "occurred_at": self._time(record, doc, index),
        }
        if self.store_id is not None:
            data["store_id"] = self._text(record, doc, self.store_id, index, "store_id")
        status = target.status  # a status named by the event type wins over the payload's field
        if status is None and self.status is not None:
            status = self._text(record, doc, self.status, index, "status")
        data["status"] = status
        if self.lines is not None:
            data["lines"] = self._lines(record, doc, index)
        attrs: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            value = self._value(record, doc, spec, index)
            if value is not MISSING and value is not None:
                attrs[key] = value
        attrs.update(target.attrs)
        attrs["raw_type"] = name
        data["attrs"] = attrs
        return build_event(data)

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _where(index: int | None, path: str) -> str:
        if path.startswith("$."):
            return path[2:]
        return path if index is None else f"[{index}].{path}" if path else f"[{index}]"

    def _resolve(self, record: Any, doc: Any, path: str) -> Any:
        return get_path(doc, path[2:]) if path.startswith("$.") else get_path(record, path)

    def _require(self, record: Any, doc: Any, path: str, index: int | None) -> Any:
        value = self._resolve(record, doc, path)
        if value is MISSING:
            raise self._missing(record, doc, path, index)
        return value

    def _missing(self, record: Any, doc: Any, path: str, index: int | None, prefix: tuple[str, ...] = ()) -> Drift:
        """Missing, renamed (an unexpected key beside it looks like the old name), or a parent changed type."""
        rooted = path.startswith("$.")
        parts = split_path(path[2:] if rooted else path)
        base = doc if rooted else record
        ctx: tuple[str, ...] = ("$",) if rooted and self.records is not None else prefix
        where = self._where(index, path)
        for depth, key in enumerate(parts):
            parent = get_path(base, parts[:depth])
            here = ".".join(str(p) for p in parts[:depth])
            if isinstance(key, int):
                if not isinstance(parent, list):
                    return Drift(where, WRONG_TYPE, f"{here or 'payload'}: expected an array, got {type_name(parent)}")
                if key >= len(parent):
                    break
                continue
            if not isinstance(parent, dict):
                return Drift(where, WRONG_TYPE, f"{here or 'payload'}: expected an object, got {type_name(parent)}")
            if key in parent:
                continue
            expected = self.known.get((*ctx, *(str(p) for p in parts[:depth])), set())
            match = similar_key(key, [k for k in parent if k not in expected], abbrev=True)
            if match is not None:
                seen = f"{here}.{match}" if here else match
                return Drift(where, RENAMED_FIELD, f"field is missing; payload has unexpected {seen!r} (renamed?)")
            break
        return Drift(where, MISSING_FIELD, "required field is missing")

    def _value(self, record: Any, doc: Any, spec: FieldSpec, index: int | None) -> Any:
        if spec.value is not None:
            return spec.value
        if spec.join is not None:
            return ":".join(to_id(self._require(record, doc, p, index), self._where(index, p)) for p in spec.join)
        assert spec.path is not None
        value = self._resolve(record, doc, spec.path)
        if value is MISSING or value is None:
            if spec.optional:
                return None
            if value is MISSING:
                raise self._missing(record, doc, spec.path, index)
            raise Drift(self._where(index, spec.path), MISSING_FIELD, "is null")
        if spec.values is not None:
            key = str(value)
            if key not in spec.values:
                known = ", ".join(sorted(spec.values))
                raise Drift(self._where(index, spec.path), UNKNOWN_VALUE, f"unknown value {key!r} (known: {known})")
            return spec.values[key]
        return value

    def _text(self, record: Any, doc: Any, spec: FieldSpec, index: int | None, name: str) -> str | None:
        value = self._value(record, doc, spec, index)
        if value is None:
            return None
        return to_id(value, self._where(index, spec.path or name))

    def _time(self, record: Any, doc: Any, index: int | None) -> Any:
        spec = self.occurred_at
        value = self._value(record, doc, spec, index)
        zone = ZoneInfo(spec.zone) if spec.zone else None
        return parse_time(value, self._where(index, spec.path or "occurred_at"), fmt=spec.format, zone=zone)

    def _lines(self, record: Any, doc: Any, index: int | None) -> list[dict[str, Any]]:
        spec = self.lines
        assert spec is not None
        items = self._resolve(record, doc, spec.path)
        if items is MISSING or items is None:
            if spec.optional:
                return []
            if items is None:
                raise Drift(self._where(index, spec.path), MISSING_FIELD, "is null")
            raise self._missing(record, doc, spec.path, index)
        if not isinstance(items, list):
            raise Drift(self._where(index, spec.path), WRONG_TYPE, f"expected an array, got {type_name(items)}")
        lines = []
        for n, item in enumerate(items):
            at = f"{self._where(index, spec.path)}[{n}]"
            if not isinstance(item, dict):
                raise Drift(at, WRONG_TYPE, f"expected an object, got {type_name(item)}")
            got = {}
            for key in ("line_id", "sku", "qty"):
                path = getattr(spec, key)
                value = get_path(item, path)
                if value is MISSING:
                    sub = self._missing(item, item, path, None, ("*",))
                    raise Drift(f"{at}.{path}", sub.reason, sub.message)
                got[key] = value
            lines.append(
                {
                    "line_id": to_id(got["line_id"], f"{at}.{spec.line_id}"),
                    "sku": to_id(got["sku"], f"{at}.{spec.sku}"),
                    "qty": to_qty(got["qty"], f"{at}.{spec.qty}"),
                }
            )
        return lines


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; errors name the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such mapping file") from None
    return validate_model(Mapping, parse_yaml(text, str(p)), str(p))


def mapping_dirs(extra: list[str | Path] | None = None) -> list[Path]:
    return [Path(d) for d in extra or []] + [SHIPPED_DIR]


def available(extra: list[str | Path] | None = None) -> dict[str, Path]:
    """Mapping name -> file, the first directory winning (a retailer's own overrides a shipped one)."""
    found: dict[str, Path] = {}
    for d in mapping_dirs(extra):
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def find_mapping(name: str, extra: list[str | Path] | None = None) -> Mapping:
    """A mapping by name (file stem in the mapping dirs) or by path to a .yaml file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return load_mapping(name)
    files = available(extra)
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise ConfigError(f"no mapping named {name!r} (available: {known}, or give a path to a .yaml file)")
    return load_mapping(files[name])
