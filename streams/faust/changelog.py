"""A batch's table changes: one Kafka record batch per changelog partition, then the local store.

Why not `table[key] = value`: Faust sends each change through its `send_soon`
buffer (a FutureMessage, callbacks, a 100-message cap the conductor drains by
waiting on every message), about 50 µs of CPU per changed order measured with
bench/worker.py, and the tracker changes about one order per event.

Nothing else changes: the same changelog topic, the same key partition (as
`use_partitioner=True`), the same records, so Faust's recovery reads them as its
own. They go through Faust's producer, whose `flush()` Faust awaits before every
offset commit: an event is never committed before its state change is in the
changelog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.types import TP

from circuitwatch.streams.faust.record_batches import SentBatch, by_partition, send_batches


def faust_producer(app: Any) -> Any:
    """The aiokafka producer inside Faust's: what Faust flushes before it commits offsets."""
    return app.producer._ensure_producer()


async def write_changes(table: Any, changes: Mapping[bytes, bytes | None], partitions: int) -> None:
    """Send `changes` (None deletes) to the table's changelog, then apply them to its store."""
    producer = faust_producer(table.app)
    topic = table.changelog_topic.get_topic_name()
    store = table.data
    for partition, records in by_partition(changes.items(), partitions).items():
        for sent in await send_batches(producer, topic, partition, records):
            sent.future.add_done_callback(_persisted(store, topic, sent))
        for key, value in records:
            _apply(store, partition, key, value)


def _persisted(store: Any, topic: str, sent: SentBatch) -> Any:
    """RocksDB remembers the changelog offset it holds, as Faust's own send callback does."""

    def done(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            store.set_persisted_offset(TP(topic, sent.partition), fut.result().offset + sent.count - 1)

    return done


def _apply(store: Any, partition: int, key: bytes, value: bytes | None) -> None:
    """The store's own write, into the key's partition (RocksDB keeps one database per partition)."""
    if hasattr(store, "_db_for_partition"):  # faust.stores.rocksdb: its __setitem__ picks the current event's
        db = store._db_for_partition(partition)
        if value is None:
            db.delete(key)
            store._key_index.pop(key, None)
        else:
            db.put(key, value)
            store._key_index[key] = partition
    elif value is None:
        store.pop(key, None)
    else:
        store[key] = value
