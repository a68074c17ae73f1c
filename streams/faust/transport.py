"""Faust's aiokafka transport with a bookkeeping fix: offset commits after a restart.

The defect (faust-streaming 0.15.3, any aiokafka; same mechanism as robinhood/faust#625):
after a restart, `Recovery.on_recovery_completed` resumes the stream partitions
(the flow is already active) and only then seeks them to their committed offsets.
Records fetched in that window are processed and acked, the seek rewinds the
consumer's read offset to the committed one, and the next record of the batch
already fetched is taken for a hole in the partition: `_add_gap(committed + 1,
offset)`. That gap covers offsets already in `_acked[tp]`, and `_new_offset`
extends `_acked[tp]` with the gap without removing duplicates. With every offset
listed twice, the first run of consecutive offsets is one or two long, so each
commit (every `commit_interval`) moved a partition's committed offset by one:
the worker "crawled" for minutes, with nothing lost and nothing logged.

`Consumer._new_offset` here folds the gap into `_acked[tp]` without duplicates
(and removes all of the folded ranges, where Faust leaves their last offset
behind), then lets Faust's own `_new_offset` pick the run to commit as before.

The same window has a second race, which stopped a partition's commits for good:
the commit timer can commit (and drop from `_acked[tp]`) offsets while the seek
is reading the committed offsets, and the seek then sets `_committed_offset[tp]`
to the older value. `_acked[tp]` then starts far above it, and Faust's
"hole at the head" guard withholds every later commit of that partition.
`Consumer.perform_seek` here runs with the commit lock held (Faust's
`_commit_fut`): a commit in progress finishes first, and a commit that comes
due during the seek is skipped (the next tick commits).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.sensors import Sensor
from faust.transport.drivers import aiokafka as aiokafka_driver
from mode.utils.futures import notify


def fold_gaps(acked: list[int], gap: Any) -> None:
    """Add the gap offsets up to max(acked) to `acked`, once each; drop them from `gap`.

    `gap` is the IntervalTree of offsets known to carry no record (compaction,
    control records, or a seek); `acked` is the list of processed offsets.
    """
    if not acked or not gap:
        return
    max_offset = max(acked)
    intervals = sorted(gap.overlap(0, max_offset), key=lambda iv: iv.begin)
    if not intervals:
        return
    present = set(acked)
    end = max_offset + 1
    for iv in intervals:
        for offset in range(iv.begin, iv.end):
            if offset not in present:
                present.add(offset)
                acked.append(offset)
        end = max(end, iv.end)
    gap.chop(0, end)


class Consumer(aiokafka_driver.Consumer):
    def _new_offset(self, tp: Any) -> int | None:
        fold_gaps(self._acked[tp], self._gap[tp])
        result: int | None = super()._new_offset(tp)
        return result

    async def perform_seek(self) -> None:
        while self._commit_fut is not None:  # another commit may start as the first one ends
            await self.maybe_wait_for_commit_to_finish()
            await asyncio.sleep(0)  # a cancelled commit future returns at once: let its commit clear it
        self._commit_fut = asyncio.Future()
        try:
            await super().perform_seek()
        finally:
            fut, self._commit_fut = self._commit_fut, None
            notify(fut)


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """faust.App whose consumer is the `Consumer` above (kafka:// brokers).

    Without Faust's Monitor sensor on the per-event path (a no-op sensor in its
    place): it keeps statistics for Faust's web UI, which stays off (it binds
    0.0.0.0), and cost ~3% of the worker's CPU (py-spy). The Monitor object
    stays, as the consumer reports commits and end offsets to it directly.
    """

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Any:
        deps = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        self.sensors.add(Sensor())  # no-op; with no sensor at all Faust warns at every rebalance
        return deps
