"""Every query of every panel returns data from the real Prometheus.

The tracker replays a simulated day with injected handoff failures (and some
malformed input lines, through the real reader and dead letter) while serving
/metrics; the real `prometheus` binary scrapes it every second and evaluates the
alert rules' generated recording and alerting rules (evaluation shortened to 1s
through the alert builder's own Overrides). Then each panel's PromQL, with the
Grafana variables substituted the way Grafana would (template variables resolved
from Prometheus like Grafana's label_values(), every value tried), is run through
Prometheus' HTTP API as the panel runs it (instant or range) and must parse and
return at least one series.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec
import pytest

import circuitwatch.dashboards as dashboards
from circuitwatch.alerts.build import ALERTING_FILE, RECORDING_FILE, Overrides, load_thresholds, render, write
from circuitwatch.events import Event, encode
from circuitwatch.metrics.prometheus import MetricsServer, build_registry
from circuitwatch.streams.dead_letter import DeadLetter
from circuitwatch.streams.reader import read_lines
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker
from tests.conftest import need_binary
from tests.harness.prometheus import Prometheus, PromQLError, poll

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

SCRAPE = 1.0  # seconds, the harness' scrape interval
CHUNKS = 10
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(?P<label>[a-zA-Z_]\w*)\)$")
RECORDED = re.compile(r"\bcircuitwatch:[a-z0-9_]+:[a-z0-9_]+\b")


@dataclass
class Replayed:
    prom: Prometheus
    started: float
    rejected: int


def _lines(events: list[Event]) -> list[bytes]:
    """The simulated day shifted to start now, as JSONL, with every 97th line malformed in one of three ways."""
    shift = datetime.now(UTC) - events[0].occurred_at
    lines = [encode(msgspec.structs.replace(ev, occurred_at=ev.occurred_at + shift)) for ev in events]
    for i in range(50, len(lines), 97):
        kind = (i // 97) % 3
        if kind == 0:
            lines[i] = lines[i].replace(b'"order_id"', b'"orderId"')  # payload drift: a renamed field
        elif kind == 1:
            lines[i] = re.sub(rb'("occurred_at":"[^"]+?)(Z|[+-]\d\d:\d\d)"', rb'\1"', lines[i])  # naive time
        else:
            lines[i] = lines[i][: len(lines[i]) // 2]  # truncated JSON
    return lines


def _scraped(prom: Prometheus, expr: str, fed: int) -> bool:
    return (prom.value(expr) or 0) >= fed


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    need_binary("prometheus")
    tmp = tmp_path_factory.mktemp("dashboards-queries")
    files = write(render(load_thresholds(), Overrides(evaluation_interval="1s")), tmp)
    rules = [tmp / RECORDING_FILE, tmp / ALERTING_FILE]
    assert all(path in files for path in rules)

    sim = simulate(SimConfig(orders=600, seed=11, failure_rate=0.2))
    lines = _lines(sim.events)
    tracker = CircuitTracker()
    dead = DeadLetter(tmp / "dead-letter.jsonl", tracker.stats)
    registry = build_registry(tracker.stats, tracker.rules.legs)
    with MetricsServer(registry, port=0) as metrics, Prometheus([metrics.url], rule_files=rules) as prom:
        started = time.time()
        prom.wait_scraped(timeout=60)
        size = -(-len(lines) // CHUNKS)
        fed = 0
        seen = "sum(circuitwatch_events_total) + sum(circuitwatch_events_duplicate_total)" \
               " + sum(circuitwatch_events_rejected_total)"  # fmt: skip
        for start in range(0, len(lines), size):
            chunk = lines[start : start + size]
            for ev in read_lines(chunk, "simulated.jsonl", dead):
                tracker.on_event(ev)
            fed += len(chunk)
            poll(partial(_scraped, prom, seen, fed), timeout=60, what=f"a scrape with {fed} inputs")
        dead.close()
        assert dead.count > 0
        yield Replayed(prom, started, dead.count)


def _variables(model: dict[str, Any], prom: Prometheus) -> dict[str, list[str]]:
    """Every value each query variable offers, resolved as Grafana's label_values() does (plus All)."""
    out: dict[str, list[str]] = {}
    for var in model["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = LABEL_VALUES.match(var["query"])
        assert m, f"{model['uid']}: variable {var['name']}: unsupported query {var['query']!r}"
        series = prom.query(f"count by ({m['label']}) ({m['metric']})")
        values = sorted({s["metric"][m["label"]] for s in series if m["label"] in s["metric"]})
        assert values, f"{model['uid']}: variable ${var['name']} offers no value ({var['query']})"
        if var.get("includeAll"):
            values.append(var.get("allValue") or ".*")
        out[var["name"]] = values
    return out


def _substitutions(expr: str, variables: dict[str, list[str]], range_s: int) -> Iterator[str]:
    fixed = {
        "__rate_interval": f"{int(4 * SCRAPE)}s",  # Grafana: max(4 x scrape interval, interval + scrape interval)
        "__interval": f"{int(SCRAPE)}s",
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
    }
    used = [name for name in variables if re.search(rf"\$({name}\b|\{{{name}\}})", expr)]
    for combo in itertools.product(*(variables[name] for name in used)):
        text = expr
        for name, value in [*fixed.items(), *zip(used, combo, strict=True)]:
            pattern = rf"\$({re.escape(name)}\b|\{{{re.escape(name)}\}})"
            text = re.sub(pattern, value.replace("\\", "\\\\"), text)
        assert "$" not in text, f"unsubstituted variable in {text!r}"
        yield text


def _queries() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (uid, panel["title"], target)
        for uid, model in dashboards.build_all().items()
        for panel in dashboards.iter_panels(model)
        for target in panel.get("targets") or []
    ]


def test_recording_rules_used_by_the_panels_produce_series(replayed: Replayed) -> None:
    """The panels' `or ... 0` fallbacks must not hide a rule that never evaluates."""
    names = sorted({n for _, _, t in _queries() for n in RECORDED.findall(t["expr"])})
    assert "circuitwatch:phantom_inventory_rate:ratio" in names
    for name in names:
        replayed.prom.wait_for(name, timeout=60)
    # the injected failures show up as breaches and the malformed lines as rejects
    wms_ratio = replayed.prom.wait_for('circuitwatch:leg_breach_ratio:ratio15m{leg="wms"}', timeout=30)
    assert float(wms_ratio[0]["value"][1]) > 0
    rejected = replayed.prom.value("sum(circuitwatch_events_rejected_total)")
    assert rejected == replayed.rejected


def test_every_panel_query_returns_series(replayed: Replayed) -> None:
    prom = replayed.prom
    models = dashboards.build_all()
    variables = {uid: _variables(model, prom) for uid, model in models.items()}
    assert set(variables["circuitwatch-store"]["store"]) >= {"S001", "S012"}
    # recording rules first, so the substitution loop below never races their first evaluation
    for name in sorted({n for _, _, t in _queries() for n in RECORDED.findall(t["expr"])}):
        prom.wait_for(name, timeout=60)

    now = time.time()
    range_s = math.ceil(now - replayed.started) + 1
    empty: list[str] = []
    checked = 0
    for uid, title, target in _queries():
        for expr in _substitutions(target["expr"], variables[uid], range_s):
            if target.get("instant"):
                result = prom.query(expr)  # raises PromQLError if it does not parse
            else:
                result = prom.query_range(expr, now - 20, now, step=f"{int(SCRAPE)}s")
            checked += 1
            if not result:
                empty.append(f"{uid} / {title}: {expr}")
    assert checked > 100  # every variable value of every panel was tried
    assert empty == [], "panels that would show 'No data':\n" + "\n".join(empty)


def test_a_query_that_does_not_parse_is_reported(replayed: Replayed) -> None:
    """The check above would catch a broken expression (PromQLError), not silently pass it."""
    with pytest.raises(PromQLError):
        replayed.prom.query("sum by (leg) (rate(circuitwatch_leg_breaches_total[$__rate_interval]))")
