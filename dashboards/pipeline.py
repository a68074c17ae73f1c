"""Pipeline health: can the other dashboards be trusted right now? Events per
source, payload drift (rejects), lag, watermark and whether the worker is up.
A quiet circuit dashboard means nothing if a source stopped sending."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from . import panels as p
from .thresholds import job, levels, window

UID = "circuitwatch-pipeline"
TITLE = "Cancellation circuit: pipeline health"


SOURCE = 'source=~"$source"'


def source_variable() -> db.QueryVariable:
    return p.query_variable(
        "source",
        "Source",
        "label_values(circuitwatch_events_total, source)",
        "The source systems shown in the per-source panels; alert links preselect the alert's source.",
        include_all=True,
    )


def worker_up() -> cogbuilder.Builder[dm.Panel]:
    job_name = job()
    return p.stat_panel(
        "Worker up",
        f'Targets of the "{job_name}" scrape job that Prometheus reached at the last scrape (up == 1). '
        "Red: no worker is being scraped, every other panel is stale.",
        [p.query(f'sum(up{{job="{job_name}"}})', "up")],
        unit="short",
        levels=p.Levels(critical=1, below=True),
        decimals=0,
    )


def reject_ratio() -> cogbuilder.Builder[dm.Panel]:
    w = window("CircuitwatchPayloadDrift")
    return p.bargauge_panel(
        f"Reject ratio by source ({w})",
        "Share of each source's records rejected to the dead letter (rejected / (accepted + rejected); the "
        "payload-drift alert's recording rule, 0 when nothing was rejected). A jump is payload drift: the source "
        "changed its format. Coloured at the alert level.",
        [
            p.query(
                f"circuitwatch:events_rejected:ratio15m{{{SOURCE}}}"
                f" or on (source) (0 * circuitwatch:events_rejected:increase15m{{{SOURCE}}})",
                "{{source}}",
                instant=True,
            )
        ],
        unit="percentunit",
        levels=levels("CircuitwatchPayloadDrift", "ratio"),
        width=6,
        height=5,
    )


def watermark_age() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Watermark age",
        "Wall-clock time minus the event-time watermark (newest event time minus allowed lateness). Growing "
        "means deadlines stop advancing from events; in live mode the wall clock still breaches silent legs.",
        [p.query("time() - max(circuitwatch_watermark_timestamp_seconds)", "age")],
        unit="s",
        levels=levels("CircuitwatchWatermarkStale", "max_lag", duration=True),
    )


def tracked_orders() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Tracked orders",
        "Orders held in the tracker's state (open and recently closed circuits, orders not yet cancelled). "
        "Unbounded growth means retention is not evicting.",
        [p.query("sum(circuitwatch_tracked_orders)", "orders")],
        unit="short",
    )


def events_by_source_type() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Events by source and type",
        "Canonical events accepted per second, by source system and event type. A source dropping to zero "
        "makes its leg look broken (or hides that it is).",
        [
            p.query(
                f"sum by (source, type) (rate(circuitwatch_events_total{{{SOURCE}}}[$__rate_interval]))",
                "{{source}} {{type}}",
            )
        ],
        unit="ops",
        stacked=True,
        width=24,
    )


def rejects_by_reason() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Rejects by source and reason (payload drift)",
        "Records sent to the dead letter per second, by source and reason (malformed_json, missing_field, "
        "wrong_type, unknown_value, naive_timestamp, ...). The dead-letter topic holds the records.",
        [
            p.query(
                f"sum by (source, reason) (rate(circuitwatch_events_rejected_total{{{SOURCE}}}[$__rate_interval]))",
                "{{source}} {{reason}}",
            )
        ],
        unit="ops",
    )


def event_lag() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Event lag by source",
        "Wall-clock time minus the event time of the newest event of each source: how far behind each "
        "system's feed is. During a replay of past events this is the age of the replayed data.",
        [p.query(f"time() - max by (source) (circuitwatch_last_event_timestamp_seconds{{{SOURCE}}})", "{{source}}")],
        unit="s",
        min_value=None,
    )


def late_and_duplicate() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Late and duplicate events by source",
        "Late: arrived behind the watermark (applied, outcome record corrected). Duplicate: event_id already "
        "seen (ignored). Both per second; a rise means a source is replaying or retrying.",
        [
            p.query(
                f"sum by (source) (rate(circuitwatch_late_events_total{{{SOURCE}}}[$__rate_interval]))",
                "late {{source}}",
            ),
            p.query(
                f"sum by (source) (rate(circuitwatch_events_duplicate_total{{{SOURCE}}}[$__rate_interval]))",
                "duplicate {{source}}",
            ),
        ],
        unit="ops",
    )


def outcomes_by_state() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Outcome records by state",
        "Outcome records emitted per second to bopis.circuit-outcomes, by circuit state (a correction is emitted "
        "again). The downstream KPI export reads these.",
        [p.query("sum by (state) (rate(circuitwatch_outcomes_emitted_total[$__rate_interval]))", "{{state}}")],
        unit="ops",
        stacked=True,
    )


def build() -> db.Dashboard:
    return (
        p.dashboard(UID, TITLE, "Is circuitwatch receiving, parsing and keeping up with every source?")
        .with_variable(source_variable())
        .with_row(p.row("Health"))
        .with_panel(worker_up())
        .with_panel(reject_ratio())
        .with_panel(watermark_age())
        .with_panel(tracked_orders())
        .with_row(p.row("Input"))
        .with_panel(events_by_source_type())
        .with_panel(rejects_by_reason())
        .with_panel(event_lag())
        .with_row(p.row("Processing"))
        .with_panel(late_and_duplicate())
        .with_panel(outcomes_by_state())
    )
