"""HTTP ingest: Shopify webhooks and mapped JSON from any system, to canonical events.

`WebhookIngest` is the logic, free of any web framework: (body, headers) in, a
`Reply` (HTTP status, JSON body, the mapped events) out. `make_app` mounts it on
aiohttp for the standalone `circuitwatch ingest`; the Faust worker's web server
mounts the same object (see docs/sources.md). Neither layer waits on the tracker:
the caller hands `Reply.events` to its sink and answers.

Security: a Shopify request is verified (HMAC of the raw body, constant time)
before anything is parsed; a bad or missing signature gets 401 and nothing is
stored, dead-lettered or deduplicated (unauthenticated bytes must not fill the
disk), only counted. A body over the size limit is refused the same way.
Verified payloads that do not map are dead-lettered with their reason and
answered 200, so Shopify does not retry a payload that cannot improve.
"""

from __future__ import annotations

import contextlib
import hmac
import inspect
import os
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from circuitwatch.events import Event, Rejected
from circuitwatch.streams.sources.common import MISSING_FIELD, Drift, Mapped, iter_payloads, make_reject
from circuitwatch.streams.sources.mapping import Mapping as SourceMapping
from circuitwatch.streams.sources.shopify import Delivery, ShopifyMapper
from circuitwatch.streams.sources.signature import verify

ENV_INGEST_TOKEN = "CIRCUITWATCH_INGEST_TOKEN"
MAX_BODY = 1 << 20  # Shopify's largest order payloads are a few hundred KiB
RESULTS = ("accepted", "duplicate", "rejected", "ignored", "parked", "unauthorized", "too_large", "bad_request")

Sink = Callable[[list[Event]], Awaitable[None] | None]


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    events: list[Event] = field(default_factory=list)


class IngestCollector(Collector):
    """circuitwatch_ingest_requests_total{endpoint,result}: every request, whatever became of it."""

    def __init__(self, counts: Counter[tuple[str, str]], endpoints: Iterable[str]) -> None:
        self.counts = counts
        self.endpoints = tuple(endpoints)

    def collect(self) -> Iterable[Metric]:
        fam = CounterMetricFamily(
            "circuitwatch_ingest_requests",
            "HTTP ingest requests by endpoint and result.",
            labels=("endpoint", "result"),
        )
        values = {(e, r): 0 for e in self.endpoints for r in RESULTS} | dict(self.counts)
        for (endpoint, result), n in sorted(values.items()):
            fam.add_metric([endpoint, result], n)
        yield fam


class WebhookIngest:
    def __init__(
        self,
        *,
        secret: bytes | None,
        dead_letter: Callable[[Rejected], None],
        mapper: ShopifyMapper | None = None,
        mappings: Mapping[str, SourceMapping] | None = None,
        max_body: int = MAX_BODY,
        dedupe_size: int = 200_000,
        ingest_token: str | None = None,
    ) -> None:
        self.secret = secret
        self.dead_letter = dead_letter
        self.mapper = mapper or ShopifyMapper()
        self.mappings = dict(mappings or {})
        self.max_body = max_body
        self.dedupe_size = dedupe_size
        self.ingest_token = ingest_token if ingest_token is not None else os.environ.get(ENV_INGEST_TOKEN) or None
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.counts: Counter[tuple[str, str]] = Counter()

    def collector(self) -> IngestCollector:
        return IngestCollector(self.counts, ["shopify", *self.mappings])

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self.collector())

    # -- Shopify -------------------------------------------------------------

    def shopify(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST /webhooks/shopify."""
        h = _lower(headers)
        if len(body) > self.max_body:
            return self._count("shopify", "too_large", Reply(413, {"error": "body too large"}))
        if not verify(body, h.get("x-shopify-hmac-sha256"), self.secret):
            return self._count("shopify", "unauthorized", Reply(401, {"error": "invalid or missing signature"}))
        event_id = h.get("x-shopify-event-id") or None
        topic = h.get("x-shopify-topic", "").strip()
        ref = f"POST /webhooks/shopify {event_id or _request_id(h)}"
        if not topic:
            drift = Drift("X-Shopify-Topic", MISSING_FIELD, "header is missing")
            self.dead_letter(make_reject(body, drift, source="unknown", file=ref))
            return self._count("shopify", "bad_request", Reply(400, {"error": "X-Shopify-Topic header is missing"}))
        if event_id is not None and event_id in self.seen:
            self.seen.move_to_end(event_id)
            return self._count("shopify", "duplicate", Reply(200, {"duplicate": True}))
        mapped = self.mapper.map(
            Delivery(topic, body, event_id=event_id, triggered_at=h.get("x-shopify-triggered-at"), ref=ref)
        )
        if event_id is not None:
            self.seen[event_id] = None
            if len(self.seen) > self.dedupe_size:
                self.seen.popitem(last=False)
        return self._finish("shopify", mapped, always_ok=True)

    # -- any mapped system ---------------------------------------------------

    def mapped(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST /ingest/<name>: one JSON document, a JSON array or JSON lines, mapped by mappings/<name>.yaml."""
        h = _lower(headers)
        mapping = self.mappings.get(name)
        if mapping is None:
            return Reply(404, {"error": f"no mapping named {name!r}", "available": sorted(self.mappings)})
        if len(body) > self.max_body:
            return self._count(name, "too_large", Reply(413, {"error": "body too large"}))
        if self.ingest_token is not None:
            given = h.get("authorization", "").removeprefix("Bearer ").strip().encode()
            if not hmac.compare_digest(given, self.ingest_token.encode()):
                return self._count(name, "unauthorized", Reply(401, {"error": "invalid or missing token"}))
        ref = f"POST /ingest/{name} {_request_id(h)}"
        mapped = Mapped()
        for line, payload in iter_payloads(body, ref):
            mapped.extend(mapping.map_payload(payload, file=ref, line=line))
        for ev in list(mapped.events):
            fo = ev.attrs.get("fulfillment_order_id")
            if fo is not None:  # a system that knows both ids teaches the Shopify lookup
                with contextlib.suppress(Drift):  # an unreadable link is not this payload's drift
                    mapped.extend(self.mapper.learn(fo, ev.order_id))
        return self._finish(name, mapped, always_ok=False)

    def expire(self, max_age: float) -> int:
        """Dead-letter Shopify deliveries parked longer than max_age seconds (0: all, at shutdown)."""
        rejects = self.mapper.expire(max_age)
        for r in rejects:
            self.dead_letter(r)
        return len(rejects)

    # -- helpers -------------------------------------------------------------

    def _finish(self, endpoint: str, mapped: Mapped, *, always_ok: bool) -> Reply:
        for r in mapped.rejected:
            self.dead_letter(r)
        body: dict[str, Any] = {"accepted": len(mapped.events)}
        if mapped.rejected:
            body["rejected"] = [{"field": r.field, "reason": r.reason, "message": r.message} for r in mapped.rejected]
        if mapped.ignored:
            body["ignored"] = mapped.ignored
        if mapped.parked:
            body["parked"] = mapped.parked
        if mapped.events:
            result = "accepted"
        elif mapped.rejected:
            result = "rejected"
        elif mapped.parked:
            result = "parked"
        else:
            result = "ignored"
        status = 200 if always_ok or result != "rejected" else 422
        if result == "parked":
            status = 202
        return self._count(endpoint, result, Reply(status, body, mapped.events))

    def _count(self, endpoint: str, result: str, reply: Reply) -> Reply:
        self.counts[(endpoint, result)] += 1
        return reply


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _request_id(h: Mapping[str, str]) -> str:
    return (h.get("x-request-id") or uuid.uuid4().hex[:16])[:64]


async def deliver(sink: Sink, events: list[Event]) -> None:
    if events:
        result = sink(events)
        if inspect.isawaitable(result):
            await result


def make_app(ingest: WebhookIngest, sink: Sink, *, registry: CollectorRegistry | None = None) -> Any:
    """The aiohttp application: the two POST routes, /healthz, and /metrics when given a registry."""
    from aiohttp import web

    from circuitwatch.metrics.prometheus import exposition

    async def read(request: web.Request) -> bytes | None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None

    async def answer(reply: Reply) -> web.Response:
        await deliver(sink, reply.events)
        return web.json_response(reply.body, status=reply.status)

    async def shopify(request: web.Request) -> web.Response:
        body = await read(request)
        if body is None:
            return await answer(ingest._count("shopify", "too_large", Reply(413, {"error": "body too large"})))
        return await answer(ingest.shopify(body, request.headers))

    async def mapped(request: web.Request) -> web.Response:
        name = request.match_info["source"]
        body = await read(request)
        if body is None:
            return await answer(ingest._count(name, "too_large", Reply(413, {"error": "body too large"})))
        return await answer(ingest.mapped(name, body, request.headers))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def metrics(request: web.Request) -> web.Response:
        assert registry is not None
        return web.Response(body=exposition(registry), content_type="text/plain", charset="utf-8")

    app = web.Application(client_max_size=ingest.max_body)
    app.router.add_post("/webhooks/shopify", shopify)
    app.router.add_post("/ingest/{source}", mapped)
    app.router.add_get("/healthz", healthz)
    if registry is not None:
        app.router.add_get("/metrics", metrics)
    return app
