"""A plain aiokafka consumer loop inside the worker: fetch a batch, handle it, commit.

Used for the stateless hops (raw topics -> `bopis.events`, outcomes -> the
outcome store), where Faust's per-event stream handling would cost more than
the work itself. Each loop has a consumer group of its own, so workers share its
partitions as they share the tracker's.

At-least-once: offsets are committed only after `handle` returns (its output
delivered); a crash or a rebalance before that replays the batch, and every
consumer downstream is idempotent (the tracker by `(source, event_id)`, the
outcome store by order id and offset).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from circuitwatch.events import Rejected, reject
from circuitwatch.streams.faust.record_batches import idempotent_producer
from circuitwatch.streams.faust.settings import WorkerSettings

log = logging.getLogger("circuitwatch.worker")
RETRY_SECONDS = 1.0
Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class BatchConsumer:
    """Subclasses set `name` and implement `handle`; `run()` until cancelled."""

    name = "batch consumer"
    wants_producer = False  # an AIOKafkaProducer in `self.producer` while running
    linger = 0.0  # seconds to keep fetching before `handle` (fewer, larger batches)

    def __init__(
        self,
        settings: WorkerSettings,
        topics: list[str],
        group: str,
        on_reject: Callable[[Rejected], None] = lambda _r: None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.group = group
        self.on_reject = on_reject  # counts a reject (metrics); the record itself goes to the dead letter
        self.max_records = settings.batch
        self.producer: Any = None
        self.restarts = 0  # failures survived: each restarts from the committed offsets

    def consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=s.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000),
        )

    async def handle(self, batch: Batch) -> None:
        raise NotImplementedError

    def reject(self, raw: bytes | None, error: Exception, tp: TopicPartition, offset: int) -> Rejected:
        """A record that does not decode, counted; its `file:line` is `topic[partition]:offset`."""
        rejected = reject(raw or b"", error, file=f"{tp.topic}[{tp.partition}]", line=offset)
        self.on_reject(rejected)
        return rejected

    async def send_dead_letter(self, rejected: Rejected) -> asyncio.Future[Any]:
        """Queue a reject for the dead-letter topic; the future resolves once the broker has it."""
        future: asyncio.Future[Any] = await self.producer.send(
            self.settings.dead_letter, orjson.dumps(rejected.dead_letter())
        )
        return future

    async def run(self) -> None:
        while True:
            consumer = self.consumer()
            self.producer = idempotent_producer(self.settings.bootstrap) if self.wants_producer else None
            try:
                if self.producer is not None:
                    await self.producer.start()
                await consumer.start()
                while True:
                    await self.step(consumer)
            except Exception as e:  # broker gone, fenced, or the sink's database down: never the whole worker
                self.restarts += 1
                level = logging.WARNING if isinstance(e, KafkaError) else logging.ERROR
                log.log(
                    level,
                    "%s: %s: %s; restarting from the committed offsets in %.0f s",
                    self.name,
                    type(e).__name__,
                    e,
                    RETRY_SECONDS,
                )
            finally:
                await consumer.stop()
                if self.producer is not None:
                    await self.producer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def fetch(self, consumer: AIOKafkaConsumer) -> Batch:
        """One `getmany`, or (with `linger`) what arrives within `linger` seconds, up to `max_records`."""
        batch: Batch = await consumer.getmany(timeout_ms=1000, max_records=self.max_records)
        if not self.linger or not batch:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        n = sum(len(records) for records in batch.values())
        while n < self.max_records and (left := deadline - loop.time()) > 0:
            more = await consumer.getmany(timeout_ms=int(left * 1000) + 1, max_records=self.max_records - n)
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                n += len(records)
        return batch

    async def step(self, consumer: AIOKafkaConsumer) -> None:
        batch = await self.fetch(consumer)
        if not batch:
            return
        await self.handle(batch)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as e:  # a rebalance took the partitions: replayed there
            log.info("%s: commit skipped (%s); the new owner replays the batch", self.name, e)


def attach(app: Any, loop: BatchConsumer) -> BatchConsumer:
    """Run `loop` as a task of the Faust app (started and cancelled with the worker)."""

    async def run() -> None:
        await loop.run()

    run.__name__ = run.__qualname__ = loop.name.replace(" ", "_")
    app.task(run)
    return loop
