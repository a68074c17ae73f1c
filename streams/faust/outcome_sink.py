"""`bopis.circuit-outcomes` -> the outcome store (SQLite by default), for the weekly KPI export.

A `BatchConsumer` in the group `<app id>.outcome-store`: what arrives within a
second is one upsert transaction, committed to Kafka after the database commit.
Upserting by order id with the record's offset makes a redelivered batch change
nothing (outcome_store.py), so a crash loses and duplicates no outcome. Workers
share the partitions; with several hosts, use a server database
(`CIRCUITWATCH_OUTCOME_STORE=postgresql+psycopg://...`).
"""

from __future__ import annotations

from collections.abc import Callable

from circuitwatch.events import DECODE_ERRORS, Rejected
from circuitwatch.streams.faust.batch_consumer import Batch, BatchConsumer
from circuitwatch.streams.faust.settings import WorkerSettings
from circuitwatch.streams.outcome import Outcome, decode
from circuitwatch.streams.outcome_store import OutcomeStore


class OutcomeSink(BatchConsumer):
    name = "outcome store"
    wants_producer = True  # for the dead letter: a record this topic should never hold
    # One transaction (and fsync) per second at most: a tracker batch yields a handful of
    # records, and committing each handful cost the worker a third of its CPU (py-spy).
    linger = 1.0

    def __init__(self, settings: WorkerSettings, url: str, on_reject: Callable[[Rejected], None]) -> None:
        super().__init__(settings, [settings.outcomes], settings.app_id + ".outcome-store", on_reject)
        self.max_records = 10 * settings.batch
        self.store = OutcomeStore(url)

    async def handle(self, batch: Batch) -> None:
        outcomes: list[Outcome] = []
        offsets: list[int] = []
        for tp, records in batch.items():
            for rec in records:
                try:
                    outcomes.append(decode(rec.value or b""))
                except DECODE_ERRORS as e:  # a foreign writer on our output
                    await (await self.send_dead_letter(self.reject(rec.value, e, tp, rec.offset)))
                    continue
                offsets.append(rec.offset)
        # On the loop, not in a thread: sqlite3 releases the GIL for every row and takes it back,
        # and each handoff waited on the busy tracker (py-spy: 14% of the worker's samples, vs
        # ~30 µs a record inline, at most once a second).
        self.store.upsert(outcomes, offsets=offsets)
