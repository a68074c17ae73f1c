"""Per-leg and per-store summaries of outcome records, for the terminal and report.md."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import quantiles

from rich.table import Table

from circuitwatch.streams.outcome import Outcome

LEG_OUTCOMES = ("closed", "late", "breached", "contradicted", "open")


@dataclass
class Summary:
    legs: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stores: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    states: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Summary:
        s = cls()
        for o in outcomes:
            s.states[o.state] += 1
            store = s.stores[o.store_id or "unknown"]
            store["cancellations"] += 1
            store[o.state] += 1
            store["phantom_units"] += o.phantom_units
            store["picks_after_cancel"] += o.picks_after_cancel
            store["pickup_attempts_after_cancel"] += o.pickup_attempts_after_cancel
            store["manual_closures"] += o.manual_closures
            for leg, lo in o.legs.items():
                s.legs[leg][lo.outcome] += 1
                if lo.latency_s is not None:
                    s.latency[leg].append(lo.latency_s)
        return s

    def leg_rows(self, order: Sequence[str]) -> list[list[str]]:
        rows = []
        for leg in [name for name in order if name in self.legs]:
            c = self.legs[leg]
            owed = sum(c.values())
            p50, p95 = _p(self.latency[leg], 50), _p(self.latency[leg], 95)
            broken = c["breached"] + c["contradicted"]
            rows.append(
                [leg, str(owed), *(str(c[k]) for k in LEG_OUTCOMES), f"{broken / owed:.1%}" if owed else "-", p50, p95]
            )
        return rows

    def store_rows(self) -> list[list[str]]:
        rows = []
        for store in sorted(self.stores, key=lambda k: (-self.stores[k]["broken"], k)):
            c = self.stores[store]
            rows.append(
                [
                    store,
                    str(c["cancellations"]),
                    str(c["broken"]),
                    f"{c['broken'] / c['cancellations']:.1%}",
                    str(c["phantom_units"]),
                    str(c["picks_after_cancel"]),
                    str(c["pickup_attempts_after_cancel"]),
                    str(c["manual_closures"]),
                ]
            )
        return rows


LEG_HEADER = ["leg", "owed", "closed", "late", "breach", "contra", "open", "broken", "p50", "p95"]
STORE_HEADER = ["store", "cancels", "broken", "broken%", "phantom", "picks", "pickups", "manual"]


def _p(values: list[float], pct: int) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return _secs(values[0])
    return _secs(quantiles(values, n=100, method="inclusive")[pct - 1])


def _secs(s: float) -> str:
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}m"


def rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
