"""Handoff latency: how long each system takes to acknowledge a cancellation,
against that leg's SLA from circuit.yaml. Slow-but-closing legs show up here
before they breach."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from . import panels as p
from .thresholds import leg_slas

UID = "circuitwatch-latency"
TITLE = "Cancellation circuit: handoff latency"


def leg_variable() -> db.QueryVariable:
    return p.query_variable(
        "leg",
        "Leg",
        "label_values(circuitwatch_leg_latency_seconds_bucket, leg)",
        "The acknowledgements (legs) shown in the heatmap.",
        include_all=True,
    )


def latency_heatmap() -> cogbuilder.Builder[dm.Panel]:
    return p.heatmap_panel(
        "Acknowledgement latency heatmap ($leg)",
        "Cancellation-to-acknowledgement times of the selected legs, per histogram bucket and time step. "
        "A band moving up is a system slowing down before it starts breaching.",
        [
            p.query(
                'sum by (le) (increase(circuitwatch_leg_latency_seconds_bucket{leg=~"$leg"}[$__rate_interval]))',
                "{{le}}",
                fmt=pm.PromQueryFormat.HEATMAP,
            )
        ],
    )


def _human(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def leg_quantiles(leg: str, sla: float) -> cogbuilder.Builder[dm.Panel]:
    """One per leg: p50/p95/p99 with the leg's SLA drawn as the red line."""
    buckets = f'sum by (le) (rate(circuitwatch_leg_latency_seconds_bucket{{leg="{leg}"}}[$__rate_interval]))'
    return p.timeseries_panel(
        f"{leg}: acknowledgement latency (SLA {_human(sla)})",
        f"Time from the cancellation to the {leg} leg's acknowledgement, p50 / p95 / p99 of the legs closed in "
        f"the window. The red line is the leg's SLA from circuit.yaml ({_human(sla)}); above it the "
        "acknowledgements arrive late.",
        [p.query(f"histogram_quantile({x}, {buckets})", f"p{round(x * 100)}") for x in (0.5, 0.95, 0.99)],
        unit="s",
        levels=p.Levels(critical=sla),
        width=8,
    )


def late_share_by_leg() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Late acknowledgements by leg",
        "Of the acknowledgements received in the window, the share that arrived after the leg's SLA. "
        "Late legs still closed, but the phantom pickup existed meanwhile.",
        [
            p.query(
                'sum by (leg) (rate(circuitwatch_leg_closures_total{timeliness="late"}[$__rate_interval]))'
                " / sum by (leg) (rate(circuitwatch_leg_closures_total[$__rate_interval]))",
                "{{leg}}",
            )
        ],
        unit="percentunit",
    )


def breaches_by_leg() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Breaches by leg",
        "Legs that reached their deadline without an acknowledgement, per second: the SLA was missed outright.",
        [p.query("sum by (leg) (rate(circuitwatch_leg_breaches_total[$__rate_interval]))", "{{leg}}")],
        unit="ops",
    )


def build() -> db.Dashboard:
    dash = (
        p.dashboard(UID, TITLE, "Cancellation-to-acknowledgement latency per leg, against each leg's SLA.")
        .with_variable(leg_variable())
        .with_row(p.row("Distribution"))
        .with_panel(latency_heatmap())
        .with_row(p.row("Quantiles per leg against the SLA"))
    )
    for leg, sla in leg_slas().items():
        dash = dash.with_panel(leg_quantiles(leg, sla))
    return dash.with_row(p.row("Missed SLAs")).with_panel(late_share_by_leg()).with_panel(breaches_by_leg())
