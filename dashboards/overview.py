"""Cancellation circuit overview: is any cancellation failing to propagate, and
what is it costing right now? The first dashboard on-call and store ops open."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from . import panels as p
from .thresholds import levels, window

UID = "circuitwatch-overview"
TITLE = "Cancellation circuit overview"


LEG = 'leg=~"$leg"'
# The leg-broken alert's own recording rule (breached / (breached + closed on time) over 15m). It has no
# sample for a leg with no deadline in the window; such a leg shows 0 rather than vanishing from the panel.
BREACH_RATIO = (
    f"circuitwatch:leg_breach_ratio:ratio15m{{{LEG}}} or on (leg) (0 * circuitwatch:leg_breaches:increase15m{{{LEG}}})"
)


def leg_variable() -> db.QueryVariable:
    return p.query_variable(
        "leg",
        "Leg",
        "label_values(circuitwatch_unclosed_legs, leg)",
        "The acknowledgements (legs) shown in the per-leg panels; alert links preselect the alert's leg.",
        include_all=True,
    )


def phantom_inventory_rate() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Phantom inventory rate",
        "Share of reserved units held by cancelled orders whose inventory release is past its deadline "
        "(recording rule circuitwatch:phantom_inventory_rate:ratio = phantom / reserved units; 0 while nothing "
        "is reserved). These units cannot be sold although the customer is gone. Coloured at the alert level.",
        [
            p.query(
                "circuitwatch:phantom_inventory_rate:ratio or on () (0 * sum(circuitwatch_phantom_units))", "phantom"
            )
        ],
        unit="percentunit",
        levels=levels("CircuitwatchPhantomInventoryHigh", "ratio"),
        decimals=1,
        width=5,
    )


def open_circuits() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Open circuits",
        "Cancellations with at least one owed acknowledgement not yet received (deadlines not all reached). "
        "A steady climb means some system stopped acknowledging.",
        [p.query("sum(circuitwatch_open_circuits)", "open")],
        unit="short",
        width=5,
    )


def unclosed_legs_total() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Unclosed legs (sync debt)",
        "Acknowledgements past their deadline and still missing, all legs. Each one is a system still "
        "treating a cancelled order as live. Coloured at the alert levels.",
        [p.query("sum(circuitwatch_unclosed_legs)", "unclosed")],
        unit="short",
        width=5,
    )


def sync_debt_growth() -> cogbuilder.Builder[dm.Panel]:
    w = window("CircuitwatchSyncDebtGrowing")
    return p.stat_panel(
        f"Sync debt growth, worst leg ({w})",
        f"The largest change in unclosed legs of any one leg over the last {w} (the sync-debt alert's measure): "
        "positive means acknowledgements go missing faster than they are caught up. Coloured at its level.",
        [p.query(f"max(sum by (leg) (delta(circuitwatch_unclosed_legs[{w}])))", "growth")],
        unit="short",
        levels=levels("CircuitwatchSyncDebtGrowing", "min_growth"),
        decimals=0,
        width=5,
    )


def alerts_firing() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Alerts firing",
        "circuitwatch alerts currently firing in Prometheus (its ALERTS series); 0 when none fires. "
        "Each alert's runbook_url links to its runbook, which links back to the panel to look at.",
        [p.query('count(ALERTS{alertstate="firing", alertname=~"Circuitwatch.+"}) or vector(0)', "firing")],
        unit="short",
        levels=p.Levels(critical=1),
        width=4,
    )


def unclosed_legs_by_leg() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Unclosed legs by leg",
        "Acknowledgements past their deadline and still missing, by leg (oms, wms, inventory, storefront, "
        "store, customer): which handoff is broken.",
        [p.query(f"sum by (leg) (circuitwatch_unclosed_legs{{{LEG}}})", "{{leg}}")],
        unit="short",
        stacked=True,
    )


def breach_ratio_by_leg() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Breach ratio by leg (15m)",
        "Of the legs that reached their deadline in the last 15 minutes, the share that was still open "
        "(breached / (breached + closed on time), as the leg-broken alert counts it). "
        "0 = every system acknowledged in time; 1 = none did.",
        [p.query(BREACH_RATIO, "{{leg}}")],
        unit="percentunit",
        levels=levels("CircuitwatchLegBroken", "breach_ratio"),
    )


def circuit_close_time() -> cogbuilder.Builder[dm.Panel]:
    q = "histogram_quantile({q}, sum by (le) (rate(circuitwatch_circuit_close_seconds_bucket[$__rate_interval])))"
    return p.timeseries_panel(
        "Circuit close time p50 / p95",
        "Time from the first cancellation signal to the last owed acknowledgement, for circuits that closed "
        "in the window. p95 above the slowest leg's SLA means customers see stale pickups.",
        [p.query(q.format(q=0.5), "p50"), p.query(q.format(q=0.95), "p95")],
        unit="s",
    )


def picks_after_cancel() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Picks after cancel",
        "Lines picked, staged or handed over after the order was cancelled, over the dashboard's time range: "
        "wasted store labour caused by a cancellation that did not reach the pick wave.",
        [p.query("sum(increase(circuitwatch_picks_after_cancel_total[$__range]))", "picks")],
        unit="short",
        decimals=0,
    )


def pickups_after_cancel() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Pickups attempted on cancelled orders",
        "Pickup attempts (picked_up) on orders already cancelled, over the dashboard's time range: a customer "
        "or associate at the counter for an order that no longer exists.",
        [p.query("sum(increase(circuitwatch_pickup_attempts_after_cancel_total[$__range]))", "pickups")],
        unit="short",
        decimals=0,
    )


def manual_closures() -> cogbuilder.Builder[dm.Panel]:
    return p.bargauge_panel(
        "Manual closures by leg (workaround reliance)",
        "Legs closed by a manual_close over the dashboard's time range: people patching a broken integration "
        "by hand. A leg that relies on this is broken even if nothing breaches.",
        [
            p.query(
                f"sum by (leg) (increase(circuitwatch_manual_closures_total{{{LEG}}}[$__range]))",
                "{{leg}}",
                instant=True,
            )
        ],
        unit="short",
        width=8,
    )


def contradictions() -> cogbuilder.Builder[dm.Panel]:
    w = window("CircuitwatchCancelReadAsUpdate")
    return p.timeseries_panel(
        f"Contradictions by leg (last {w})",
        "A system acted as if a cancelled order were live (picked, staged, picked_up, storefront status back to "
        f"open): the cancel was read as an update. Count over the last {w}, coloured at the alert level.",
        [p.query(f"sum by (leg) (increase(circuitwatch_leg_contradictions_total{{{LEG}}}[{w}]))", "{{leg}}")],
        unit="short",
        levels=levels("CircuitwatchCancelReadAsUpdate", "min_contradictions"),
        width=8,
    )


def cancellations_by_origin() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Cancellations by origin",
        "Circuits opened per second, by the system that first signalled the cancellation. The denominator of "
        "every other panel: a spike here explains a spike in open circuits.",
        [p.query("sum by (origin) (rate(circuitwatch_cancellations_total[$__rate_interval]))", "{{origin}}")],
        unit="ops",
        stacked=True,
        width=8,
    )


def build() -> db.Dashboard:
    return (
        p.dashboard(UID, TITLE, "Is every cancellation reaching every system, and what do the broken ones cost?")
        .with_variable(leg_variable())
        .with_row(p.row("Now"))
        .with_panel(phantom_inventory_rate())
        .with_panel(open_circuits())
        .with_panel(unclosed_legs_total())
        .with_panel(sync_debt_growth())
        .with_panel(alerts_firing())
        .with_row(p.row("Which handoff"))
        .with_panel(unclosed_legs_by_leg())
        .with_panel(breach_ratio_by_leg())
        .with_row(p.row("Cost"))
        .with_panel(circuit_close_time())
        .with_panel(picks_after_cancel())
        .with_panel(pickups_after_cancel())
        .with_panel(manual_closures())
        .with_panel(contradictions())
        .with_panel(cancellations_by_origin())
    )
