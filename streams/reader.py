"""Read canonical events from JSONL files (`-` is stdin, `.gz` is gunzipped).

Bad lines never stop the stream: each becomes a `Rejected` (file, line, field,
reason) handed to `on_reject`, and reading goes on.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, cast

from circuitwatch.events import DECODE_ERRORS, Event, Rejected, decode, reject


@contextmanager
def open_input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
    elif path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            yield cast(IO[bytes], fh)
    else:
        with open(path, "rb") as fh:
            yield fh


def read_lines(lines: Iterable[bytes], name: str, on_reject: Callable[[Rejected], None]) -> Iterator[Event]:
    """Decode each line; blank lines are skipped, bad ones rejected.

    A blank line never decodes, so it is recognised only after `decode` failed:
    the common good line pays for no `strip()` copy.
    """
    for n, raw in enumerate(lines, 1):
        try:
            ev = decode(raw)
        except DECODE_ERRORS as e:
            if raw.strip():
                on_reject(reject(raw, e, file=name, line=n))
            continue
        yield ev


def read_events(paths: Iterable[str], on_reject: Callable[[Rejected], None]) -> Iterator[Event]:
    for path in paths:
        with open_input(path) as fh:
            yield from read_lines(fh, "<stdin>" if path == "-" else path, on_reject)
