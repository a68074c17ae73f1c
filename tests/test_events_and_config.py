"""Bad input is precise: file, line, field, reason; config errors are one line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from circuitwatch.config import ConfigError, load_config, parse_duration
from circuitwatch.events import Rejected
from circuitwatch.streams.reader import read_events

GOOD = (
    '{"event_id": "wms-1", "order_id": "BO-1", "source": "wms", "type": "pick_released",'
    ' "occurred_at": "2026-11-27T14:03:11+01:00", "store_id": "S017",'
    ' "lines": [{"line_id": "1", "sku": "SKU-4411", "qty": 2}], "status": null, "attrs": {}}'
)

BAD = [
    (GOOD.replace("+01:00", ""), "occurred_at", "naive_timestamp", "wms"),
    (GOOD.replace('"wms"', '"wmx"'), "source", "unknown_value", "unknown"),
    (GOOD.replace('"pick_released"', '"teleported"'), "type", "unknown_value", "wms"),
    (GOOD.replace('"qty": 2', '"qty": "2"'), "lines[0].qty", "wrong_type", "wms"),
    (GOOD.replace('"qty": 2', '"qty": -2'), "lines[0].qty", "invalid_value", "wms"),
    (GOOD.replace('"order_id": "BO-1", ', ""), "order_id", "missing_field", "wms"),
    (GOOD.replace('"sku": "SKU-4411", ', ""), "lines[0].sku", "missing_field", "wms"),
    (GOOD.replace("2026-11-27T", "2026-13-27T"), "occurred_at", "bad_timestamp", "wms"),
    (GOOD[:40], "-", "malformed_json", "unknown"),
]


@pytest.mark.parametrize(("line", "field", "reason", "source"), BAD, ids=[b[2] + ":" + b[1] for b in BAD])
def test_a_bad_line_is_rejected_with_file_line_field_and_reason(
    tmp_path: Path, line: str, field: str, reason: str, source: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(f"{GOOD}\n{line}\n\n{GOOD.replace('wms-1', 'wms-2')}\n")
    rejects: list[Rejected] = []
    events = list(read_events([str(path)], rejects.append))
    assert [e.event_id for e in events] == ["wms-1", "wms-2"]
    (r,) = rejects
    assert (r.file, r.line, r.field, r.reason, r.source) == (str(path), 2, field, reason, source)
    assert r.describe().startswith(f"{path}:2: {field}: ")
    assert r.raw == line


def test_gzip_input(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(GOOD + "\n")
    assert [e.order_id for e in read_events([str(path)], lambda r: None)] == ["BO-1"]


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("2m") == 120
    assert parse_duration("1.5h") == 5400
    assert parse_duration(30) == 30
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("legs: {oms: {sla: 2m, closed_by: [{source: omz}]}}", "legs.oms.closed_by.0: Value error, unknown source"),
        ("legs: {oms: {sla: fast, closed_by: [{type: cancelled}]}}", "legs.oms.sla"),
        ("legs: {oms: {sla: 2m, closed_by: []}}", "legs.oms.closed_by"),
        ("legs: {OMS: {sla: 2m, closed_by: [{type: cancelled}]}}", "lower_snake_case"),
        ("legs: [oops", "not valid YAML"),
        ("allowed_lateness: 2m\ntypo: 1", "typo: Extra inputs are not permitted"),
        ("legs: {}", "legs: Dictionary should have at least 1 item"),
    ],
)
def test_config_errors_are_one_line_and_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "circuit.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_the_shipped_default_is_the_contract_table() -> None:
    cfg = load_config(None)
    assert {name: leg.sla for name, leg in cfg.legs.items()} == {
        "oms": 120,
        "wms": 300,
        "inventory": 300,
        "storefront": 120,
        "store": 600,
        "customer": 900,
    }
    assert cfg.allowed_lateness == 120


def test_a_config_without_legs_keeps_the_contract_legs(tmp_path: Path) -> None:
    path = tmp_path / "circuit.yaml"
    path.write_text("allowed_lateness: 5m\n")
    cfg = load_config(path)
    assert cfg.allowed_lateness == 300
    assert list(cfg.legs) == list(load_config(None).legs)


def test_the_shipped_example_configs_load() -> None:
    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "examples").glob("circuit*.yaml")):
        assert load_config(path).legs, path
