"""Declare the worker's topics with the partition count the join needs.

A topic auto-created by the broker gets the broker's default partition count;
`bopis.events` and the table changelog must have the same count or state and
events land in different partitions. So the topics are created explicitly, and
an existing `bopis.events` with a different count is an error, not a surprise.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from circuitwatch.streams.faust.settings import SettingsError, WorkerSettings


async def ensure_topics(settings: WorkerSettings, *, timeout_ms: int = 30000) -> dict[str, int]:
    """Create missing topics; returns {topic: partitions}."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        wanted = settings.all_topics()
        existing = await _partition_counts(admin, wanted)
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker (or `produce`) won the race
                await admin.create_topics(
                    [NewTopic(t, settings.partitions, settings.replication) for t in missing],
                    timeout_ms=timeout_ms,
                )
            existing = await _until_visible(admin, wanted, timeout_ms / 1000)
        have = existing.get(settings.events)
        if have is not None and have != settings.partitions:
            raise SettingsError(
                f"topic {settings.events} has {have} partitions but partitions={settings.partitions}; "
                "set CIRCUITWATCH_PARTITIONS to match (the table must be co-partitioned with it)"
            )
        return existing
    finally:
        await admin.close()


async def _until_visible(admin: AIOKafkaAdminClient, topics: list[str], timeout: float) -> dict[str, int]:
    """Partition counts once every topic is in the broker's metadata.

    Creation returns before then (KRaft publishes it a moment later; a topic another
    client is creating may not be listed yet). A consumer that joins its group in that
    window is assigned none of the topic's partitions, and the metadata refresh that
    would correct it can be minutes away.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counts = await _partition_counts(admin, topics)
        if len(counts) == len(set(topics)):
            return counts
        if loop.time() > deadline:
            absent = sorted(set(topics) - counts.keys())
            raise SettingsError(f"topics not visible in the broker's metadata after {timeout:.0f} s: {absent}")
        await asyncio.sleep(0.1)


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    present = set(await admin.list_topics())  # describe alone would auto-create a missing topic
    asked = [t for t in topics if t in present]
    out: dict[str, int] = {}
    if not asked:
        return out
    for desc in await admin.describe_topics(asked):
        if desc.get("error_code", 0) == 0 and desc.get("partitions"):
            out[desc["topic"]] = len(desc["partitions"])
    return out
