"""The Faust worker on a real Apache Kafka (CIRCUITWATCH_BROKER, started by scripts/kafka.sh).

Workers run as subprocesses (`python -m circuitwatch worker`), each test with its
own app id and topic prefix so tests never share state. Every comparison is
against `circuitwatch replay` of the very same file: one logic, two runtimes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from circuitwatch.events import Event, encode
from circuitwatch.streams.faust.consume import group_lag, latest_by_key, read_to_end
from circuitwatch.streams.faust.partitioning import partition_for
from circuitwatch.streams.faust.produce import produce_lines
from circuitwatch.streams.faust.settings import WorkerSettings, from_env
from circuitwatch.streams.faust.topics import ensure_topics
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.outcome import decode as decode_outcome
from circuitwatch.streams.outcome_store import OutcomeStore
from tests.conftest import unavailable

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
ROOT = Path(__file__).resolve().parent.parent
# Eviction is the tracker's only arrival-order dependence: a circuit forgotten after
# `retention.closed` and then reached by a straggler starts afresh. A backfill loads
# whole topics at once, so arrival skew between sources is hours; the default
# retention (2d) exceeds it (docs/kafka.md). Both runtimes get the same file.
CIRCUIT_YAML = (ROOT / "circuitwatch" / "default_circuit.yaml").read_text()


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> str:
    url = os.environ.get("CIRCUITWATCH_BROKER")
    if not url:
        unavailable("Apache Kafka (CIRCUITWATCH_BROKER; scripts/kafka.sh up)")
    assert url is not None
    host, port = url.split("://", 1)[-1].split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        unavailable(f"Apache Kafka at {url}")
    return url


@pytest.fixture
def stack(broker: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(broker, tmp_path)
    yield s
    s.stop_all()


class Worker:
    def __init__(self, stack: Stack, name: str, **extra_env: str) -> None:
        self.log = stack.tmp / f"{name}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "circuitwatch", "worker"],
            env={**stack.env(name), **extra_env},
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=stack.tmp,
        )
        self.url = ""

    def metrics_url(self, deadline: float) -> str:
        while not self.url:
            m = re.search(r"metrics on (http://\S+)", self.log.read_text(errors="replace"))
            if m:
                self.url = m.group(1)
                break
            self.check_alive()
            _wait(deadline, f"worker metrics address in {self.log}")
        return self.url

    def metrics(self, deadline: float) -> dict[str, float]:
        with urllib.request.urlopen(self.metrics_url(deadline), timeout=5) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()


class Stack:
    """One isolated deployment on the shared broker: its own app id and topic prefix."""

    def __init__(self, broker: str, tmp: Path) -> None:
        self.broker = broker
        self.tmp = tmp
        self.id = "t" + uuid.uuid4().hex[:10]
        self.config = tmp / "circuit.yaml"
        self.config.write_text(CIRCUIT_YAML)
        self.store = tmp / "worker-outcomes.db"
        self.settings: WorkerSettings = from_env(
            {},
            broker=broker,
            app_id=self.id,
            topic_prefix=self.id + ".",
            partitions=PARTITIONS,
            clock="event",
            config=str(self.config),
        )
        self.workers: list[Worker] = []

    def env(self, name: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CIRCUITWATCH_") or k == "CIRCUITWATCH_COMMIT_INTERVAL"
        }
        env.update(
            CIRCUITWATCH_BROKER=self.broker,
            CIRCUITWATCH_APP_ID=self.id,
            CIRCUITWATCH_TOPIC_PREFIX=self.id + ".",
            CIRCUITWATCH_PARTITIONS=str(PARTITIONS),
            CIRCUITWATCH_METRICS_PORT="0",
            CIRCUITWATCH_CLOCK="event",
            CIRCUITWATCH_CONFIG=str(self.config),
            CIRCUITWATCH_DATADIR=str(self.tmp / f"data-{name}"),
            CIRCUITWATCH_OUTCOME_STORE=str(self.store),  # shared by the stack's workers, as on one host
            CIRCUITWATCH_LOGLEVEL="info",
            CIRCUITWATCH_SESSION_TIMEOUT="6",  # the broker's group.min.session.timeout.ms
            PYTHONPATH=str(ROOT),
        )
        return env

    def worker(self, name: str, **extra_env: str) -> Worker:
        w = Worker(self, name, **extra_env)
        self.workers.append(w)
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()

    def produce(self, lines: list[bytes]) -> None:
        async def main() -> None:
            # as `circuitwatch produce` does: the producer would otherwise race the worker and
            # have the broker auto-create raw topics with its default of one partition
            await ensure_topics(self.settings)
            await produce_lines(lines, self.settings)

        asyncio.run(main())

    def outcomes(self) -> dict[str, Outcome]:
        raw = asyncio.run(latest_by_key(self.settings.bootstrap, self.settings.outcomes))
        return {k.decode(): decode_outcome(v) for k, v in raw.items()}

    def stored_outcomes(self) -> dict[str, Outcome]:
        """What the workers' outcome sink upserted into the store `kpi` reads."""
        if not self.store.exists():
            return {}
        with OutcomeStore(self.store) as store:
            return {o.order_id: o for o in store.outcomes()}

    def lag(self) -> dict[str, int]:
        s = self.settings

        async def both() -> dict[str, int]:
            validated = await group_lag(s.bootstrap, s.validate_group, [s.raw(x) for x in s.sources])
            return validated | await group_lag(s.bootstrap, s.app_id, [s.events])

        return asyncio.run(both())

    def drained(self, workers: list[Worker], timeout: float = 150.0) -> None:
        """Every raw and canonical event consumed and committed (so applied and persisted)."""

        lag: dict[str, int] = {}

        def done() -> bool:
            nonlocal lag
            for w in workers:
                w.check_alive()
            lag = self.lag()
            return not any(lag.values())

        try:
            wait_until(done, f"consumer group {self.id} to reach the end of its topics", timeout)
        except AssertionError as e:
            behind = {tp: n for tp, n in lag.items() if n}
            logs = "\n".join(f"--- {w.log.name}\n{w.log.read_text(errors='replace')[-4000:]}" for w in workers)
            raise AssertionError(f"{e}; uncommitted records: {behind}\n{logs}") from None

    def dead_letters(self) -> list[bytes]:
        return [v for _, v in asyncio.run(read_to_end(self.settings.bootstrap, self.settings.dead_letter))]


def _wait(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"timed out waiting for {what}")
    time.sleep(0.2)  # poll interval inside a deadline loop, not a fixed wait


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        _wait(deadline, what)


# -- the data: a simulated day, closed in event time ---------------------------


def day(orders: int, seed: int) -> list[Event]:
    from circuitwatch.streams.simulate import SimConfig, simulate

    events = simulate(SimConfig(orders=orders, seed=seed, failure_rate=0.1)).events
    # One event per partition, 12 h after the day, moves every partition's watermark past
    # every deadline: the circuits end final in both runtimes (a live worker gets the same
    # from the wall clock). It opens no circuit: order_placed of an order of its own.
    end = max(e.occurred_at for e in events) + timedelta(hours=12)
    seen: set[int] = set()
    i = 0
    while len(seen) < PARTITIONS:
        oid = f"TICK-{i}"
        p = partition_for(oid.encode(), PARTITIONS)
        if p not in seen:
            seen.add(p)
            events.append(Event(event_id=f"tick-{i}", order_id=oid, source="oms", type="order_placed", occurred_at=end))
        i += 1
    return events


def write_day(path: Path, events: list[Event], bad: list[bytes] = ()) -> list[bytes]:  # type: ignore[assignment]
    lines = [encode(e) for e in events]
    lines[len(lines) // 3 : len(lines) // 3] = list(bad)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def replay(path: Path, config: Path) -> dict[str, Outcome]:
    out = path.with_suffix(".outcomes.jsonl")
    done = subprocess.run(
        [sys.executable, "-m", "circuitwatch", "replay", str(path), "--outcomes", str(out), "--config", str(config)],
        check=False,
        capture_output=True,
        cwd=path.parent,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: some lines were rejected (and kept)
    records = [decode_outcome(line) for line in out.read_bytes().splitlines() if line.strip()]
    return {o.order_id: o for o in records}


def assert_same(stack: Stack, expected: dict[str, Outcome], workers: list[Worker], timeout: float = 150.0) -> None:
    """Poll the outcomes topic until it equals the replay (or the deadline says why not)."""
    assert expected, "the replay produced no circuits"
    stack.drained(workers, timeout)
    assert all(o.state != "open" for o in expected.values())
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            w.check_alive()
        got = stack.outcomes()
        if got == expected:
            break
        if time.monotonic() > deadline:
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            wrong = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
            logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
            raise AssertionError(
                f"worker outcomes differ from replay: {len(missing)} missing {missing[:5]}, "
                f"{len(extra)} extra {extra[:5]}, {len(wrong)} different {wrong[:5]}\n{logs}"
            )
        time.sleep(0.5)  # poll interval inside a deadline loop
    # ...and the outcome store `kpi` reads holds the same records, once each
    wait_until(lambda: stack.stored_outcomes() == expected, "the outcome store to equal the replay", timeout)
    with OutcomeStore(stack.store) as store:
        assert store.count() == len(expected)


# -- tests -----------------------------------------------------------------------


def test_topics_are_visible_before_the_worker_joins_even_when_another_client_creates_them(broker: str) -> None:
    """`produce` and a starting worker both declare the topics; neither may go on before the
    broker lists all of them (a group joined in that window got none of their partitions)."""
    prefix = "t" + uuid.uuid4().hex[:10] + "."
    settings = from_env({}, broker=broker, topic_prefix=prefix, app_id=prefix, partitions=PARTITIONS)

    async def both() -> list[dict[str, int]]:
        return list(await asyncio.gather(ensure_topics(settings), ensure_topics(settings)))

    for counts in asyncio.run(both()):
        assert counts == dict.fromkeys(settings.all_topics(), PARTITIONS)


def test_worker_outcomes_equal_replay_and_rejects_go_to_dead_letter(stack: Stack) -> None:
    events = day(orders=600, seed=11)
    path = stack.tmp / "day.jsonl"
    bad = [
        b'{"event_id": "x1", "order_id": "BO-1", "source": "wms", "type": "picked",'
        b' "occurred_at": "2026-11-27T10:00:00"}',
        b'{"event_id": "x2", "source": "store", "type": "cancelled", "occurred_at": "2026-11-27T10:00:00Z"}',
        b"{not json",
    ]
    write_day(path, events, bad)
    expected = replay(path, stack.config)
    w = stack.worker("w1")
    # the CLI producer, as a user would load a day
    done = subprocess.run(
        [sys.executable, "-m", "circuitwatch", "produce", str(path)],
        env=stack.env("producer"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"produced {len(events) + len(bad)} messages" in done.stderr
    assert_same(stack, expected, [w])

    letters = wait_until(lambda: len(stack.dead_letters()) >= 3 and stack.dead_letters(), "3 dead letters")
    import orjson

    records = [orjson.loads(v) for v in letters]
    assert sorted(r["reason"] for r in records) == ["malformed_json", "missing_field", "naive_timestamp"]
    for r in records:
        assert r["file"].startswith(stack.id + ".bopis.raw.")
        assert r["line"] >= 0  # the offset in that partition
    missing = next(r for r in records if r["reason"] == "missing_field")
    assert missing["field"] == "order_id"
    assert missing["file"].startswith(stack.id + ".bopis.raw.store[")

    m = w.metrics(time.monotonic() + 30)
    assert m['circuitwatch_events_rejected_total{reason="naive_timestamp",source="wms"}'] == 1
    assert m['circuitwatch_events_rejected_total{reason="malformed_json",source="unknown"}'] == 1
    accepted = sum(v for k, v in m.items() if k.startswith("circuitwatch_events_total{"))
    assert accepted == len({(e.source, e.event_id) for e in events})
    assert m["circuitwatch_worker_assigned_partitions"] == PARTITIONS


def test_two_workers_share_the_partitions(stack: Stack) -> None:
    events = day(orders=800, seed=23)
    path = stack.tmp / "day.jsonl"
    lines = write_day(path, events)
    expected = replay(path, stack.config)
    a = stack.worker("a")
    b = stack.worker("b")

    def owned() -> tuple[float, float] | None:
        na = a.metrics(deadline)["circuitwatch_worker_assigned_partitions"]
        nb = b.metrics(deadline)["circuitwatch_worker_assigned_partitions"]
        return (na, nb) if na > 0 and nb > 0 and na + nb == PARTITIONS else None

    deadline = time.monotonic() + 120
    na, nb = wait_until(owned, "both workers to own partitions")
    stack.produce(lines)
    assert_same(stack, expected, [a, b])
    # both did part of the work, and together exactly all of it (no event applied twice)
    ma, mb = a.metrics(deadline), b.metrics(deadline)

    def accepted(m: dict[str, float]) -> float:
        return sum(v for k, v in m.items() if k.startswith("circuitwatch_events_total{"))

    assert accepted(ma) > 0
    assert accepted(mb) > 0
    assert accepted(ma) + accepted(mb) == len({(e.source, e.event_id) for e in events})
    assert (ma["circuitwatch_worker_assigned_partitions"], mb["circuitwatch_worker_assigned_partitions"]) == (na, nb)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(stack: Stack, store: str) -> None:
    """memory:// rebuilds from the changelog; rocksdb:// restarts on the same host, from its files."""
    events = day(orders=1500, seed=31)
    path = stack.tmp / "day.jsonl"
    lines = write_day(path, events)
    expected = replay(path, stack.config)
    same_host = {"CIRCUITWATCH_STORE": store, "CIRCUITWATCH_DATADIR": str(stack.tmp / "data")}
    first = stack.worker("first", **same_host)
    half = len(lines) // 2
    stack.produce(lines[:half])
    deadline = time.monotonic() + 120

    def progressed() -> bool:
        m = first.metrics(deadline)
        return sum(v for k, v in m.items() if k.startswith("circuitwatch_events_total{")) > half // 3

    wait_until(progressed, "the first worker to apply part of the stream")
    first.kill9()  # mid-stream: events, changelog writes and commits in flight
    stack.produce(lines[half:])
    second = stack.worker("second", **same_host)
    assert_same(stack, expected, [second])
    m = second.metrics(deadline)
    # the restarted tracker was rebuilt from the changelog, so it did not apply the whole day again
    applied = sum(v for k, v in m.items() if k.startswith("circuitwatch_events_total{"))
    assert applied < len({(e.source, e.event_id) for e in events})
    assert m["circuitwatch_worker_rebuilds_total"] >= 1
    # no leg closed twice: per-leg closures over both lives equal the replay's (the second
    # life's counters alone cannot exceed them)
    closures = sum(v for k, v in m.items() if k.startswith("circuitwatch_leg_closures_total{"))
    legs_closed = sum(1 for o in expected.values() for leg in o.legs.values() if leg.outcome in ("closed", "late"))
    assert closures <= legs_closed


def test_shopify_webhooks_served_by_the_worker_reach_the_tracker(stack: Stack) -> None:
    """The worker's own listener: a forged post is refused, a signed one becomes a tracked event."""
    from tests.harness.prometheus import free_port

    port, secret = free_port(), "hooks-" + stack.id
    w = stack.worker("hooks", CIRCUITWATCH_WEBHOOKS_PORT=str(port), SHOPIFY_WEBHOOK_SECRET=secret)
    body = (ROOT / "tests" / "fixtures" / "shopify" / "orders__cancelled.json").read_bytes()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/cancelled",
        "X-Shopify-Event-Id": "evt-" + stack.id,
        "X-Shopify-Triggered-At": "2026-11-27T14:00:00Z",
    }

    def post(signature: str) -> int:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/shopify",
            data=body,
            headers={**headers, "X-Shopify-Hmac-Sha256": signature},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return e.code

    def listening() -> bool:
        w.check_alive()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, f"the worker's webhook listener on port {port}", 120)
    assert post(base64.b64encode(b"forged" * 6).decode()) == 401
    assert post(base64.b64encode(digest).decode()) == 200

    def tracked() -> float:
        metrics = w.metrics(time.monotonic() + 30)
        return sum(v for k, v in metrics.items() if k.startswith('circuitwatch_events_total{source="storefront"'))

    assert wait_until(tracked, "the webhook's event to reach the tracker", 120) == 1
