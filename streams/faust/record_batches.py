"""Keyed records sent as one Kafka record batch per partition (aiokafka's batch builder).

Why: a record appended to a batch costs a few µs; `producer.send()` per record
costs several times that, and Faust's `Topic.send` / table writes more again.
Partitions are murmur2 of the bytes key, as Kafka's Java client and Faust's
`use_partitioner=True` compute them, so readers see the usual partitioning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from circuitwatch.streams.faust.partitioning import partition_for

Record = tuple[bytes, bytes | None]  # (key, value); a None value is a tombstone


@dataclass(frozen=True)
class SentBatch:
    partition: int
    count: int
    future: asyncio.Future[Any]  # RecordMetadata of the batch's first record, once the broker has it


def idempotent_producer(bootstrap: str) -> AIOKafkaProducer:
    """The producer of the worker's own hops and of `produce`: acks=all, no duplicates on retry."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )


def by_partition(records: Iterable[Record], partitions: int) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for key, value in records:
        out.setdefault(partition_for(key, partitions), []).append((key, value))
    return out


async def send_batches(producer: Any, topic: str, partition: int, records: list[Record]) -> list[SentBatch]:
    """Queue `records` (value None: a tombstone) for one partition; returns the batches' futures."""
    sent: list[SentBatch] = []

    async def flush(batch: Any) -> None:
        count = batch.record_count()
        sent.append(SentBatch(partition, count, await producer.send_batch(batch, topic, partition=partition)))

    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
            await flush(batch)
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"{topic}: a record of {len(value or b'')} bytes exceeds the producer's batch size")
    if batch.record_count():
        await flush(batch)
    return sent


async def send_keyed(producer: Any, topic: str, records: Iterable[Record], partitions: int) -> list[SentBatch]:
    sent: list[SentBatch] = []
    for partition, part in by_partition(records, partitions).items():
        sent.extend(await send_batches(producer, topic, partition, part))
    return sent
