"""`circuit.yaml`: the leg table and timing, as data.

Stacks differ (one retailer has no WMS, another cancels through its store app),
so which legs exist, what closes them and what contradicts them is configuration
validated here, never code. The contract's table ships as `default_circuit.yaml`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from circuitwatch.events import EVENT_TYPES, SOURCES

M = TypeVar("M", bound=BaseModel)
_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """'90s', '2m', '1.5h', '7d' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '2m'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as '90s', '2m', '1h', '7d', got {value!r}")
        seconds = float(m.group("n")) * _UNIT_SECONDS[m.group("unit") or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Which events a rule refers to; every given field must match."""

    source: str | None = None
    type: str | None = None
    status: Literal["cancelled", "not_cancelled"] | None = Field(
        default=None, description="the event's status is (not) one of `cancelled_statuses`"
    )
    attrs: dict[str, str] = {}

    @model_validator(mode="after")
    def _known_names(self) -> Match:
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; one of {', '.join(SOURCES)}")
        if self.type is not None and self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; one of {', '.join(EVENT_TYPES)}")
        return self


class Leg(_Strict):
    """One acknowledgement a cancellation is owed."""

    sla: Duration
    owed_when: Literal["always"] | list[Match] = "always"
    closed_by: list[Match] = Field(min_length=1)
    contradicted_by: list[Match] = []


class Retention(_Strict):
    """How long state is kept. Eviction is the tracker's only dependence on arrival
    order (a straggler after it starts afresh), so `closed` must exceed the arrival
    skew of a backfill; closed circuits are few, so days cost little memory."""

    closed: Duration = 2 * 86400.0
    broken: Duration = 7 * 86400.0
    inactive: Duration = 7 * 86400.0


class CircuitConfig(_Strict):
    allowed_lateness: Duration = 120.0
    cancelled_statuses: list[str] = ["cancelled", "canceled"]
    retention: Retention = Retention()
    legs: dict[str, Leg] = Field(min_length=1)

    @model_validator(mode="after")
    def _leg_names(self) -> CircuitConfig:
        for name in self.legs:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
                raise ValueError(f"leg name {name!r} must be lower_snake_case (it becomes a label value)")
        return self


class ConfigError(ValueError):
    """A one-line, user-facing description of what is wrong in a config file."""


_DEFAULT = "default_circuit.yaml"


def _default_text() -> str:
    return resources.files("circuitwatch").joinpath(_DEFAULT).read_text()


@lru_cache(maxsize=1)
def default_config() -> CircuitConfig:
    return _parse(_default_text(), _DEFAULT)


def load_config(path: str | Path | None) -> CircuitConfig:
    if path is None:
        return default_config()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    return _parse(text, str(p))


def parse_yaml(text: str, name: str) -> dict[str, Any]:
    """A YAML document that must be a mapping; errors are one line naming the file and line."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of settings, got {type(data).__name__}")
    return data


def validate_model(model: type[M], data: Any, name: str) -> M:
    """`model.model_validate(data)`, its first error as one line: `FILE: field.path: message`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "-"
        raise ConfigError(f"{name}: {field}: {err['msg']}") from None


def _parse(text: str, name: str) -> CircuitConfig:
    data = parse_yaml(text, name)
    if "legs" not in data and name != _DEFAULT:
        data["legs"] = parse_yaml(_default_text(), _DEFAULT)["legs"]  # tune timing without restating the table
    return validate_model(CircuitConfig, data, name)
