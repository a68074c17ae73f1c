"""Alert rules and Alertmanager config: generated from one file, checked by the real tools.

promtool / amtool tests need the binaries: skipped on a laptop without them,
a failure in CI (tests.conftest.need_binary).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from circuitwatch.alerts.build import (
    ALERTING_FILE,
    ALERTMANAGER_FILE,
    DASHBOARDS,
    HERE,
    RECORDING_FILE,
    Overrides,
    alerting_rules,
    load_thresholds,
    recording_rules,
    render,
    stale,
)
from circuitwatch.cli import cli
from circuitwatch.config import ConfigError
from circuitwatch.metrics.prometheus import build_registry, exposition
from circuitwatch.streams.replay import run_events
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker
from tests.conftest import need_binary

ROOT = HERE.parent
RUNBOOKS = ROOT / "docs" / "runbooks"
RULE_FILES = [HERE / RECORDING_FILE, HERE / ALERTING_FILE]


def _rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _run(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(a) for a in args], input=stdin, capture_output=True, timeout=120, check=False)


def test_committed_files_are_what_the_generator_builds() -> None:
    assert stale(render()) == [], "run `circuitwatch alerts build` and commit alerts/"


def test_promtool_check_rules() -> None:
    promtool = need_binary("promtool")
    result = _run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_promtool_unit_tests() -> None:
    promtool = need_binary("promtool")
    tests = sorted((HERE / "tests").glob("*.yml"))
    assert len(tests) >= 2
    result = _run(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_every_rule_has_a_promtool_test_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    exprs: list[str] = []
    for path in (HERE / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
            exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
    alerts = {r["alert"] for r in _rules(HERE / ALERTING_FILE)}
    assert alerts - fires == set(), "alerts without a test where they fire"
    assert alerts - quiet == set(), "alerts without a test where they stay quiet"
    records = {r["record"] for r in _rules(HERE / RECORDING_FILE)}
    assert {r for r in records if not any(r in e for e in exprs)} == set(), "recording rules without a test"


def test_every_alert_is_actionable() -> None:
    th = load_thresholds()
    for rule in _rules(HERE / ALERTING_FILE):
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        notes = rule["annotations"]
        assert set(notes) >= {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert notes["runbook_url"] == f"{th.links.runbook_base_url}/{name}.md"
        runbook = RUNBOOKS / f"{name}.md"
        assert runbook.is_file(), f"no runbook for {name}"
        text = runbook.read_text()
        for section in ("## What it means", "## Confirm", "## Usual causes", "## Who owns the fix", "## Close"):
            assert section in text, f"{runbook.name}: missing {section!r}"
        assert notes["dashboard_url"].startswith(th.links.grafana_url + "/d/")
        assert notes["dashboard_url"].split("/d/")[1].split("?")[0] in DASHBOARDS
        assert rule["for"] == th.alerts[name].for_


def test_thresholds_drive_the_expressions(tmp_path: Path) -> None:
    text = (HERE / "thresholds.yaml").read_text().replace("breach_ratio: 0.25", "breach_ratio: 0.4")
    (tmp_path / "t.yaml").write_text(text)
    rules = {r["alert"]: r for r in alerting_rules(load_thresholds(tmp_path / "t.yaml"))["groups"][0]["rules"]}
    assert rules["CircuitwatchLegBroken"]["expr"].startswith("circuitwatch:leg_breach_ratio:ratio15m > 0.4 ")
    assert "threshold 40%" in rules["CircuitwatchLegBroken"]["annotations"]["description"]


def test_test_overrides_change_only_for_and_intervals() -> None:
    th = load_thresholds()
    ov = Overrides(for_="5s", evaluation_interval="1s")
    for build in (alerting_rules, recording_rules):
        prod, fast = build(th)["groups"], build(th, ov)["groups"]
        assert [g["interval"] for g in fast] == ["1s"]
        for p, f in zip(prod[0]["rules"], fast[0]["rules"], strict=True):
            if "for" in f:
                assert f["for"] == "5s"
            assert {k: v for k, v in p.items() if k != "for"} == {k: v for k, v in f.items() if k != "for"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("severity: page", "severity: urgent"), "severity"),
        (("for: 10m", "for: ten minutes"), "not a Prometheus duration"),
        (("    min_legs_due: 10        # legs that reached their deadline in 15m, at least\n", ""), "min_legs_due"),
        (("grafana_url:", "grafana:"), "grafana"),
    ],
)
def test_bad_thresholds_give_one_line_errors(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = (HERE / "thresholds.yaml").read_text()
    assert edit[0] in text
    (tmp_path / "t.yaml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=message) as info:
        render(load_thresholds(tmp_path / "t.yaml"))
    assert "\n" not in str(info.value)


def test_alertmanager_config_routes_and_keeps_secrets_out() -> None:
    config = yaml.safe_load((HERE / ALERTMANAGER_FILE).read_text())
    route = config["route"]
    assert route["group_by"] == ["alertname", "leg"]
    page = route["routes"][0]
    assert page == {"receiver": "pagerduty", "matchers": ['severity="page"'], "continue": True}
    assert route["routes"][-1]["receiver"] == "webhook"
    (pagerduty,) = next(r for r in config["receivers"] if r["name"] == "pagerduty")["pagerduty_configs"]
    assert "routing_key" not in pagerduty
    assert "service_key" not in pagerduty
    assert pagerduty["routing_key_file"] == load_thresholds().alertmanager.pagerduty_routing_key_file
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['area="pipeline"']


def test_amtool_check_config(tmp_path: Path) -> None:
    amtool = need_binary("amtool")
    result = _run(amtool, "check-config", HERE / ALERTMANAGER_FILE)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    # the end-to-end test's variant, rendered through the same templating
    files = render(
        load_thresholds(), Overrides(webhook_url="http://127.0.0.1:1/w", pagerduty_url="http://127.0.0.1:1/p")
    )
    (tmp_path / "am.yml").write_text(files[ALERTMANAGER_FILE])
    result = _run(amtool, "check-config", tmp_path / "am.yml")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_promtool_check_metrics_on_the_core_exposition() -> None:
    promtool = need_binary("promtool")
    tracker = CircuitTracker()
    run_events(tracker, simulate(SimConfig(orders=400, seed=3, failure_rate=0.2)).events)
    text = exposition(build_registry(tracker.stats, tracker.rules.legs))
    assert b"circuitwatch_leg_breaches_total{" in text
    result = _run(promtool, "check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_cli_build_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["alerts", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name, text in render().items():
        assert (tmp_path / name).read_text() == text
    assert runner.invoke(cli, ["alerts", "build", "--check", "--out", str(tmp_path)]).exit_code == 0
    (tmp_path / ALERTING_FILE).write_text("# edited by hand\n")
    result = runner.invoke(cli, ["alerts", "build", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "rules/alerts.yml" in result.output
    missing = str(tmp_path / "nope.yaml")
    result = runner.invoke(cli, ["alerts", "build", "--thresholds", missing, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:")
