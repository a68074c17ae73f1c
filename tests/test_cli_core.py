"""The command line as a user meets it: pipes, files, bad input, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from circuitwatch.cli import COMMANDS

CLI = [sys.executable, "-m", "circuitwatch"]


def sh(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], cwd=cwd, input=stdin, capture_output=True, timeout=300, check=False)


def test_simulate_piped_into_replay_matches_the_ground_truth(tmp_path: Path) -> None:
    sim = sh("simulate", "--orders", "3000", "--seed", "7", "--truth", "truth.jsonl", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    rep = sh("replay", "-", "--outcomes", "o.jsonl", "--metrics-out", "m.prom", cwd=tmp_path, stdin=sim.stdout)
    assert rep.returncode == 0, rep.stderr
    truth = {t["order_id"]: t for t in map(json.loads, (tmp_path / "truth.jsonl").read_text().splitlines())}
    outcomes = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(outcomes) == len(truth)
    for rec in outcomes:
        t = truth[rec["order_id"]]
        assert {leg: v["outcome"] for leg, v in rec["legs"].items()} == t["legs"]
        assert (rec["state"], rec["phantom_units"]) == (t["state"], t["phantom_units"])
    metrics = (tmp_path / "m.prom").read_text()
    assert "circuitwatch_cancellations_total{origin=" in metrics
    assert "BO-1" not in metrics  # never an order id as a label


def test_a_malformed_line_mid_file_is_reported_and_the_rest_processed(tmp_path: Path) -> None:
    sim = sh("simulate", "--orders", "200", "--seed", "1", cwd=tmp_path)
    lines = sim.stdout.decode().splitlines()
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(lines) + "\n")
    bad = json.loads(lines[100])
    bad["occurred_at"] = bad["occurred_at"].rstrip("Z")  # a naive timestamp
    lines[100] = json.dumps(bad)
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text("\n".join(lines) + "\n")

    ok = sh("replay", str(clean), "--outcomes", "clean.out", cwd=tmp_path)
    rep = sh("replay", str(dirty), "--outcomes", "dirty.out", "--dead-letter", "dlq.jsonl", cwd=tmp_path)
    assert ok.returncode == 0
    assert rep.returncode == 1
    err = rep.stderr.decode()
    assert f"{dirty}:101: occurred_at: Expected `datetime` with a timezone component" in err
    assert "Traceback" not in err
    (dead,) = [json.loads(x) for x in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert (dead["line"], dead["field"], dead["reason"]) == (101, "occurred_at", "naive_timestamp")
    assert json.loads(dead["raw"]) == bad
    # everything else was processed: only circuits touching the bad event may differ
    clean_out = {json.loads(x)["order_id"] for x in (tmp_path / "clean.out").read_text().splitlines()}
    dirty_out = {json.loads(x)["order_id"] for x in (tmp_path / "dirty.out").read_text().splitlines()}
    assert len(clean_out ^ dirty_out) <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "nope.jsonl"], "nope.jsonl"),
        (["replay", "-", "--config", "bad.yaml"], "bad.yaml: legs.oms.sla"),
        (["simulate", "--leg-failure", "wms"], "expected LEG=RATE"),
        (["simulate", "--leg-failure", "wmz=0.5"], "unknown leg 'wmz'"),
    ],
)
def test_bad_input_is_one_line_with_non_zero_exit(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.yaml").write_text("legs: {oms: {sla: never, closed_by: [{type: cancelled}]}}")
    res = sh(*args, cwd=tmp_path, stdin=b"")
    err = res.stderr.decode()
    assert res.returncode != 0
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    res = sh(command, "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert b"Usage:" in res.stdout


def test_demo_writes_outcomes_metrics_and_a_report_that_agree(tmp_path: Path) -> None:
    res = sh("demo", "--orders", "800", "--port", "0", "--out", "demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "demo"
    outcomes = [json.loads(x) for x in (out / "outcomes.jsonl").read_text().splitlines()]
    truth = {t["order_id"]: t for t in map(json.loads, (out / "truth.jsonl").read_text().splitlines())}
    assert {o["order_id"]: o["state"] for o in outcomes} == {k: t["state"] for k, t in truth.items()}
    broken = sum(o["state"] == "broken" for o in outcomes)
    assert f"{broken} broken" in (out / "report.md").read_text()
    assert "circuitwatch_leg_breaches_total" in (out / "metrics.prom").read_text()
    assert "http://127.0.0.1:" in res.stderr.decode()
    # this week's KPI export agrees with the outcome records
    import pandas as pd

    (xlsx,) = (out / "kpi").glob("kpi-*.xlsx")
    summary = pd.read_excel(xlsx, sheet_name="summary").set_index("store_id")
    assert summary.loc["ALL", "cancellations"] == len(outcomes)
    assert summary.loc["ALL", "broken"] == broken
    assert summary.loc["ALL", "closed_on_time"] == sum(o["state"] == "closed" for o in outcomes)
    (html,) = (out / "kpi").glob("kpi-*.html")
    assert html.read_text().count("data:image/png;base64,") >= 4


def test_replay_keeps_outcomes_in_the_store_that_kpi_reads(tmp_path: Path) -> None:
    sim = sh("simulate", "--orders", "600", "--seed", "4", cwd=tmp_path)
    rep = sh("replay", "-", "--outcomes", "o.jsonl", cwd=tmp_path, stdin=sim.stdout)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "circuitwatch-outcomes.db").exists()
    kpi = sh("kpi", "--out", "kpi", cwd=tmp_path)
    assert kpi.returncode == 0, kpi.stderr
    circuits = len((tmp_path / "o.jsonl").read_text().splitlines())
    assert f"{circuits} cancellations" in kpi.stdout.decode()


def test_an_unwritable_default_store_warns_but_an_explicit_one_fails(tmp_path: Path) -> None:
    (tmp_path / "circuitwatch-outcomes.db").mkdir()  # sqlite cannot open a directory
    sim = sh("simulate", "--orders", "100", cwd=tmp_path)
    default = sh("replay", "-", "--outcomes", "o.jsonl", cwd=tmp_path, stdin=sim.stdout)
    assert default.returncode == 0
    assert b"warning: " in default.stderr
    assert (tmp_path / "o.jsonl").read_text()
    explicit = sh("replay", "-", "--store", "circuitwatch-outcomes.db", cwd=tmp_path, stdin=sim.stdout)
    assert explicit.returncode == 2
    assert b"cannot write the outcome store" in explicit.stderr


def test_demo_serve_keeps_metrics_up_until_terminated(tmp_path: Path) -> None:
    import re
    import signal
    import time
    import urllib.request

    proc = subprocess.Popen(
        [*CLI, "demo", "--serve", "--orders", "300", "--port", "0", "--out", "demo"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            match = re.search(r"serving (http://\S+) until", line)
            url = match.group(1) if match else None
            assert line or proc.poll() is None, "demo exited before serving"
        assert url is not None
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert b"circuitwatch_leg_breaches_total" in resp.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
