"""Outcome records as two tidy tables: one row per circuit, one row per owed leg.

Records come from the outcome store, an outcomes JSONL file or memory; each is
flattened by pandas (json_normalize), and deadlines come from the circuit
config's SLAs, since a record does not carry them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd

from circuitwatch.metrics.kpi.weeks import KpiError
from circuitwatch.streams.outcome import Outcome, decode

UNKNOWN = "unknown"  # the tracker's label for a circuit without a store
_SEP = "\x1f"  # json_normalize separator that no leg or field name contains
CIRCUIT_COLUMNS = (
    "order_id",
    "store_id",
    "origin",
    "cancelled_at",
    "state",
    "phantom_units",
    "picks_after_cancel",
    "pickup_attempts_after_cancel",
    "manual_closures",
)
LEG_FIELDS = ("outcome", "closed_at", "latency_s")


@dataclass(frozen=True)
class Frames:
    circuits: pd.DataFrame  # CIRCUIT_COLUMNS + reconciliation_s (whole circuit, closed ones only)
    legs: pd.DataFrame  # order_id, store_id, cancelled_at, leg, outcome, closed_at, latency_s, deadline

    def __len__(self) -> int:
        return len(self.circuits)


def read_outcomes_file(path: str | Path) -> list[Outcome]:
    """An outcomes JSONL file (`replay --outcomes`, `.gz` ok); a bad line is a one-line error naming it."""
    out: list[Outcome] = []
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(decode(line))
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise KpiError(f"{path}:{n}: not an outcome record: {e}") from None
    return out


def build_frames(outcomes: Iterable[Outcome], sla: Mapping[str, float]) -> Frames:
    """Flatten records; a leg missing from `sla` is taken as due at the cancellation."""
    records: list[dict[str, Any]] = msgspec.to_builtins(list(outcomes))
    if not records:
        return Frames(_empty_circuits(), _empty_legs())
    flat = pd.json_normalize(records, sep=_SEP)
    circuits = flat[list(CIRCUIT_COLUMNS)].copy()
    circuits["store_id"] = circuits["store_id"].fillna(UNKNOWN).astype(str)
    circuits["origin"] = circuits["origin"].fillna(UNKNOWN).astype(str)
    circuits["cancelled_at"] = pd.to_datetime(circuits["cancelled_at"], utc=True, format="ISO8601")

    leg_cols = [c for c in flat.columns if c.startswith(f"legs{_SEP}")]
    wide = flat.set_index("order_id")[leg_cols]
    wide.columns = pd.MultiIndex.from_tuples([tuple(c.split(_SEP)[1:]) for c in leg_cols], names=["leg", "field"])
    legs = wide.stack(level="leg").reset_index()
    legs = legs.reindex(columns=["order_id", "leg", *LEG_FIELDS]).dropna(subset=["outcome"])
    legs = legs.merge(circuits[["order_id", "store_id", "cancelled_at"]], on="order_id", how="left")
    legs["closed_at"] = pd.to_datetime(legs["closed_at"], utc=True, format="ISO8601")
    legs["latency_s"] = pd.to_numeric(legs["latency_s"]).astype(float)
    legs["deadline"] = legs["cancelled_at"] + pd.to_timedelta(legs["leg"].map(dict(sla)).fillna(0.0), unit="s")

    finished = circuits["state"].isin(["closed", "closed_late"])
    slowest = legs.groupby("order_id")["latency_s"].max()
    circuits["reconciliation_s"] = circuits["order_id"].map(slowest).where(finished)
    return Frames(circuits.reset_index(drop=True), legs.reset_index(drop=True))


def _empty_circuits() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="int64") for c in CIRCUIT_COLUMNS})
    for c in ("order_id", "store_id", "origin", "state"):
        df[c] = df[c].astype(str)
    df["cancelled_at"] = pd.Series(dtype="datetime64[us, UTC]")
    df["reconciliation_s"] = pd.Series(dtype=float)
    return df


def _empty_legs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series(dtype=str),
            "leg": pd.Series(dtype=str),
            "outcome": pd.Series(dtype=str),
            "closed_at": pd.Series(dtype="datetime64[us, UTC]"),
            "latency_s": pd.Series(dtype=float),
            "store_id": pd.Series(dtype=str),
            "cancelled_at": pd.Series(dtype="datetime64[us, UTC]"),
            "deadline": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
