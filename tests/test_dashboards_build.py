"""Dashboards as code: the committed JSON is what the code builds, every panel says
what it shows, colours come from the alert thresholds and SLAs (read, not copied),
and the alert rules' dashboard links land on existing dashboards and variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from click.testing import CliRunner

import circuitwatch.dashboards as dashboards
from circuitwatch.alerts.build import load_thresholds
from circuitwatch.cli import cli
from circuitwatch.config import load_config, parse_duration
from circuitwatch.dashboards import panels as p
from circuitwatch.dashboards import thresholds

ROOT = Path(__file__).resolve().parent.parent
UIDS = {"circuitwatch-overview", "circuitwatch-store", "circuitwatch-latency", "circuitwatch-pipeline"}
RECORDED = re.compile(r"\bcircuitwatch:[a-z0-9_]+:[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Any]]:
    return dashboards.build_all()


def _visual(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboards.iter_panels(model) if panel["type"] != "row"]


def _by_title(model: dict[str, Any], title: str) -> dict[str, Any]:
    found = [panel for panel in dashboards.iter_panels(model) if panel.get("title") == title]
    assert len(found) == 1, f"{title!r}: {len(found)} panels"
    return found[0]


def _steps(panel: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return steps


def _step_values(panel: dict[str, Any]) -> list[float]:
    return [s["value"] for s in _steps(panel) if s["value"] is not None]


def test_committed_json_is_what_the_code_builds() -> None:
    assert dashboards.stale() == [], "run `circuitwatch dashboards build` and commit dashboards/generated"


def test_the_four_dashboards_with_fixed_uids(models: dict[str, dict[str, Any]]) -> None:
    assert set(models) == UIDS
    for uid, model in models.items():
        assert model["uid"] == uid
        assert model["title"]
        assert "circuitwatch" in model["tags"]
        assert (dashboards.GENERATED_DIR / f"{uid}.json").exists()


def test_every_panel_has_description_query_datasource_and_unit(models: dict[str, dict[str, Any]]) -> None:
    for uid, model in models.items():
        visual = _visual(model)
        assert len(visual) >= 5, uid
        ids = [panel["id"] for panel in dashboards.iter_panels(model)]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        for panel in visual:
            where = f"{uid} / {panel['title']}"
            assert len(panel.get("description", "")) > 40, f"{where}: no real description"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where}: no query"
            assert all(t["expr"].strip() and t["refId"] for t in panel["targets"]), where
            if panel["type"] == "table":
                units = [prop["value"] for o in panel["fieldConfig"]["overrides"] for prop in o["properties"]
                         if prop["id"] == "unit"]  # fmt: skip
                assert len(units) == len(panel["targets"]), f"{where}: a column without unit"
            elif panel["type"] == "heatmap":
                assert panel["options"]["yAxis"]["unit"] == "s", where
            else:
                assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"


def test_overview_covers_the_issue(models: dict[str, dict[str, Any]]) -> None:
    exprs = " ".join(e for _, e in dashboards.expressions(models["circuitwatch-overview"]))
    for needle in (
        "circuitwatch:phantom_inventory_rate:ratio",
        "circuitwatch_open_circuits",
        "circuitwatch_unclosed_legs",
        "circuitwatch:leg_breach_ratio:ratio15m",
        "circuitwatch_circuit_close_seconds_bucket",
        "circuitwatch_picks_after_cancel_total",
        "circuitwatch_pickup_attempts_after_cancel_total",
        "circuitwatch_manual_closures_total",
        "ALERTS{",
    ):
        assert needle in exprs, needle
    pipeline = " ".join(e for _, e in dashboards.expressions(models["circuitwatch-pipeline"]))
    for needle in ("circuitwatch_events_total", "circuitwatch_events_rejected_total", "up{", "watermark", "last_event"):
        assert needle in pipeline, needle


def test_heatmap_and_one_quantile_panel_per_configured_leg(models: dict[str, dict[str, Any]]) -> None:
    latency = models["circuitwatch-latency"]
    assert any(panel["type"] == "heatmap" for panel in dashboards.iter_panels(latency))
    slas = {name: leg.sla for name, leg in load_config(None).legs.items()}
    assert set(slas) == {"oms", "wms", "inventory", "storefront", "store", "customer"}
    for leg, sla in slas.items():
        [panel] = [x for x in dashboards.iter_panels(latency) if x.get("title", "").startswith(f"{leg}: ")]
        assert all(f'leg="{leg}"' in t["expr"] for t in panel["targets"])
        assert _step_values(panel) == [sla], f"{leg}: the red line must be the configured SLA"


def test_thresholds_follow_the_alert_file(models: dict[str, dict[str, Any]]) -> None:
    th = load_thresholds()
    overview, store, pipeline = (models[f"circuitwatch-{n}"] for n in ("overview", "store", "pipeline"))
    high = th.alert("CircuitwatchPhantomInventoryHigh").num("ratio")
    assert _step_values(_by_title(overview, "Phantom inventory rate")) == [high]
    per_store = th.alert("CircuitwatchPhantomInventoryStore").num("ratio")
    assert _step_values(_by_title(store, "Phantom inventory rate")) == [per_store]
    assert _step_values(_by_title(overview, "Breach ratio by leg (15m)")) == [
        th.alert("CircuitwatchLegBroken").num("breach_ratio")
    ]
    stale_lag = parse_duration(th.alert("CircuitwatchWatermarkStale").dur("max_lag"))
    assert _step_values(_by_title(pipeline, "Watermark age")) == [stale_lag]
    # severity decides the colour: a paging level is red, a ticket level orange
    colours = {
        s["color"]
        for s in _by_title(overview, "Phantom inventory rate")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    }
    assert p.CRITICAL in colours
    colours = {
        s["color"] for s in _by_title(store, "Phantom inventory rate")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    }
    assert p.WARNING in colours
    assert p.CRITICAL not in colours


def test_thresholds_are_read_not_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the alert file's numbers: the panels follow."""
    th = load_thresholds()
    changed = th.model_copy(deep=True)
    extra = changed.alerts["CircuitwatchPhantomInventoryHigh"].model_extra
    assert extra is not None
    extra["ratio"] = 0.4242
    drift = changed.alerts["CircuitwatchPayloadDrift"].model_extra
    assert drift is not None
    drift["window"] = "42m"
    monkeypatch.setattr(thresholds, "_thresholds", lambda: changed)
    models = dashboards.build_all()
    assert _step_values(_by_title(models["circuitwatch-overview"], "Phantom inventory rate")) == [0.4242]
    assert _by_title(models["circuitwatch-pipeline"], "Reject ratio by source (42m)")
    assert dashboards.stale() != []  # and the committed JSON would then be reported stale


def test_recording_rules_used_by_panels_exist() -> None:
    recorded = set()
    for path in (ROOT / "alerts" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded |= {rule["record"] for rule in group["rules"] if "record" in rule}
    used = {
        name for model in dashboards.build_all().values() for _, e in dashboards.expressions(model)
        for name in RECORDED.findall(e)
    }  # fmt: skip
    assert "circuitwatch:phantom_inventory_rate:ratio" in used
    assert used <= recorded, f"not recorded by alerts/rules: {sorted(used - recorded)}"


def test_alert_dashboard_links_land_on_a_dashboard_and_its_variables(models: dict[str, dict[str, Any]]) -> None:
    rules = yaml.safe_load((ROOT / "alerts" / "rules" / "alerts.yml").read_text())
    links = [
        rule["annotations"]["dashboard_url"]
        for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    ]  # fmt: skip
    assert links, "alert rules carry dashboard_url annotations"
    for url in links:
        parsed = urlparse(url.replace("{{ ", "").replace(" }}", ""))
        uid = parsed.path.rsplit("/d/", 1)[-1].split("/")[0]
        assert uid in models, f"{url}: no dashboard {uid!r}"
        names = {v["name"] for v in models[uid]["templating"]["list"]}
        for param in parse_qs(parsed.query):
            assert param.startswith("var-"), url
            assert param[4:] in names, f"{url}: {uid} has no variable {param[4:]!r}"


def test_provisioning_points_at_the_generated_json_and_the_datasource_uid() -> None:
    prov = ROOT / "dashboards" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "circuitwatch.yml").read_text())
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["uid"] == p.DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert urlparse(source["url"]).scheme == "http"
    providers = yaml.safe_load((prov / "dashboards" / "circuitwatch.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
    # each dashboard's datasource variable defaults to the provisioned datasource
    for model in dashboards.build_all().values():
        [var] = [v for v in model["templating"]["list"] if v["type"] == "datasource"]
        assert var["current"]["value"] == p.DATASOURCE_UID


def test_cli_build_writes_and_check_detects_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "gen"
    result = runner.invoke(cli, ["dashboards", "build", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(x.stem for x in out.glob("*.json")) == sorted(UIDS)
    assert json.loads((out / "circuitwatch-store.json").read_text())["uid"] == "circuitwatch-store"
    ok = runner.invoke(cli, ["dashboards", "build", "--out", str(out), "--check"])
    assert ok.exit_code == 0, ok.output

    edited = out / "circuitwatch-overview.json"
    model = json.loads(edited.read_text())
    model["panels"][1]["title"] = "edited by hand"
    edited.write_text(json.dumps(model))
    (out / "orphan.json").write_text("{}")
    (out / "circuitwatch-latency.json").unlink()
    bad = runner.invoke(cli, ["dashboards", "build", "--out", str(out), "--check"])
    assert bad.exit_code == 1
    assert "circuitwatch-overview.json: differs" in bad.output
    assert "circuitwatch-latency.json: missing" in bad.output
    assert "orphan.json: no dashboard has this uid" in bad.output
    assert "Traceback" not in bad.output

    again = runner.invoke(cli, ["dashboards", "build", "--out", str(out)])
    assert again.exit_code == 0
    assert json.loads(edited.read_text())["panels"][1]["title"] != "edited by hand"


def test_runbooks_point_at_existing_dashboards(models: dict[str, dict[str, Any]]) -> None:
    """Every runbook (docs/runbooks/*.md) names its dashboard (`**Dashboard:** `uid``) and any
    /d/<uid>[?viewPanel=<id>] link in it resolves to a dashboard and panel that exist."""
    runbooks = sorted((ROOT / "docs" / "runbooks").glob("*.md"))
    assert runbooks, "the alert runbooks exist"
    for path in runbooks:
        text = path.read_text()
        named = re.findall(r"\*\*Dashboard:\*\* `([A-Za-z0-9_-]+)`", text)
        assert named, f"{path.name}: names no dashboard"
        assert set(named) <= set(models), f"{path.name}: unknown dashboard {named}"
        for uid, query in re.findall(r"/d/([A-Za-z0-9_-]+)[^\s)\"'?]*(\?[^\s)\"']*)?", text):
            assert uid in models, f"{path.name}: links to unknown dashboard {uid!r}"
            panel = parse_qs(query.lstrip("?")).get("viewPanel")
            if panel:
                ids = {str(x["id"]) for x in dashboards.iter_panels(models[uid])}
                assert panel[0] in ids, f"{path.name}: {uid} has no panel {panel[0]}"
