"""Load JSONL lines into Kafka as they are (a raw topic takes what a system sent).

Lines are not validated here: bad ones must reach the worker, which rejects them
to the dead letter with a reason. Each line is keyed by its order id when one can
be read, so a raw topic is partitioned like `bopis.events`. With `topic=None`
each line goes to `bopis.raw.<its source>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from circuitwatch.events import SOURCES
from circuitwatch.streams.faust.record_batches import idempotent_producer
from circuitwatch.streams.faust.settings import WorkerSettings

_ORDER = re.compile(rb'"order_id"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
_SOURCE = re.compile(rb'"source"\s*:\s*"([a-z_]{1,32})"')


@dataclass
class ProduceResult:
    messages: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    unkeyed: int = 0


def route(line: bytes, settings: WorkerSettings, topic: str | None) -> tuple[str, bytes | None]:
    m = _ORDER.search(line)
    key = m.group(1) if m else None
    if topic is not None:
        return topic, key
    s = _SOURCE.search(line)
    source = s.group(1).decode() if s else ""
    # unknown source: still delivered (to the oms raw topic) so the worker rejects and counts it
    return settings.raw(source if source in SOURCES else "oms"), key


async def produce_lines(lines: Iterable[bytes], settings: WorkerSettings, *, topic: str | None = None) -> ProduceResult:
    result = ProduceResult()
    producer = idempotent_producer(settings.bootstrap)
    await producer.start()
    try:
        pending = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            name, key = route(line, settings, topic)
            pending.append(await producer.send(name, line, key=key))
            result.messages += 1
            result.unkeyed += key is None
            result.by_topic[name] = result.by_topic.get(name, 0) + 1
            if len(pending) >= 10000:
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
        await producer.flush()
    finally:
        await producer.stop()
    return result
