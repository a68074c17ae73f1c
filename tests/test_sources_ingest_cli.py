"""`circuitwatch ingest` end to end: a real server process, signed webhooks, /metrics, the outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from circuitwatch.streams.sources.signature import sign

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "shopify"
SECRET = "cli-test-secret"


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_ingest_serves_webhooks_runs_the_tracker_and_exposes_metrics(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPIFY_")}
    env["SHOPIFY_WEBHOOK_SECRET_FILE"] = str(secret_file)
    out, outcomes, dead = tmp_path / "events.jsonl", tmp_path / "outcomes.jsonl", tmp_path / "dead.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "circuitwatch", "ingest", "--port", "0", "--out", str(out),
         "--outcomes", str(outcomes), "--dead-letter", str(dead)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server has bound (or exited)
        assert line.startswith("listening on http://127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        base = line.split()[2]
        body = (FIXTURES / "orders__cancelled.json").read_bytes()
        hdrs = {"X-Shopify-Topic": "orders/cancelled", "X-Shopify-Event-Id": "e-1",
                "X-Shopify-Triggered-At": "2026-11-27T14:00:00Z", "Content-Type": "application/json"}  # fmt: skip
        assert post(f"{base}/webhooks/shopify", body, {**hdrs, "X-Shopify-Hmac-Sha256": sign(body, b"forged")}) == 401
        assert (
            post(f"{base}/webhooks/shopify", body, {**hdrs, "X-Shopify-Hmac-Sha256": sign(body, SECRET.encode())})
            == 200
        )
        drift = json.dumps({"eventId": "x", "eventType": "ORDER_VOIDED", "eventTime": "2026-11-27T14:00:00Z",
                            "order": {"orderNumber": "BO-1"}}).encode()  # fmt: skip
        assert post(f"{base}/ingest/generic-oms", drift, {"Content-Type": "application/json"}) == 422
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
                text = resp.read().decode()
            if 'circuitwatch_events_total{source="storefront",type="cancelled"} 1.0' in text:
                break
        assert 'circuitwatch_events_total{source="storefront",type="cancelled"} 1.0' in text
        assert 'circuitwatch_events_rejected_total{reason="unknown_value",source="oms"} 1.0' in text
        assert 'circuitwatch_ingest_requests_total{endpoint="shopify",result="unauthorized"} 1.0' in text
        assert 'circuitwatch_ingest_requests_total{endpoint="shopify",result="accepted"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert SECRET not in err
    [event] = [json.loads(x) for x in out.read_text().splitlines()]
    assert (event["source"], event["type"], event["order_id"]) == ("storefront", "cancelled", "820982911946154508")
    assert json.loads(dead.read_text())["reason"] == "unknown_value"
    assert "stopped: 1 events, 1 rejected" in err
