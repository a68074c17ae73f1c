"""Start a worker process: topics, metrics listener, logging, uvloop, Faust.

Measured Faust pitfalls handled here: its web server binds 0.0.0.0:6066 unless
disabled the way `faust worker --without-web` does it (so it is disabled, and
`/metrics` is ours, on 127.0.0.1 by default); `-l warn` leaves the root logger
at DEBUG, so the faust, mode and aiokafka loggers are set explicitly; uvloop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

from circuitwatch.streams.faust.app import build_app
from circuitwatch.streams.faust.settings import WorkerSettings
from circuitwatch.streams.faust.topics import ensure_topics
from circuitwatch.streams.faust.worker_metrics import start_metrics

NOISY = ("faust", "mode", "aiokafka", "kafka", "venusian")


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.WARNING


def configure_logging(loglevel: str) -> dict[str, Any]:
    """Applied here (topic creation logs before Faust starts) and returned for Faust, which applies it again."""
    level = logging.getLevelName(_level(loglevel))
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {name: {"level": level} for name in NOISY}
        | {
            "circuitwatch": {"level": logging.getLevelName(min(_level(loglevel), logging.INFO))},
            # One warning per batch otherwise: Faust's send_soon buffer holds 100 messages and a batch
            # writes one changelog record per changed order; the conductor drains it, as designed.
            "faust.transport.producer": {"level": logging.getLevelName(max(_level(loglevel), logging.ERROR))},
        },
    }
    logging.config.dictConfig(config)
    return config


# Faust allocates several objects per message, so CPython's default (700) ran a young
# collection every ~100 messages, and every 100th of them was a full one over the
# tracker's state. Measured with bench/worker.py: ~5-10% more events/s at 20000.
GC_THRESHOLDS = (20_000, 50, 100)


def run_worker(settings: WorkerSettings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    import faust
    import uvloop

    gc.set_threshold(*GC_THRESHOLDS)
    logging_config = configure_logging(settings.loglevel)
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    app, rt = build_app(settings)
    server = start_metrics(rt)
    print(f"circuitwatch worker: metrics on {server.url}", file=sys.stderr, flush=True)
    worker = faust.Worker(
        app,
        loop=loop,
        loglevel=logging.getLevelName(_level(settings.loglevel)),
        logging_config=logging_config,
        redirect_stdouts=False,
        quiet=True,
    )
    try:
        worker.execute_from_commandline()
    finally:
        server.close()
