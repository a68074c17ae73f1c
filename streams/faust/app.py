"""The worker: raw topics -> validate -> `bopis.events` -> tracker agent -> outcomes.

Validation is a batched aiokafka hop inside the worker (repartition.py); the
tracker is the Faust agent.

One logic, two runtimes: the tracker agent runs the same pure `CircuitTracker`
as `replay`. The Faust table (bytes order id -> `OrderState.to_bytes()`, with a
changelog) is the source of truth; the tracker is its in-memory working copy,
rebuilt with `load_orders` after every recovery (a restart or a rebalance).

At-least-once, made safe:
- a batch's outcome records are delivered (awaited) before its table writes are
  queued, and the consumer commits offsets only after the producer has flushed
  the changelog, so a crash at any point replays events rather than losing them;
- replayed events are ignored by the tracker's (source, event_id) check, which
  lives in the restored state; an outcome record may be repeated, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from circuitwatch.config import load_config
from circuitwatch.events import DECODE_ERRORS, Rejected, decode, reject
from circuitwatch.metrics.prometheus import MetricsServer
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.faust.batch_consumer import attach
from circuitwatch.streams.faust.changelog import faust_producer, write_changes
from circuitwatch.streams.faust.outcome_sink import OutcomeSink
from circuitwatch.streams.faust.partitioning import order_key, partition_for
from circuitwatch.streams.faust.record_batches import send_keyed
from circuitwatch.streams.faust.repartition import Repartitioner
from circuitwatch.streams.faust.settings import WorkerSettings
from circuitwatch.streams.faust.state import TouchedOrders, newest_event_time, reset_gauges
from circuitwatch.streams.faust.transport import App as FaustApp
from circuitwatch.streams.order_state import OrderState
from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.outcome import encode as encode_outcome
from circuitwatch.streams.tracker import CircuitTracker

log = logging.getLogger("circuitwatch.worker")
TABLE = "orders"


@dataclass
class Runtime:
    """What the agents share: the tracker, its table and the metrics."""

    settings: WorkerSettings
    app: faust.App
    table: Any  # faust.Table[bytes, bytes]
    stats: TrackerStats = field(default_factory=TrackerStats)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tracker: CircuitTracker = field(init=False)
    orders: TouchedOrders = field(init=False)
    stale: bool = True  # the table was (re)assigned: rebuild before the next batch
    metrics: MetricsServer | None = None
    webhooks: Any = None  # the aiohttp runner of streams/faust/webhooks.py, when enabled
    rebuilds: int = 0

    def __post_init__(self) -> None:
        self.config = load_config(self.settings.config)
        self._new_tracker()

    def _new_tracker(self) -> None:
        reset_gauges(self.stats)
        self.tracker = CircuitTracker(self.config, self.stats)
        self.orders = TouchedOrders()
        self.tracker.orders = self.orders

    # -- recovery ------------------------------------------------------------

    def assigned_partitions(self) -> set[int]:
        assignment = self.app.consumer.assignment()
        return {tp.partition for tp in assignment if tp.topic == self.settings.events}

    def rebuild(self, out: list[Outcome]) -> None:
        """Tracker := the table's orders in the partitions this worker owns now.

        The in-memory store keeps keys of revoked partitions that were written
        live, so keys are filtered by their partition, computed as the producer did.
        """
        mine, n = self.assigned_partitions(), self.settings.partitions
        states = [
            (key.decode(), OrderState.from_bytes(value))
            for key, value in self.table.items()
            if partition_for(key, n) in mine
        ]
        self._new_tracker()
        self.tracker.load_orders(states)
        self.orders.drain()  # loaded from the table: nothing to write back
        newest = newest_event_time(st for _, st in states)
        if newest is not None:  # the restored watermark
            out.extend(self.tracker.advance_clock(newest))
        self.stale = False
        self.rebuilds += 1
        log.info("tracker rebuilt from table: %d orders in partitions %s", len(states), sorted(mine))

    # -- one batch -------------------------------------------------------------

    async def apply(self, values: list[bytes]) -> None:
        out: list[Outcome] = []
        if self.stale:
            self.rebuild(out)
        on_event = self.tracker.on_event
        for raw in values:
            try:
                ev = decode(raw)
            except DECODE_ERRORS as e:  # bopis.events is validated upstream; a foreign writer is not
                await self.dead_letter(reject(raw, e, file=self.settings.events, line=-1))
                continue
            out.extend(on_event(ev))
        await self.persist(out)

    async def tick(self, wall_ts: float) -> None:
        """The live clock (scheduled only with clock=wall): silent legs breach on time."""
        if self.stale:
            return  # not assigned / not recovered yet
        await self.persist(self.tracker.advance_clock(wall_ts))

    async def persist(self, out: list[Outcome]) -> None:
        """Outcomes delivered first, then one table write per changed order."""
        latest: dict[str, Outcome] = {}
        for outcome in out:
            latest[outcome.order_id] = outcome
        if latest:
            records = ((order_key(oid), encode_outcome(o)) for oid, o in latest.items())
            sent = await send_keyed(faust_producer(self.app), self.settings.outcomes, records, self.settings.partitions)
            await asyncio.gather(*(b.future for b in sent))
        writes, deleted = self.orders.drain()
        changes: dict[bytes, bytes | None] = {order_key(oid): raw for oid, raw in writes.items()}
        changes.update((order_key(oid), None) for oid in deleted)
        await write_changes(self.table, changes, self.settings.partitions)

    def count_reject(self, rejected: Rejected) -> None:
        self.stats.reject(rejected.source, rejected.reason)

    async def dead_letter(self, rejected: Rejected) -> None:
        self.count_reject(rejected)
        await self.dead_letter_topic.send(key=None, value=orjson.dumps(rejected.dead_letter()))

    # attached by build_app
    repartitioner: Repartitioner | None = None
    outcome_sink: OutcomeSink | None = None
    dead_letter_topic: Any = None
    events_topic: Any = None


def build_app(settings: WorkerSettings) -> tuple[faust.App, Runtime]:
    # FaustApp: faust.App with the offset-commit fix of transport.py (no crawl after a restart)
    app = FaustApp(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        datadir=settings.datadir,
        producer_linger=0.005,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        stream_buffer_maxsize=max(4096, settings.batch * 2),
        # Faust creates its changelog and assignor topics just before it joins the group; a topic
        # not yet in the metadata is left unassigned until the next refresh (default 5 min).
        consumer_metadata_max_age_ms=5000,
    )
    table = app.Table(
        TABLE,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        use_partitioner=True,  # writes from a batch (and the timer) go to the key's own partition
    )  # keys and values are raw bytes: the app's key_serializer / value_serializer
    rt = Runtime(settings=settings, app=app, table=table)
    kw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "partitions": settings.partitions}
    rt.events_topic = app.topic(settings.events, **kw)
    rt.dead_letter_topic = app.topic(settings.dead_letter, **kw)

    @table.on_recover
    async def _recovered() -> None:
        rt.stale = True

    rt.repartitioner = Repartitioner(settings, rt.count_reject)
    attach(app, rt.repartitioner)
    if settings.outcome_store != "off":
        rt.outcome_sink = OutcomeSink(settings, settings.outcome_store, rt.count_reject)
        attach(app, rt.outcome_sink)

    @app.agent(rt.events_topic, name="circuitwatch.track")
    async def track(stream: AsyncIterable[Any]) -> None:
        async for values in stream.take(settings.batch, settings.batch_within):  # type: ignore[attr-defined]
            async with rt.lock:
                await rt.apply(values)

    if settings.webhooks_port is not None:

        @app.task  # type: ignore[untyped-decorator]
        async def webhooks() -> None:
            from circuitwatch.streams.faust.webhooks import start_webhooks

            rt.webhooks = await start_webhooks(rt)
            log.info("webhooks on http://%s:%d", settings.webhooks_host, settings.webhooks_port)

    if settings.clock == "wall":  # event-time runs need no clock (and a Faust timer costs here)

        @app.timer(settings.tick, name="circuitwatch.clock")  # type: ignore[untyped-decorator]
        async def clock() -> None:
            async with rt.lock:
                await rt.tick(time.time())

    return app, rt
