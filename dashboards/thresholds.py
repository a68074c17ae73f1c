"""Where panels turn orange and red: read from the alert rules' own source.

A dashboard that colours at 5% while the alert pages at 2% teaches on-call to
distrust one of them, so no number is copied here: alert levels and windows come
from `alerts/thresholds.yaml` through the alert builder's own loader, and leg
SLAs from the circuit configuration (`circuit.yaml`). A missing or renamed
setting raises `circuitwatch.config.ConfigError` naming it.
"""

from __future__ import annotations

from functools import cache

from circuitwatch.alerts.build import Thresholds, load_thresholds
from circuitwatch.config import CircuitConfig, default_config, parse_duration

from .panels import Levels


@cache
def _thresholds() -> Thresholds:
    return load_thresholds()


def levels(alert: str, key: str, *, duration: bool = False, below: bool = False) -> Levels:
    """Colour at `alert`'s setting `key`: red if the alert pages, orange if it opens a ticket.
    `duration`: the setting is a Prometheus duration (e.g. max_lag: 10m), coloured in seconds."""
    settings = _thresholds().alert(alert)
    value = parse_duration(settings.dur(key)) if duration else settings.num(key)
    if settings.severity == "page":
        return Levels(critical=value, below=below)
    return Levels(warning=value, below=below)


def window(alert: str, key: str = "window") -> str:
    """`alert`'s range window (a Prometheus duration), so a panel looks at what the alert looks at."""
    return _thresholds().alert(alert).dur(key)


def job() -> str:
    """The worker's scrape job name, as the pipeline alerts select it."""
    return _thresholds().job


def leg_slas(config: CircuitConfig | None = None) -> dict[str, float]:
    """Each leg's deadline in seconds, in the configured leg order."""
    cfg = config or default_config()
    return {name: float(leg.sla) for name, leg in cfg.legs.items()}
