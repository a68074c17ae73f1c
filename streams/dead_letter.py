"""The dead letter: every rejected input, kept with its reason and counted."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import orjson

from circuitwatch.events import Rejected
from circuitwatch.metrics.stats import TrackerStats


class DeadLetter:
    """Appends rejects to a JSONL file (opened on the first reject) and counts them."""

    def __init__(self, path: str | Path | None, stats: TrackerStats, *, echo: IO[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.stats = stats
        self.echo = echo
        self.count = 0
        self._fh: IO[bytes] | None = None

    def __call__(self, rejected: Rejected) -> None:
        self.count += 1
        self.stats.reject(rejected.source, rejected.reason)
        if self.echo is not None:
            print(rejected.describe(), file=self.echo)
        if self.path is not None:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("ab")
            self._fh.write(orjson.dumps(rejected.dead_letter()) + b"\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
