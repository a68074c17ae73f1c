"""Throughput and latency of the Faust worker on a real broker, against two floors.

    scripts/kafka.sh up
    CIRCUITWATCH_BROKER=kafka://127.0.0.1:9092 .venv/bin/python bench/worker.py --orders 5000

Same run, same preloaded raw topics (a simulated day), three consumers:
  raw      aiokafka consumer + msgspec decode of every event (the floor of Python + Kafka)
  bare     a Faust agent per raw topic that only iterates (Faust's own per-event cost), uvloop
  worker   `circuitwatch worker`: validate -> bopis.events -> tracker -> table + outcomes
Prints events/s of each, worker/bare and worker/raw, then feeds a paced stream into
the caught-up worker and prints event-to-outcome latency percentiles (Kafka record
timestamps: outcome record minus the last raw event of that order before it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from circuitwatch.events import SOURCES, decode, encode  # noqa: E402
from circuitwatch.streams.faust.produce import produce_lines  # noqa: E402
from circuitwatch.streams.faust.settings import WorkerSettings, from_env  # noqa: E402
from circuitwatch.streams.faust.topics import ensure_topics  # noqa: E402

BARE_APP = f"""
import sys, time, asyncio, logging
import faust, uvloop
prefix, broker, n, parts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
logging.basicConfig(level=logging.WARNING)
for name in ("faust", "mode", "aiokafka"):
    logging.getLogger(name).setLevel(logging.WARNING)
app = faust.App(prefix + "bare", broker=broker, value_serializer="raw", key_serializer="raw",
                web_enabled=False, topic_partitions=parts, datadir=sys.argv[5])
topics = app.topic(*[prefix + "bopis.raw." + s for s in {SOURCES!r}])
state = {{"n": 0, "t0": 0.0}}
@app.agent(topics)
async def bare(stream):
    async for value in stream:
        if state["n"] == 0:
            state["t0"] = time.perf_counter()
        state["n"] += 1
        if state["n"] == n:
            print(f"BARE {{n}} {{time.perf_counter() - state['t0']:.3f}}", flush=True)
loop = uvloop.new_event_loop()
asyncio.set_event_loop(loop)
cfg = {{"version": 1, "disable_existing_loggers": False,
       "handlers": {{"e": {{"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}}}},
       "root": {{"level": "WARNING", "handlers": ["e"]}}}}
faust.Worker(app, loop=loop, loglevel="WARNING", logging_config=cfg, quiet=True,
             redirect_stdouts=False).execute_from_commandline()
"""


async def raw_floor(settings: WorkerSettings, n: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *(settings.raw(s) for s in SOURCES),
        bootstrap_servers=settings.bootstrap,
        group_id=settings.topic_prefix + "raw-floor",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen, t0 = 0, 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                if records and not seen:
                    t0 = time.perf_counter()
                for rec in records:
                    decode(rec.value)
                    seen += 1
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


def bare_faust(settings: WorkerSettings, n: int, tmp: str, timeout: float = 120.0) -> float | None:
    out = Path(tmp) / "bare.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BARE_APP,
                settings.topic_prefix,
                settings.broker,
                str(n),
                str(settings.partitions),
                tmp,
            ],
            stdout=fh,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"BARE (\d+) ([\d.]+)", out.read_text())
            if m:
                return int(m.group(1)) / float(m.group(2))
            time.sleep(0.2)
        return None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def metric_sum(url: str, prefix: str | tuple[str, ...]) -> float:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def start_worker(settings: WorkerSettings, tmp: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITWATCH_")}
    env.update(
        CIRCUITWATCH_BROKER=settings.broker,
        CIRCUITWATCH_APP_ID=settings.app_id,
        CIRCUITWATCH_TOPIC_PREFIX=settings.topic_prefix,
        CIRCUITWATCH_PARTITIONS=str(settings.partitions),
        CIRCUITWATCH_METRICS_PORT="0",
        CIRCUITWATCH_CLOCK="event",
        CIRCUITWATCH_DATADIR=tmp,
        CIRCUITWATCH_OUTCOME_STORE=str(Path(tmp) / "outcomes.db"),  # the sink runs, as by default
    )
    fh = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "circuitwatch", "worker"], env=env, stdout=fh, stderr=fh)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"metrics on (http://\S+)", log.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        time.sleep(0.1)
    raise SystemExit(f"worker did not start; see {log}")


def wait_events(url: str, n: int, timeout: float) -> tuple[float, float]:
    """(first-event time, all-events time) seen through /metrics, polled every 200 ms.

    Not faster: rendering /metrics costs the worker CPU, and a 50 ms poll took ~10%
    of it (py-spy), which Prometheus' 15 s scrape never would.
    """
    t_first = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = metric_sum(url, ("circuitwatch_events_total{", "circuitwatch_events_duplicate_total{"))
        now = time.perf_counter()
        if got and not t_first:
            t_first = now
        if got >= n:
            return t_first, now
        time.sleep(0.2)
    raise SystemExit(f"worker applied fewer than {n} events in {timeout}s")


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "no samples"
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return (
        " ".join(f"p{int(q * 100)}={pick(q) * 1000:.0f}ms" for q in (0.5, 0.9, 0.99))
        + f" max={values[-1] * 1000:.0f}ms"
    )


async def latency(settings: WorkerSettings, lines: list[bytes], rate: float) -> list[float]:
    start = time.time()
    chunk = max(1, int(rate / 20))
    for i in range(0, len(lines), chunk):
        await produce_lines(lines[i : i + chunk], settings)
        await asyncio.sleep(max(0.0, start + (i + chunk) / rate - time.time()))
    await asyncio.sleep(3)
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=10000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--latency-orders", type=int, default=300)
    ap.add_argument("--rate", type=float, default=500.0, help="events/s for the latency phase")
    args = ap.parse_args()
    from circuitwatch.streams.simulate import SimConfig, simulate

    broker = os.environ.get("CIRCUITWATCH_BROKER", "kafka://127.0.0.1:9092")
    prefix = "bench" + uuid.uuid4().hex[:8] + "."
    settings = from_env({}, broker=broker, topic_prefix=prefix, app_id=prefix + "worker", partitions=args.partitions)
    events = simulate(SimConfig(orders=args.orders, seed=42)).events
    lines = [encode(e) for e in events]
    unique = len({(e.source, e.event_id) for e in events})
    asyncio.run(ensure_topics(settings))
    t = time.perf_counter()
    asyncio.run(produce_lines(lines, settings))
    print(f"loaded {len(lines)} events ({args.orders} orders) in {time.perf_counter() - t:.1f}s into {prefix}*")

    raw = asyncio.run(raw_floor(settings, len(lines)))
    print(f"raw aiokafka + decode : {raw:9.0f} ev/s")
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_faust(settings, len(lines), tmp)
        print(f"bare Faust iteration  : {bare:9.0f} ev/s" if bare else "bare Faust iteration  : no result in 120 s")
        log = Path(tmp) / "worker.log"
        proc, url = start_worker(settings, tmp, log)
        try:
            t0, t1 = wait_events(url, len(lines), timeout=600)
            worker = len(lines) / (t1 - t0)
            print(f"circuitwatch worker   : {worker:9.0f} ev/s  (raw topic -> validate -> tracker -> outcomes)")
            if bare:
                print(f"worker / bare Faust   : {worker / bare:.2f}   (target >= 0.75)")
            print(f"worker / raw aiokafka : {worker / raw:.2f}")
            # latency: a later day into the caught-up worker, paced
            later = simulate(SimConfig(orders=args.latency_orders, seed=43)).events
            tagged = [encode(e.__class__(**{**_fields(e), "order_id": "L" + e.order_id})) for e in later]
            since = time.time() * 1000
            asyncio.run(latency(settings, tagged, args.rate))
            raw_ts: dict[bytes, list[int]] = {}
            for src in SOURCES:
                for key, ts in asyncio.run(_stamped(settings.bootstrap, settings.raw(src))):
                    if key is not None and ts >= since:
                        raw_ts.setdefault(key, []).append(ts)
            lat = []
            for key, ts in asyncio.run(_stamped(settings.bootstrap, settings.outcomes)):
                before = [r for r in raw_ts.get(key or b"", []) if r <= ts]
                if before and ts >= since:
                    lat.append((ts - max(before)) / 1000)
            print(f"event -> outcome at {args.rate:.0f} ev/s: {percentiles(lat)} ({len(lat)} outcome records)")
            print(f"unique events {unique}; worker log {log}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def _fields(e: object) -> dict[str, object]:
    import msgspec

    return msgspec.structs.asdict(e)  # type: ignore[arg-type]


async def _stamped(bootstrap: str, topic: str) -> list[tuple[bytes | None, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        md = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(md.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, int]] = []
        left = {tp for tp in tps if end[tp] > 0}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                out.extend((r.key, r.timestamp) for r in records)
                if records[-1].offset + 1 >= end[tp]:
                    left.discard(tp)
        return out
    finally:
        await consumer.stop()


if __name__ == "__main__":
    main()
