"""Store drill-down: the overview's store-level figures for one store (the
`store` variable) and the stores ranked worst first, so a regional lead knows
which store to call. Leg metrics carry no store label (bounded cardinality), so
per-store figures are the store-labelled ones: phantom and reserved units,
cancellations, picks and pickup attempts after cancel."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from . import panels as p
from .thresholds import levels

UID = "circuitwatch-store"
TITLE = "Cancellation circuit: store drill-down"

STORE = 'store="$store"'
# The per-store alert's recording rule; it has no sample for a store with nothing reserved, which shows
# as 0 (no phantom units either) rather than vanishing from the ranking.
RATE_BY_STORE = (
    "circuitwatch:phantom_inventory_rate_by_store:ratio or on (store) (0 * sum by (store) (circuitwatch_phantom_units))"
)


def store_levels() -> p.Levels:
    """The per-store phantom inventory alert's level (not the fleet-wide one)."""
    return levels("CircuitwatchPhantomInventoryStore", "ratio")


def store_variable() -> db.QueryVariable:
    return p.query_variable(
        "store",
        "Store",
        "label_values(circuitwatch_reserved_units, store)",
        "Stores that have reported reservations or cancellations.",
    )


def store_phantom_rate() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Phantom inventory rate",
        "Share of this store's reserved units held by cancelled orders past their inventory-release deadline "
        "(recording rule circuitwatch:phantom_inventory_rate_by_store:ratio). Coloured at the per-store alert level.",
        [
            p.query(
                f"circuitwatch:phantom_inventory_rate_by_store:ratio{{{STORE}}}"
                f" or on (store) (0 * sum by (store) (circuitwatch_phantom_units{{{STORE}}}))",
                "$store",
            )
        ],
        unit="percentunit",
        levels=store_levels(),
        decimals=1,
    )


def store_phantom_units() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Phantom units",
        "Units this store still holds for cancelled orders past the inventory deadline: stock that cannot be "
        "sold and shelves that look full.",
        [p.query(f"sum(circuitwatch_phantom_units{{{STORE}}})", "$store")],
        unit="short",
    )


def store_picks_after_cancel() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Picks after cancel",
        "Pick events at this store on orders already cancelled, over the dashboard's time range: wasted labour.",
        [p.query(f"sum(increase(circuitwatch_picks_after_cancel_total{{{STORE}}}[$__range]))", "$store")],
        unit="short",
        decimals=0,
    )


def store_pickups_after_cancel() -> cogbuilder.Builder[dm.Panel]:
    return p.stat_panel(
        "Pickups attempted on cancelled orders",
        "Pickup attempts at this store on orders already cancelled, over the dashboard's time range.",
        [p.query(f"sum(increase(circuitwatch_pickup_attempts_after_cancel_total{{{STORE}}}[$__range]))", "$store")],
        unit="short",
        decimals=0,
    )


def store_units() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Reserved vs phantom units",
        "Units this store holds in reservations, and the part of them that belongs to cancelled orders past "
        "the inventory deadline. The gap closing means the store's stock is turning phantom.",
        [
            p.query(f"sum(circuitwatch_reserved_units{{{STORE}}})", "reserved"),
            p.query(f"sum(circuitwatch_phantom_units{{{STORE}}})", "phantom"),
        ],
        unit="short",
    )


def store_cancellations() -> cogbuilder.Builder[dm.Panel]:
    return p.timeseries_panel(
        "Cancellations by origin",
        "Circuits opened per second at this store, by the system that first signalled the cancellation.",
        [
            p.query(
                f"sum by (origin) (rate(circuitwatch_cancellations_total{{{STORE}}}[$__rate_interval]))", "{{origin}}"
            )
        ],
        unit="ops",
        stacked=True,
    )


def worst_stores() -> cogbuilder.Builder[dm.Panel]:
    return p.table_panel(
        "Worst stores",
        "Every store ranked by phantom inventory rate (click a column to rank by another figure). Counts are "
        "over the dashboard's time range; the phantom rate is coloured at the per-store alert level.",
        [
            (
                "Phantom rate",
                p.query(RATE_BY_STORE),
                "percentunit",
                store_levels(),
            ),
            ("Phantom units", p.query("sum by (store) (circuitwatch_phantom_units)"), "short", p.NO_LEVELS),
            (
                "Picks after cancel",
                p.query("sum by (store) (increase(circuitwatch_picks_after_cancel_total[$__range]))"),
                "short",
                p.NO_LEVELS,
            ),
            (
                "Pickups after cancel",
                p.query("sum by (store) (increase(circuitwatch_pickup_attempts_after_cancel_total[$__range]))"),
                "short",
                p.NO_LEVELS,
            ),
            (
                "Cancellations",
                p.query("sum by (store) (increase(circuitwatch_cancellations_total[$__range]))"),
                "short",
                p.NO_LEVELS,
            ),
        ],
        key="store",
    )


def worst_stores_phantom() -> cogbuilder.Builder[dm.Panel]:
    return p.bargauge_panel(
        "Top 10 stores by phantom inventory rate",
        "The ten stores with the largest share of reserved units stuck on cancelled orders, now.",
        [p.query(f"topk(10, {RATE_BY_STORE})", "{{store}}", instant=True)],
        unit="percentunit",
        levels=store_levels(),
        width=24,
    )


def build() -> db.Dashboard:
    return (
        p.dashboard(UID, TITLE, "One store's cancellation circuit, and the stores ranked worst first.")
        .with_variable(store_variable())
        .with_row(p.row("Store $store"))
        .with_panel(store_phantom_rate())
        .with_panel(store_phantom_units())
        .with_panel(store_picks_after_cancel())
        .with_panel(store_pickups_after_cancel())
        .with_panel(store_units())
        .with_panel(store_cancellations())
        .with_row(p.row("All stores, worst first"))
        .with_panel(worst_stores_phantom())
        .with_panel(worst_stores())
    )
