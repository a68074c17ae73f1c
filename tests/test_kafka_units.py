"""The Kafka runtime's pieces that need no broker: settings, state hand-off, CLI, compose file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from circuitwatch.streams.faust.partitioning import order_key, partition_for
from circuitwatch.streams.faust.settings import SettingsError, from_env
from circuitwatch.streams.faust.state import TouchedOrders, newest_event_time
from circuitwatch.streams.order_state import OrderState
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.simulate import SimConfig, simulate
from circuitwatch.streams.tracker import CircuitTracker
from tests.conftest import need_binary

ROOT = Path(__file__).resolve().parent.parent


def test_settings_come_from_the_environment_and_flags_win() -> None:
    env = {"CIRCUITWATCH_BROKER": "kafka://k:1", "CIRCUITWATCH_PARTITIONS": "12", "CIRCUITWATCH_TOPIC_PREFIX": "x."}
    s = from_env(env, partitions=3)
    assert s.broker == "kafka://k:1"
    assert s.partitions == 3
    assert s.bootstrap == "k:1"
    assert s.events == "x.bopis.events"
    assert s.raw("wms") == "x.bopis.raw.wms"
    assert s.metrics_host == "127.0.0.1"
    assert s.outcomes == "x.bopis.circuit-outcomes"
    assert s.dead_letter == "x.bopis.dead-letter"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CIRCUITWATCH_PARTITIONS": "many"}, "CIRCUITWATCH_PARTITIONS"),
        ({"CIRCUITWATCH_BROKER": "localhost:9092"}, "kafka://"),
        ({"CIRCUITWATCH_CLOCK": "sundial"}, "clock"),
        ({"CIRCUITWATCH_TOPIC_RAW": "raw"}, "{source}"),
    ],
)
def test_bad_settings_are_one_line_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        from_env(env)


def test_str_keys_would_split_state_from_its_events() -> None:
    """Why the table uses bytes keys: a JSON-encoded str key hashes to another partition."""
    ids = [f"BO-{i}" for i in range(400)]
    moved = sum(partition_for(order_key(o), 4) != partition_for(f'"{o}"'.encode(), 4) for o in ids)
    assert moved > len(ids) // 2


def test_the_app_writes_its_table_by_key_partition() -> None:
    from circuitwatch.streams.faust.app import build_app

    app, rt = build_app(from_env({}, app_id="unit", partitions=4))
    assert rt.table.use_partitioner is True
    assert rt.table.key_type is bytes
    assert rt.table.value_type is bytes
    assert rt.table.partitions == 4
    assert app.conf.key_serializer == "raw"
    assert app.conf.web_bind == "127.0.0.1"
    # the only Faust agent is the tracker; the raw topics are read by the batched validator
    topics = {t for agent in app.agents.values() for t in agent.channel.topics}
    assert topics == {"bopis.events"}
    assert rt.repartitioner is not None
    assert rt.settings.validate_group == "unit.validate"


def test_the_validator_rekeys_events_by_order_and_dead_letters_the_rest() -> None:
    import orjson
    from aiokafka import TopicPartition

    from circuitwatch.events import Rejected
    from circuitwatch.streams.faust.repartition import Repartitioner

    seen: list[Rejected] = []
    rep = Repartitioner(from_env({}, topic_prefix="p.", partitions=4), seen.append)
    assert rep.topics == [f"p.bopis.raw.{s}" for s in rep.settings.sources]
    tp = TopicPartition("p.bopis.raw.wms", 2)
    good = b'{"event_id":"e1","order_id":"BO-9","source":"wms","type":"picked","occurred_at":"2026-11-27T10:00:00Z"}'
    routed = rep.route(good, tp, 41)
    assert not isinstance(routed, Rejected)
    key, value = routed
    assert key == b"BO-9"
    assert orjson.loads(value)["order_id"] == "BO-9"
    assert seen == []

    rejected = rep.route(good.replace(b"00:00Z", b"00:00"), tp, 42)
    assert isinstance(rejected, Rejected)
    letter = rejected.dead_letter()
    assert (letter["file"], letter["line"], letter["reason"]) == ("p.bopis.raw.wms[2]", 42, "naive_timestamp")
    assert [(r.source, r.reason) for r in seen] == [("wms", "naive_timestamp")]


def test_records_are_batched_by_their_key_partition() -> None:
    """Changelog, outcome and event records land where Faust's partitioner would put them."""
    from circuitwatch.streams.faust.record_batches import by_partition

    keys = [order_key(f"BO-{i}") for i in range(200)]
    parts = by_partition(((k, b"v") for k in keys), 4)
    assert sorted(k for recs in parts.values() for k, _ in recs) == sorted(keys)
    for p, recs in parts.items():
        assert all(partition_for(k, 4) == p for k, _ in recs)


def test_a_gap_over_acked_offsets_commits_in_one_step_not_one_offset_per_commit() -> None:
    """The post-restart crawl, offline: a seek made Faust record a gap over offsets already acked.

    The state is the one logged by a stalled worker: committed 933, offsets 933..1125
    acked, and a gap 934..1124 (added when record 1125 of a batch fetched before the
    seek arrived). Faust's own `_new_offset` then moves the commit by one per call.
    """
    from faust.transport.consumer import Consumer as FaustConsumer
    from faust.types import TP

    from circuitwatch.streams.faust.app import build_app
    from circuitwatch.streams.faust.transport import Consumer

    app, _ = build_app(from_env({}, app_id="unit", partitions=4))
    consumer = app.consumer
    assert isinstance(consumer, Consumer)
    tp = TP("unit.bopis.raw.oms", 0)

    def commits(new_offset: Callable[[TP], int | None]) -> list[int | None]:
        consumer._committed_offset[tp] = 933
        consumer._acked[tp] = list(range(933, 1126))
        consumer._acked_index[tp] = set(range(933, 1126))
        consumer._gap[tp].clear()
        consumer._gap[tp].addi(934, 1125)
        out = []
        for _ in range(3):
            offset = new_offset(tp)
            out.append(offset)
            if offset is not None:
                consumer._committed_offset[tp] = offset
        return out

    assert commits(consumer._new_offset) == [1126, None, None]
    assert commits(lambda t: FaustConsumer._new_offset(consumer, t)) == [935, 936, 937]  # the defect worked around


def test_a_commit_due_during_the_seek_waits_and_cannot_leave_a_stale_committed_offset() -> None:
    """The post-restart stop, offline: a commit ran while the seek read the committed offsets."""
    from faust.types import TP

    from circuitwatch.streams.faust.app import build_app

    app, _ = build_app(from_env({}, app_id="unit", partitions=4))
    consumer = app.consumer
    tp = TP("unit.bopis.raw.storefront", 2)
    broker = {tp: 421}  # committed offsets as the broker holds them
    seen: list[str] = []

    async def seek_to_committed() -> dict[TP, int]:
        seen.append("seek reads")
        offsets = dict(broker)
        await asyncio.sleep(0.05)  # a commit timer tick during the round trip
        return offsets

    async def commit_offsets(offsets: dict[TP, int], start_new_transaction: bool = True) -> bool:
        seen.append("commit")
        broker.update(offsets)
        consumer._committed_offset.update(offsets)
        return True

    consumer.seek_to_committed = seek_to_committed
    consumer._commit_offsets = commit_offsets
    consumer._committed_offset[tp] = 421
    consumer._acked[tp] = list(range(421, 554))
    consumer._acked_index[tp] = set(range(421, 554))

    async def main() -> None:
        seek = asyncio.ensure_future(consumer.perform_seek())
        await asyncio.sleep(0.01)
        assert await consumer.commit() is False  # skipped: the seek holds the commit lock
        await seek
        assert await consumer.commit() is True

    asyncio.run(main())
    assert seen == ["seek reads", "commit"]
    assert broker[tp] == consumer._committed_offset[tp] == 554


def test_gaps_still_let_commits_pass_offsets_without_records() -> None:
    """A real hole (compaction, control records) is still skipped, and folded only once."""
    from intervaltree import IntervalTree

    from circuitwatch.streams.faust.transport import fold_gaps

    acked = [10, 11, 15, 16]
    gap = IntervalTree()
    gap.addi(12, 15)
    gap.addi(30, 40)  # beyond the newest acked offset: kept for later
    fold_gaps(acked, gap)
    assert sorted(acked) == [10, 11, 12, 13, 14, 15, 16]
    assert [(iv.begin, iv.end) for iv in gap] == [(30, 40)]
    fold_gaps(acked, gap)
    assert sorted(acked) == [10, 11, 12, 13, 14, 15, 16]


def _run(tracker: CircuitTracker, events: list) -> dict[str, Outcome]:  # type: ignore[type-arg]
    out: dict[str, Outcome] = {}
    for ev in events:
        for o in tracker.on_event(ev):
            out[o.order_id] = o
    return out


def test_touched_orders_are_exactly_what_must_be_written() -> None:
    events = simulate(SimConfig(orders=150, seed=5)).events
    tracker = CircuitTracker()
    orders = TouchedOrders()
    tracker.orders = orders
    _run(tracker, events[:500])
    writes, deleted = orders.drain()
    assert set(writes) == set(tracker.orders)  # every order still held, each once
    assert set(writes) | deleted == {e.order_id for e in events[:500]}  # the rest: evicted after retention
    assert all(OrderState.from_bytes(b).to_bytes() == b for b in writes.values())
    assert orders.drain() == ({}, set())
    # a wake-up far later evicts: the eviction is reported as a delete
    tracker.advance_clock(events[-1].occurred_at.timestamp() + 30 * 86400)
    writes, deleted = orders.drain()
    assert deleted
    assert not (deleted & set(tracker.orders))


def test_a_tracker_rebuilt_from_the_table_ends_like_an_uninterrupted_one() -> None:
    """The worker's restart path, offline: states from `to_bytes`, `load_orders`, watermark from `last_ts`."""
    events = simulate(SimConfig(orders=400, seed=9, failure_rate=0.1)).events
    straight = CircuitTracker()
    expected = _run(straight, events)
    expected.update({o.order_id: o for o in straight.flush()})

    first = CircuitTracker()
    table: dict[str, bytes] = {}
    orders = TouchedOrders()
    first.orders = orders
    cut = len(events) // 2
    got = _run(first, events[:cut])
    writes, deleted = orders.drain()
    table.update(writes)
    for oid in deleted:
        table.pop(oid, None)

    second = CircuitTracker()
    states = [(oid, OrderState.from_bytes(raw)) for oid, raw in table.items()]
    second.load_orders(states)
    newest = newest_event_time(st for _, st in states)
    assert newest == max(e.occurred_at.timestamp() for e in events[:cut])
    for o in second.advance_clock(newest):
        got[o.order_id] = o
    for o in _run(second, events[cut - 50 :]).values():  # at-least-once: some events again
        got[o.order_id] = o
    got.update({o.order_id: o for o in second.flush()})
    assert got == expected


def test_cli_help_and_one_line_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITWATCH_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "circuitwatch", *args], capture_output=True, text=True, env=env)

    for cmd in (["worker", "--help"], ["produce", "--help"]):
        done = cli(*cmd)
        assert done.returncode == 0, done.stderr
    bad = cli("worker", "--broker", "localhost:9092")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: broker 'localhost:9092': expected kafka://host:port"]
    # an outcome store that cannot be opened is refused before any connection, its password masked
    store = cli("worker", "--outcome-store", "nosuchdb://kpi:s3cret@db/x")
    assert store.returncode == 2
    assert "cannot open the outcome store: NoSuchModuleError" in store.stderr
    assert "s3cret" not in store.stderr


def test_docker_compose_file_is_valid_and_binds_loopback() -> None:
    binary = need_binary("docker-compose")
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "only-for-validation"}
    done = subprocess.run([binary, "config", "-q"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    unset = {k: v for k, v in env.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    refused = subprocess.run([binary, "config", "-q"], cwd=ROOT, capture_output=True, text=True, env=unset)
    assert refused.returncode != 0  # no default admin password
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "worker", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./") and "${" not in vol:
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
    mounts = " ".join(v for svc in services.values() for v in svc.get("volumes", []))
    for path in ("./alerts/rules", "./alerts/alertmanager.yml", "./dashboards/provisioning", "./dashboards/generated"):
        assert path in mounts


def test_a_failing_sink_restarts_from_the_committed_offsets_and_replays_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database outage in the outcome sink costs a retry, not the worker, and loses no record."""
    from aiokafka import ConsumerRecord, TopicPartition
    from sqlalchemy.exc import OperationalError

    from circuitwatch.streams.faust import batch_consumer
    from circuitwatch.streams.faust.batch_consumer import Batch, BatchConsumer

    monkeypatch.setattr(batch_consumer, "RETRY_SECONDS", 0.0)
    tp = TopicPartition("t", 0)
    records = [ConsumerRecord("t", 0, off, 0, 0, None, b"v", None, 0, 1, []) for off in (7, 8)]

    committed: dict[TopicPartition, int] = {}
    seen: list[list[int]] = []

    class FakeConsumer:
        """Hands out the uncommitted batch again after a restart, as Kafka does."""

        async def start(self) -> None: ...
        async def stop(self) -> None: ...

        async def getmany(self, **_: Any) -> Batch:
            if committed.get(tp, 0) > records[-1].offset:
                await asyncio.sleep(3600)  # nothing more: cancelled by the test
            return {tp: records}

        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            committed.update(offsets)

    class FlakySink(BatchConsumer):
        name = "outcome store"

        def consumer(self) -> Any:
            return FakeConsumer()

        async def handle(self, batch: Batch) -> None:
            seen.append([r.offset for r in batch[tp]])
            if len(seen) == 1:
                raise OperationalError("INSERT", {}, Exception("database is locked"))

    sink = FlakySink(from_env({}), ["t"], "g")

    async def main() -> None:
        task = asyncio.ensure_future(sink.run())

        async def until_committed() -> None:
            while not committed:
                assert not task.done(), task  # the failure must not end the loop
                await asyncio.sleep(0)

        await asyncio.wait_for(until_committed(), timeout=30)
        task.cancel()

    asyncio.run(main())
    assert sink.restarts == 1
    assert seen == [[7, 8], [7, 8]]  # replayed after the failure, committed once
    assert committed == {tp: 9}
