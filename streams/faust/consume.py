"""Read a topic to its current end: the latest record per key (outcomes, tests, bench)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
)


async def read_to_end(bootstrap: str, topic: str, *, timeout_ms: int = 1000) -> list[tuple[bytes | None, bytes]]:
    """Every record of `topic` up to the end offsets seen at the start, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()  # the consumer's own view holds subscribed topics only
        parts = metadata.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        out: list[tuple[bytes | None, bytes]] = []
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=timeout_ms)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset < end[tp] and rec.value is not None:
                        out.append((rec.key, rec.value))
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            if not batch:
                # nothing more arrived: a partition whose tail is only tombstones / control records
                positions = {tp: await consumer.position(tp) for tp in remaining}
                remaining = {tp for tp in remaining if positions[tp] < end[tp]}
        return out
    finally:
        await consumer.stop()


async def latest_by_key(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """Compacted view: a later record of a key replaces the earlier one."""
    latest: dict[bytes, bytes] = {}
    for key, value in await read_to_end(bootstrap, topic):
        if key is not None:
            latest[key] = value
    return latest


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Per `topic[partition]`, records the consumer group has not committed yet (none committed: all)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(metadata.partitions_for_topic(t) or ())]
        if not tps:
            return {}
        end = await consumer.end_offsets(tps)
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorForGroupError):
            committed = {}  # a fresh broker is still creating __consumer_offsets: nothing committed yet
        lag: dict[str, int] = {}
        for tp in tps:
            done = committed.get(tp)
            lag[f"{tp.topic}[{tp.partition}]"] = end[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()
