"""Declarative mappings: shipped ones on their example captures, drift, a new system from a file alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from circuitwatch.config import ConfigError
from circuitwatch.events import Event
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.dead_letter import DeadLetter
from circuitwatch.streams.sources.common import iter_payloads
from circuitwatch.streams.sources.mapping import available, find_mapping, load_mapping
from circuitwatch.streams.tracker import CircuitTracker

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "examples" / "captures"
SHIPPED = {
    "generic-oms": "generic-oms.jsonl",
    "generic-wms": "generic-wms.json",
    "store-pickup-app": "store-pickup-app.jsonl",
}


def map_file(name: str, path: Path) -> tuple[list[Event], list[str], int]:
    mapping = find_mapping(name)
    events, rejects, ignored = [], [], 0
    for line, payload in iter_payloads(path.read_bytes(), path.name):
        result = mapping.map_payload(payload, file=path.name, line=line)
        events += result.events
        rejects += [r.describe() for r in result.rejected]
        ignored += bool(result.ignored)
    return events, rejects, ignored


def test_shipped_mappings_are_found() -> None:
    assert set(SHIPPED) <= set(available())


def test_shipped_examples_make_one_closed_circuit() -> None:
    events: list[Event] = []
    for name, capture in SHIPPED.items():
        got, rejects, _ = map_file(name, CAPTURES / capture)
        assert rejects == []
        events += got
    assert {ev.source for ev in events} == {"oms", "wms", "store"}
    by_id = {ev.event_id: ev for ev in events}
    assert by_id["T-88123:RELEASED"].occurred_at.isoformat() == "2026-11-27T14:03:00+00:00"  # epoch ms
    assert by_id["T-88123:RELEASED"].store_id == "S001"  # from the batch envelope
    cleared = by_id["evt_7f3a03"]
    assert cleared.occurred_at.utcoffset() is not None
    assert cleared.occurred_at.timestamp() == 1795788280.0  # 08:04:40 America/Chicago = 14:04:40Z
    tracker = CircuitTracker()
    final = {}
    for ev in sorted(events, key=lambda e: e.occurred_at):
        for o in tracker.on_event(ev):
            final[o.order_id] = o
    for o in tracker.flush():
        final[o.order_id] = o
    record = final["BO-10042"]
    assert {leg: lo.outcome for leg, lo in record.legs.items()} == {
        "oms": "closed", "wms": "closed", "inventory": "closed", "store": "closed", "customer": "closed"
    }  # fmt: skip
    assert record.state == "closed"


def _oms(**over: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "eventId": "oms-9",
        "eventType": "ORDER_CANCELLED",
        "eventTime": "2026-11-27T14:01:00Z",
        "order": {"orderNumber": "BO-1", "storeId": "S002", "status": "CANCELLED",
                  "lines": [{"lineNo": 1, "sku": "A", "quantity": 2}]},
    }  # fmt: skip
    payload.update(over)
    return payload


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (_oms(order={"orderNo": "BO-1", "status": "CANCELLED"}), "order.orderNumber", "renamed_field"),
        (_oms(order={"order_number": "BO-1", "status": "CANCELLED"}), "order.orderNumber", "renamed_field"),
        (_oms(order={"status": "CANCELLED"}), "order.orderNumber", "missing_field"),
        (_oms(eventType="ORDER_VOIDED"), "eventType", "unknown_value"),
        (_oms(order={"orderNumber": "BO-1", "status": "CANCELED_BY_STORE"}), "order.status", "unknown_value"),
        (_oms(eventTime="2026-11-27T14:01:00"), "eventTime", "naive_timestamp"),
        (_oms(eventTime=1795788060), "eventTime", "wrong_type"),
        (_oms(order={"orderNumber": {"id": 1}, "status": "CANCELLED"}), "order.orderNumber", "wrong_type"),
        (_oms(order={"orderNumber": "BO-1", "lines": [{"lineNo": 1, "sku": "A", "quantity": "2"}]}),
         "order.lines[0].quantity", "wrong_type"),
        (_oms(order={"orderNumber": "BO-1", "lines": [{"lineNo": 1, "sku": "A", "qty": 2}]}),
         "order.lines[0].quantity", "renamed_field"),
        (_oms(order=["BO-1"]), "order.orderNumber", "wrong_type"),
    ],
)  # fmt: skip
def test_drift_is_rejected_with_field_and_reason_and_counted(
    tmp_path: Path, payload: dict[str, object], field: str, reason: str
) -> None:
    stats = TrackerStats()
    dead = DeadLetter(tmp_path / "dead.jsonl", stats)
    result = find_mapping("generic-oms").map_payload(json.dumps(payload), file="capture.jsonl", line=7)
    for r in result.rejected:
        dead(r)
    dead.close()
    assert result.events == []
    [rej] = result.rejected
    assert (rej.field, rej.reason, rej.file, rej.line, rej.source) == (field, reason, "capture.jsonl", 7, "oms")
    assert stats.rejected[("oms", reason)] == 1
    kept = json.loads((tmp_path / "dead.jsonl").read_text())
    assert (kept["field"], kept["reason"]) == (field, reason)
    assert json.loads(kept["raw"]) == payload


def test_a_mapping_file_alone_brings_in_a_new_system(tmp_path: Path) -> None:
    spec = tmp_path / "acme-notify.yaml"
    spec.write_text(
        "name: acme-notify\nsource: notify\n"
        "event_id: msg.uuid\norder_id: msg.ref\n"
        "occurred_at: {path: msg.sent, format: epoch_s}\n"
        "type:\n  path: msg.template\n  values:\n"
        "    ORDER_CANCELLED_V2: {type: customer_notified, attrs: {kind: cancellation}}\n"
    )
    mapping = load_mapping(spec)
    payload = {"msg": {"uuid": "m-1", "ref": "BO-7", "sent": 1795788100, "template": "ORDER_CANCELLED_V2"}}
    [ev] = mapping.map_payload(json.dumps(payload), file="x").events
    assert (ev.source, ev.type, ev.attrs["kind"], ev.order_id) == (
        "notify",
        "customer_notified",
        "cancellation",
        "BO-7",
    )
    # and by name from a retailer's own directory
    assert find_mapping("acme-notify", [tmp_path]).name == "acme-notify"


def test_a_broken_mapping_file_is_a_one_line_error(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nsource: erp\nevent_id: id\norder_id: o\noccurred_at: t\ntype: {path: e, values: {}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: source:"):
        load_mapping(spec)
    with pytest.raises(ConfigError, match="no mapping named 'nope'"):
        find_mapping("nope")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circuitwatch", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_cli_map_prints_events_and_every_reject(tmp_path: Path) -> None:
    ok = _cli("map", "--source", "generic-wms", str(CAPTURES / "generic-wms.json"))
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(x)["type"] for x in ok.stdout.splitlines()] == ["pick_assigned", "pick_released"]
    capture = tmp_path / "mixed.jsonl"
    capture.write_text(json.dumps(_oms()) + "\n" + json.dumps(_oms(eventType="ORDER_VOIDED")) + "\n")
    bad = _cli("map", "--source", "generic-oms", str(capture), "--dead-letter", str(tmp_path / "dl.jsonl"))
    assert bad.returncode == 1
    assert len(bad.stdout.splitlines()) == 1
    assert f"{capture}:2: eventType: unknown value 'ORDER_VOIDED'" in bad.stderr
    assert "1 events, 1 rejected, 0 ignored" in bad.stderr
    assert json.loads((tmp_path / "dl.jsonl").read_text())["reason"] == "unknown_value"
    shop = _cli("map", "--source", "shopify", str(ROOT / "tests/fixtures/shopify/orders__cancelled.json"))
    assert shop.returncode == 0, shop.stderr
    assert json.loads(shop.stdout)["order_id"] == "820982911946154508"
    missing = _cli("map", "--source", "nope", str(capture))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no mapping named 'nope'")
