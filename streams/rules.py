"""The leg table compiled into a (source, type) -> actions lookup.

Matching every event against every rule of `circuit.yaml` would cost a loop per
event; compiling once gives one dict lookup, and only the rare rules with a
status or attrs condition are checked further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from circuitwatch.config import CircuitConfig, Match
from circuitwatch.events import CANCEL_SIGNALS, EVENT_TYPES, SOURCES

OWE, CLOSE, CONTRADICT = 0, 1, 2
COUNTED_KINDS = frozenset({"picked", "picked_up"})  # remembered even when no leg is contradicted
# Types that carry more than leg facts (units, pickups, manual closes, the cancellation itself).
SPECIAL_KINDS = frozenset({"reservation_created", "reservation_released", "picked_up", "manual_close", *CANCEL_SIGNALS})


@dataclass(frozen=True, slots=True)
class Action:
    role: int  # OWE | CLOSE | CONTRADICT
    leg: int
    status: str | None  # None | "cancelled" | "not_cancelled"
    attrs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one (source, type) does, split so the common case is a few int ops.

    It also carries what the hot path would otherwise rebuild per event: the
    `events_total` label tuple and the type's flags.
    """

    owe: int  # legs owed, bitmask
    close: tuple[int, ...]  # legs closed
    contradict: int  # legs contradicted (after the cancel), bitmask
    conditional: tuple[Action, ...]  # actions that also need a status or attrs check
    remember: bool  # may be a pick, pickup or contradiction: kept as an act
    key: tuple[str, str]  # (source, type): the events_total labels, one shared tuple
    kind: str  # the event type
    counted: bool  # a pick or pickup: remembered even when no leg is contradicted
    special: bool  # the type is one of SPECIAL_KINDS
    only_owes: bool  # nothing to do beyond `owe` (a third of all events)

    @classmethod
    def of(cls, source: str, etype: str, actions: list[Action]) -> Plan:
        plain = [a for a in actions if a.status is None and not a.attrs]
        conditional = tuple(a for a in actions if a.status is not None or a.attrs)
        contradict = sum({1 << a.leg for a in plain if a.role == CONTRADICT})
        close = tuple(sorted({a.leg for a in plain if a.role == CLOSE}))
        remember = bool(contradict) or etype in COUNTED_KINDS or any(a.role == CONTRADICT for a in conditional)
        special = etype in SPECIAL_KINDS
        return cls(
            owe=sum({1 << a.leg for a in plain if a.role == OWE}),
            close=close,
            contradict=contradict,
            conditional=conditional,
            remember=remember,
            key=(source, etype),
            kind=etype,
            counted=etype in COUNTED_KINDS,
            special=special,
            only_owes=not (close or conditional or remember or special),
        )


@dataclass(frozen=True)
class Rules:
    legs: tuple[str, ...]
    sla: tuple[float, ...]
    always_owed: int  # bitmask of legs owed for every cancellation
    lateness: float
    retention_closed: float
    retention_broken: float
    retention_inactive: float
    cancelled_statuses: frozenset[str]
    plans: dict[str, dict[str, Plan]]  # source -> type -> plan, for every source and type

    @classmethod
    def compile(cls, config: CircuitConfig) -> Rules:
        legs = tuple(config.legs)
        table: dict[tuple[str, str], list[Action]] = {}

        def add(role: int, leg: int, match: Match) -> None:
            for source in (match.source,) if match.source else SOURCES:
                for etype in (match.type,) if match.type else EVENT_TYPES:
                    action = Action(role, leg, match.status, tuple(sorted(match.attrs.items())))
                    table.setdefault((source, etype), []).append(action)

        always = 0
        for i, leg in enumerate(config.legs.values()):
            if leg.owed_when == "always":
                always |= 1 << i
            else:
                for m in leg.owed_when:
                    add(OWE, i, m)
            for m in leg.closed_by:
                add(CLOSE, i, m)
            for m in leg.contradicted_by:
                add(CONTRADICT, i, m)
        return cls(
            legs=legs,
            sla=tuple(leg.sla for leg in config.legs.values()),
            always_owed=always,
            lateness=config.allowed_lateness,
            retention_closed=config.retention.closed,
            retention_broken=config.retention.broken,
            retention_inactive=config.retention.inactive,
            cancelled_statuses=frozenset(s.strip().lower() for s in config.cancelled_statuses),
            plans={s: {t: Plan.of(s, t, table.get((s, t), [])) for t in EVENT_TYPES} for s in SOURCES},
        )

    def leg_index(self, name: Any) -> int:
        try:
            return self.legs.index(name)
        except ValueError:
            return -1
