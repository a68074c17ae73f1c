"""Shared panel helpers, so every dashboard gets the same datasource, units,
threshold colours and legend style, and each dashboard module only says what a
panel shows and why.

Every panel helper requires a description: store leads read these dashboards
without the code, and a panel that does not say what it measures is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

# The provisioned datasource (dashboards/provisioning/datasources) has this uid;
# dashboards reference it through the `datasource` variable so a user's own
# Prometheus can be picked from the dropdown after `publish`.
DATASOURCE_UID = "circuitwatch-prometheus"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

OK, WARNING, CRITICAL = "green", "orange", "red"


@dataclass(frozen=True)
class Levels:
    """Where a value turns orange (warning) and red (critical); None = no such level.
    `below`: low values are the bad ones (e.g. `up`), so red under `critical`, green from `warning`."""

    warning: float | None = None
    critical: float | None = None
    below: bool = False


NO_LEVELS = Levels()


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .description("The Prometheus that scrapes circuitwatch and evaluates its recording rules.")
        .current(dm.VariableOption(selected=True, text="circuitwatch", value=DATASOURCE_UID))
    )


def query_variable(
    name: str, label: str, query: str, description: str, *, include_all: bool = False
) -> db.QueryVariable:
    var = (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if include_all:
        var = var.include_all(True).multi(True).all_value(".*")
    return var


def query(
    expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False, fmt: pm.PromQueryFormat | None = None
) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def steps(levels: Levels) -> db.ThresholdsConfig:
    """Green below the warning level, orange from it, red from the critical level (mirrored if `below`)."""
    if levels.below:
        out = [dm.Threshold(value=None, color=CRITICAL if levels.critical is not None else WARNING)]
        if levels.critical is not None:
            out.append(dm.Threshold(value=levels.critical, color=WARNING if levels.warning is not None else OK))
        if levels.warning is not None:
            out.append(dm.Threshold(value=levels.warning, color=OK))
    else:
        out = [dm.Threshold(value=None, color=OK)]
        if levels.warning is not None:
            out.append(dm.Threshold(value=levels.warning, color=WARNING))
        if levels.critical is not None:
            out.append(dm.Threshold(value=levels.critical, color=CRITICAL))
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(out)


def link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).type(dm.DashboardLinkType.LINK).url(url).keep_time(True).include_vars(True)


def dashboard_link(uid: str, title: str) -> db.DashboardLink:
    return link(title, f"/d/{uid}")


def _targets(qs: Sequence[prom.Dataquery]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    return [q.ref_id(chr(ord("A") + i)) for i, q in enumerate(qs)]


def stat_panel(
    title: str,
    description: str,
    queries: Sequence[prom.Dataquery],
    *,
    unit: str,
    levels: Levels = NO_LEVELS,
    width: int = 6,
    height: int = 5,
    decimals: float | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .thresholds(steps(levels))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(height)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[prom.Dataquery],
    *,
    unit: str,
    levels: Levels = NO_LEVELS,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    min_value: float | None = 0,
) -> timeseries.Panel:
    """Alert levels are drawn as dashed lines, so a reader sees how close a series runs to paging."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .thresholds(steps(levels))
        .thresholds_style(
            common.GraphThresholdsStyleConfig().mode(
                cm.GraphThresholdsStyleMode.DASHED if levels != NO_LEVELS else cm.GraphThresholdsStyleMode.OFF
            )
        )
        .line_width(1)
        .fill_opacity(15 if stacked else 5)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
        .span(width)
        .height(height)
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    if min_value is not None:
        panel = panel.min(min_value)
    return panel


def bargauge_panel(
    title: str,
    description: str,
    queries: Sequence[prom.Dataquery],
    *,
    unit: str,
    levels: Levels = NO_LEVELS,
    width: int = 12,
    height: int = 8,
) -> bargauge.Panel:
    """Horizontal bars, one per label value: for 'which leg / which store' questions."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .min(0)
        .thresholds(steps(levels))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(height)
    )


def table_panel(
    title: str,
    description: str,
    columns: Sequence[tuple[str, prom.Dataquery, str, Levels]],
    *,
    key: str,
    width: int = 24,
    height: int = 9,
) -> table.Panel:
    """A ranked table: one row per `key` label value, one column per (name, instant query, unit, levels),
    sorted by the first column, worst first."""
    qs = [q.format(pm.PromQueryFormat.TABLE).instant() for _, q, _, _ in columns]
    refs = [chr(ord("A") + i) for i in range(len(columns))]
    rename = {f"Value #{ref}": name for ref, (name, _, _, _) in zip(refs, columns, strict=True)}
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(qs))
        .sort_by([common.TableSortByFieldState().display_name(columns[0][0]).desc(True)])
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {key: 0, **{f"Value #{r}": i + 1 for i, r in enumerate(refs)}},
                    "renameByName": rename,
                },
            )
        )
        .span(width)
        .height(height)
    )
    for name, _, unit, lv in columns:
        panel = panel.override_by_name(
            name,
            [
                dm.DynamicConfigValue(id_val="unit", value=unit),
                dm.DynamicConfigValue(id_val="thresholds", value=steps(lv).build()),
                dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions",
                    value={"type": "color-background"} if lv != NO_LEVELS else {"type": "auto"},
                ),
            ],
        )
    return panel


def heatmap_panel(
    title: str, description: str, queries: Sequence[prom.Dataquery], *, width: int = 24, height: int = 9
) -> heatmap.Panel:
    """Buckets as Prometheus exposes them (no re-bucketing in the browser)."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .calculate(False)
        .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges").exponent(0.5).steps(64))
        .y_axis(heatmap.YAxisConfig().unit("s").decimals(0))
        .cell_values(heatmap.CellValues().unit("short"))
        .show_color_scale(True)
        .span(width)
        .height(height)
    )


def row(title: str) -> db.Row:
    return db.Row(title)


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """Common frame: tags (the cross-links find each other by tag), UTC, 30s refresh, the datasource picker."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["circuitwatch"])
        .editable()
        .timezone("utc")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
        .link(
            db.DashboardLink("circuitwatch")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["circuitwatch"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )
