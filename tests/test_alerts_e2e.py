"""End to end: a WMS handoff outage pages through the real Prometheus and Alertmanager.

The tracker runs a simulated day (event times shifted to now) while serving
/metrics; Prometheus scrapes it every second with the generated rules (only
`for` and intervals shortened, through the same templating), and Alertmanager
delivers to a local webhook and a local stand-in for PagerDuty's Events API.
Feeding is paced by scrapes (each chunk waits until Prometheus has seen the
previous one), so rate()/increase() windows see real increases over time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from circuitwatch.alerts.build import ALERTING_FILE, RECORDING_FILE, Overrides, load_thresholds, render, write
from circuitwatch.events import Event
from circuitwatch.metrics.prometheus import MetricsServer, build_registry
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker
from tests.conftest import need_binary
from tests.harness.prometheus import Alertmanager, Prometheus, WebhookReceiver, poll

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

FOR = "5s"
CHUNKS = 16
ROUTING_KEY = "test-routing-key-not-a-secret"


@dataclass
class Stack:
    prom: Prometheus
    am: Alertmanager
    hook: WebhookReceiver
    tracker: CircuitTracker
    rules: list[Path]


def _shifted(events: list[Event]) -> list[Event]:
    """The simulated day starting now, so the watermark is fresh whenever the test runs."""
    shift = datetime.now(UTC) - events[0].occurred_at
    return [msgspec.structs.replace(ev, occurred_at=ev.occurred_at + shift) for ev in events]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager")
    key_file = tmp_path / "pagerduty-routing-key"
    key_file.write_text(ROUTING_KEY + "\n")
    tracker = CircuitTracker()
    registry = build_registry(tracker.stats, tracker.rules.legs)
    with MetricsServer(registry, port=0) as metrics, WebhookReceiver() as hook:
        overrides = Overrides(
            for_=FOR,
            evaluation_interval="1s",
            webhook_url=hook.url + "/webhook",
            pagerduty_url=hook.url + "/pagerduty",
            pagerduty_routing_key_file=str(key_file),
            group_wait="1s",
            group_interval="1s",
            repeat_interval="1h",
        )
        files = write(render(load_thresholds(), overrides), tmp_path)
        rules = [tmp_path / RECORDING_FILE, tmp_path / ALERTING_FILE]
        am_config = next(p for p in files if p.name == "alertmanager.yml")
        with Alertmanager(am_config) as am, Prometheus([metrics.url], alertmanager_urls=[am.url]) as prom:
            yield Stack(prom, am, hook, tracker, rules)


def feed(stack: Stack, events: list[Event]) -> float:
    """Feed in chunks, each after Prometheus has scraped the previous one; returns the wall time at the end."""
    size = -(-len(events) // CHUNKS)
    fed = 0

    def scraped() -> bool:
        value = stack.prom.value("sum(circuitwatch_events_total) + sum(circuitwatch_events_duplicate_total)")
        return value is not None and value >= fed

    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        for ev in chunk:
            stack.tracker.on_event(ev)
        fed += len(chunk)
        if start == 0:  # rules only once the target is scraped: absent() must not see Prometheus' first seconds
            stack.prom.wait_scraped(timeout=60)
            stack.prom.reload(rule_files=stack.rules)
        poll(scraped, timeout=60, what=f"a scrape with {fed} events")
    return time.time()


def _received(stack: Stack, path: str) -> list[dict[str, Any]]:
    return [body for p, body in stack.hook.snapshot() if p == path and isinstance(body, dict)]


def _webhook_alerts(stack: Stack) -> list[dict[str, Any]]:
    return [a for body in _received(stack, "/webhook") for a in body.get("alerts", [])]


def test_wms_outage_pages_leg_broken_through_alertmanager(stack: Stack) -> None:
    sim = simulate(SimConfig(orders=1500, seed=31, failure_rate=0.01, leg_failure={"wms": 0.9}))
    feed(stack, _shifted(sim.events))

    def wms_broken() -> dict[str, Any] | None:
        for a in _webhook_alerts(stack):
            labels = a["labels"]
            if labels.get("alertname") == "CircuitwatchLegBroken" and labels.get("leg") == "wms":
                return a
        return None

    alert = poll(wms_broken, timeout=90, what="CircuitwatchLegBroken{leg=wms} at the webhook")
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "page"
    assert alert["labels"]["area"] == "circuit"
    notes = alert["annotations"]
    assert notes["runbook_url"].endswith("/docs/runbooks/CircuitwatchLegBroken.md")
    assert "/d/circuitwatch-overview?var-leg=wms" in notes["dashboard_url"]
    assert "wms" in notes["summary"]
    assert "%" in notes["summary"]
    # the description names the numbers and the stores (the simulation's stores are S001..S012)
    assert " of " in notes["description"]
    assert "S0" in notes["description"]
    ratio = stack.prom.value('circuitwatch:leg_breach_ratio:ratio15m{leg="wms"}')
    assert ratio is not None
    assert ratio > 0.25

    # severity=page also reached "PagerDuty" (a local stand-in) with the routing key read from the file
    page = poll(
        lambda: next(
            (b for b in _received(stack, "/pagerduty") if "handoff to wms is broken" in b["payload"]["summary"]),
            None,
        ),
        timeout=60,
        what="the PagerDuty event for the broken wms leg",
    )
    assert page["routing_key"] == ROUTING_KEY
    assert page["event_action"] == "trigger"
    assert any(link["href"].endswith("CircuitwatchLegBroken.md") for link in page.get("links", []))

    # only the leg that was broken pages as broken
    broken_legs = {
        a["labels"]["leg"] for a in _webhook_alerts(stack) if a["labels"]["alertname"] == "CircuitwatchLegBroken"
    }
    assert broken_legs == {"wms"}


def test_healthy_stream_pages_nothing(stack: Stack) -> None:
    sim = simulate(SimConfig(orders=800, seed=5, failure_rate=0.01))
    done = feed(stack, _shifted(sim.events))

    # Let every rule evaluate for longer than `for` after the last event, plus Alertmanager's group_wait.
    def evaluated_after() -> bool:
        groups = stack.prom.rules()
        stamps = [datetime.fromisoformat(g["lastEvaluation"]).timestamp() for g in groups]
        return len(groups) == 2 and min(stamps) > done + 8

    poll(evaluated_after, timeout=60, what="rule evaluations after the stream")
    assert stack.prom.value('sum(circuitwatch_leg_breaches_total{leg="wms"})') is not None  # the data is there
    active = [(a["labels"]["alertname"], a["state"]) for a in stack.prom.alerts()]
    assert active == []
    assert stack.am.alerts() == []
    assert stack.hook.snapshot() == []
