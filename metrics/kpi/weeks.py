"""ISO weeks in a time zone: a store's week runs from its local Monday 00:00 to the next."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


class KpiError(ValueError):
    """A one-line, user-facing reason why no export was written."""


@dataclass(frozen=True)
class Window:
    week: str  # "2026-W48"
    tz: str
    start: pd.Timestamp  # local Monday 00:00, tz-aware
    end: pd.Timestamp  # the next local Monday 00:00 (exclusive)

    @property
    def days(self) -> pd.DatetimeIndex:
        """The seven local midnights (a DST day is 23 or 25 hours long)."""
        return pd.DatetimeIndex([self.start + pd.DateOffset(days=i) for i in range(7)], name="day")

    def describe(self) -> str:
        return f"{self.week} ({self.tz}: {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M})"


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise KpiError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin or UTC)") from None


def parse_week(text: str) -> tuple[int, int]:
    m = _WEEK.match(text)
    if not m:
        raise KpiError(f"week {text!r}: expected an ISO week such as 2026-W48")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise KpiError(f"week {text!r}: {year} has no ISO week {week}") from None
    return year, week


def _midnight(day: date, tz: ZoneInfo) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=tz))


def window(week: str, tz: str = "UTC") -> Window:
    year, num = parse_week(week)
    zi = zone(tz)
    monday = date.fromisocalendar(year, num, 1)
    return Window(f"{year}-W{num:02d}", tz, _midnight(monday, zi), _midnight(monday + timedelta(days=7), zi))


def previous(win: Window) -> Window:
    monday = win.start.date() - timedelta(days=7)
    year, num, _ = monday.isocalendar()
    return window(f"{year}-W{num:02d}", win.tz)


def week_of(ts: pd.Timestamp, tz: str) -> str:
    """The ISO week that holds `ts` in the local time of `tz`."""
    year, num, _ = ts.tz_convert(zone(tz)).isocalendar()
    return f"{year}-W{num:02d}"
