"""Webhook ingest served from the worker: Shopify and mapped JSON straight into `bopis.events`.

The same `WebhookIngest` as the standalone `circuitwatch ingest` (signature check,
dedupe, mapping, drift detection); only the sinks differ: mapped events go to the
canonical topic keyed by order id, rejects to `bopis.dead-letter`. Faust's own web
server stays off (it binds 0.0.0.0); this listener binds 127.0.0.1 unless configured.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from circuitwatch.events import Event, Rejected, encode
from circuitwatch.streams.faust.partitioning import order_key

if TYPE_CHECKING:
    from circuitwatch.streams.faust.app import Runtime


async def start_webhooks(rt: Runtime) -> Any:
    """Start the listener on (webhooks_host, webhooks_port); returns the aiohttp runner."""
    from aiohttp import web

    from circuitwatch.streams.ingest_http import WebhookIngest, make_app
    from circuitwatch.streams.sources.mapping import available, find_mapping
    from circuitwatch.streams.sources.signature import load_secret

    s = rt.settings
    in_flight: set[asyncio.Future[None]] = set()

    def dead_letter(rejected: Rejected) -> None:
        task = asyncio.ensure_future(rt.dead_letter(rejected))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    async def sink(events: list[Event]) -> None:
        for ev in events:
            await rt.events_topic.send(key=order_key(ev.order_id), value=encode(ev))

    mappings = {name: find_mapping(name) for name in available()}
    ingest = WebhookIngest(secret=load_secret(), dead_letter=dead_letter, mappings=mappings)
    if rt.metrics is not None:
        ingest.register(rt.metrics.registry)
    runner = web.AppRunner(make_app(ingest, sink))
    await runner.setup()
    await web.TCPSite(runner, s.webhooks_host, s.webhooks_port).start()
    return runner
