"""Which partition a key lands in: the same murmur2 as Kafka's Java client.

The tracker table is written with `use_partitioner=True` and **bytes** keys, so a
key's changelog partition is exactly its `bopis.events` partition (a `str` key
would be JSON-encoded with quotes and hash elsewhere about 3 times in 4).
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=1 << 16)  # aiokafka's murmur2 is pure Python (~2 µs); an order's key recurs per event
def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def order_key(order_id: str) -> bytes:
    return order_id.encode()
