"""Raw topics -> `bopis.events`: validate and re-key by order id, in batches.

Why not a Faust agent: this hop is stateless, and Faust's per-event stream
handling (bench/worker.py's bare loop) would be paid twice per event, once here
and once in the tracker agent, capping the worker at half of one Faust loop.
A `BatchConsumer` in the group `<app id>.validate` does it instead: decode a
batch, send its events as one record batch per partition and its rejects to the
dead letter, wait until the broker has them, commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import TopicPartition

from circuitwatch.events import DECODE_ERRORS, Rejected, decode, encode
from circuitwatch.streams.faust.batch_consumer import Batch, BatchConsumer
from circuitwatch.streams.faust.partitioning import order_key
from circuitwatch.streams.faust.record_batches import send_keyed
from circuitwatch.streams.faust.settings import WorkerSettings


class Repartitioner(BatchConsumer):
    name = "validator"
    wants_producer = True

    def __init__(self, settings: WorkerSettings, on_reject: Callable[[Rejected], None]) -> None:
        super().__init__(settings, [settings.raw(x) for x in settings.sources], settings.validate_group, on_reject)

    async def handle(self, batch: Batch) -> None:
        s = self.settings
        events: list[tuple[bytes, bytes | None]] = []
        pending = []
        for tp, records in batch.items():
            for rec in records:
                routed = self.route(rec.value, tp, rec.offset)
                if isinstance(routed, Rejected):
                    pending.append(await self.send_dead_letter(routed))
                else:
                    events.append(routed)
        sent = await send_keyed(self.producer, s.events, events, s.partitions)
        await asyncio.gather(*pending, *(b.future for b in sent))

    def route(self, raw: bytes | None, tp: TopicPartition, offset: int) -> tuple[bytes, bytes] | Rejected:
        """(key, canonical event) of a raw record, or its reject (counted)."""
        try:
            ev = decode(raw or b"")
        except DECODE_ERRORS as e:
            return self.reject(raw, e, tp, offset)
        return order_key(ev.order_id), encode(ev)
