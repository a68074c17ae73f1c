"""Shopify webhooks through the HTTP ingest: signatures, every fixture topic, drift, contradictions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from circuitwatch.events import Event
from circuitwatch.metrics.stats import TrackerStats
from circuitwatch.streams.dead_letter import DeadLetter
from circuitwatch.streams.ingest_http import WebhookIngest, make_app
from circuitwatch.streams.sources.mapping import find_mapping
from circuitwatch.streams.sources.shopify import Delivery, ShopifyMapper
from circuitwatch.streams.sources.signature import sign, verify
from circuitwatch.streams.tracker import CircuitTracker

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
SECRET = b"test-webhook-secret"
ORDER = "820982911946154508"
FO_GID = "gid://shopify/FulfillmentOrder/1"

# topic -> (source, canonical type, status) or None when the topic is counted as ignored
EXPECTED: dict[str, tuple[str, str, str] | None] = {
    "orders/create": ("storefront", "order_placed", "open"),
    "orders/updated": ("storefront", "status_changed", "cancelled"),  # the sample carries cancelled_at
    "orders/cancelled": ("storefront", "cancelled", "cancelled"),
    "orders/fulfilled": ("storefront", "status_changed", "fulfilled"),
    "orders/partially_fulfilled": ("storefront", "status_changed", "partially_fulfilled"),
    "orders/paid": None,
    "orders/edited": None,
    "fulfillments/create": ("store", "staged", "pending"),
    "fulfillments/update": ("store", "staged", "pending"),
    "refunds/create": None,  # the sample restocks nothing
    "inventory_levels/update": None,
    "locations/update": None,
    "fulfillment_events/create": None,
    "fulfillment_orders/cancellation_request_submitted": ("store", "cancel_requested", "in_progress"),
    "fulfillment_orders/cancellation_request_accepted": ("store", "cancelled", "closed"),
    "fulfillment_orders/cancellation_request_rejected": ("store", "status_changed", "cancellation_rejected"),
    "fulfillment_orders/cancelled": ("store", "cancelled", "cancelled"),
    "fulfillment_orders/order_routing_complete": ("store", "status_changed", "open"),
    "fulfillment_orders/line_items_prepared_for_pickup": ("store", "ready_for_pickup", "open"),
    "fulfillment_orders/moved": ("store", "status_changed", "moved"),
    "fulfillment_orders/placed_on_hold": ("store", "status_changed", "on_hold"),
    "fulfillment_orders/hold_released": ("store", "status_changed", "open"),
    "fulfillment_orders/split": ("store", "status_changed", "split"),
    "fulfillment_orders/merged": ("store", "status_changed", "merged"),
    "fulfillment_orders/fulfillment_request_submitted": ("store", "status_changed", "fulfillment_requested"),
    "fulfillment_orders/fulfillment_request_accepted": ("store", "status_changed", "in_progress"),
    "fulfillment_orders/fulfillment_request_rejected": ("store", "status_changed", "open"),
    "fulfillment_orders/progress_reported": ("store", "status_changed", "in_progress"),
    "fulfillment_orders/scheduled_fulfillment_order_ready": ("store", "status_changed", "open"),
}


def fixture(topic: str) -> bytes:
    return (FIXTURES / (topic.replace("/", "__") + ".json")).read_bytes()


def headers(
    topic: str, body: bytes, event_id: str, at: str = "2026-11-27T14:00:00Z", secret: bytes = SECRET
) -> dict[str, str]:
    return {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": at,
        "Content-Type": "application/json",
    }


class Harness:
    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        self.stats = TrackerStats()
        self.dead = DeadLetter(tmp_path / "dead.jsonl", self.stats)
        self.received: list[Event] = []
        self.ingest = WebhookIngest(
            secret=SECRET, dead_letter=self.dead, mappings={"generic-oms": find_mapping("generic-oms")}, **kw
        )

    def sink(self, events: list[Event]) -> None:
        self.received.extend(events)

    def run(self, scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
        async def main() -> None:
            async with TestClient(TestServer(make_app(self.ingest, self.sink))) as client:
                await scenario(client)

        asyncio.run(main())

    def dead_lines(self) -> list[dict[str, Any]]:
        self.dead.close()
        path = self.dead.path
        assert path is not None
        return [msgspec.json.decode(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def test_fixture_dir_covers_every_expected_topic() -> None:
    on_disk = {p.stem.replace("__", "/") for p in FIXTURES.glob("*.json")}
    assert on_disk == set(EXPECTED)


def test_every_fixture_posted_with_a_valid_signature_maps_to_the_right_event(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    replies: dict[str, tuple[int, dict[str, Any]]] = {}

    async def scenario(client: TestClient[Any, Any]) -> None:
        for n, topic in enumerate(EXPECTED):
            body = fixture(topic)
            resp = await client.post("/webhooks/shopify", data=body, headers=headers(topic, body, f"evt-{n}"))
            replies[topic] = (resp.status, await resp.json())

    h.run(scenario)
    fo_topics = [t for t in EXPECTED if t.startswith("fulfillment_orders/")]
    # Fulfillment-order bodies carry no order id: parked (202) until the link is learned.
    assert all(replies[t] == (202, {"accepted": 0, "parked": 1}) for t in fo_topics)
    assert h.ingest.mapper.index.parked_count == len(fo_topics)
    released = h.ingest.mapper.learn(FO_GID, int(ORDER))
    assert not released.rejected
    by_topic = {ev.attrs["shopify_topic"]: ev for ev in [*h.received, *released.events]}
    for topic, want in EXPECTED.items():
        if want is None:
            assert replies[topic][0] == 200
            assert "ignored" in replies[topic][1], topic
            assert topic not in by_topic
            continue
        ev = by_topic[topic]
        assert (ev.source, ev.type, ev.status) == want, topic
        assert ev.order_id == ORDER  # exact: 820982911946154508 is above 2^53
        assert ev.occurred_at.isoformat() == "2026-11-27T14:00:00+00:00"  # X-Shopify-Triggered-At
        assert ev.event_id.startswith("evt-")
    placed = by_topic["orders/create"]
    first = placed.lines[0]
    assert (first.line_id, first.sku, first.qty, len(placed.lines)) == ("487817672276298554", "SKU2006-001", 1, 5)
    assert by_topic["fulfillment_orders/moved"].store_id == "1"  # destination gid://shopify/Location/1
    assert h.dead_lines() == []
    assert sum(h.stats.rejected.values()) == 0


def test_forged_or_missing_signature_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    body = fixture("orders/cancelled")
    statuses: list[int] = []

    async def scenario(client: TestClient[Any, Any]) -> None:
        forged = headers("orders/cancelled", body, "evt-1", secret=b"not-the-secret")
        statuses.append((await client.post("/webhooks/shopify", data=body, headers=forged)).status)
        tampered = headers("orders/cancelled", body, "evt-1")
        statuses.append((await client.post("/webhooks/shopify", data=body + b" ", headers=tampered)).status)
        missing = {k: v for k, v in headers("orders/cancelled", body, "evt-1").items() if "Hmac" not in k}
        statuses.append((await client.post("/webhooks/shopify", data=body, headers=missing)).status)
        garbage = {**headers("orders/cancelled", body, "evt-1"), "X-Shopify-Hmac-Sha256": "%%%"}
        statuses.append((await client.post("/webhooks/shopify", data=body, headers=garbage)).status)
        # the refused event id was not remembered: the genuine delivery is accepted
        ok = await client.post("/webhooks/shopify", data=body, headers=headers("orders/cancelled", body, "evt-1"))
        statuses.append(ok.status)

    h.run(scenario)
    assert statuses == [401, 401, 401, 401, 200]
    assert [ev.type for ev in h.received] == ["cancelled"]
    assert h.dead_lines() == []
    assert h.ingest.counts[("shopify", "unauthorized")] == 4


def test_no_secret_configured_refuses_everything(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.ingest.secret = None
    body = fixture("orders/create")
    reply = h.ingest.shopify(body, headers("orders/create", body, "e"))
    assert reply.status == 401
    assert reply.events == []


def test_redelivery_with_the_same_event_id_is_deduplicated(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    body = fixture("orders/create")
    first = h.ingest.shopify(body, headers("orders/create", body, "evt-9"))
    again = h.ingest.shopify(body, headers("orders/create", body, "evt-9"))
    assert (first.status, len(first.events)) == (200, 1)
    assert (again.status, again.body, again.events) == (200, {"duplicate": True}, [])


def test_body_over_the_limit_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_body=4096)
    body = fixture("orders/create")  # ~15 KB
    statuses: list[int] = []

    async def scenario(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/webhooks/shopify", data=body, headers=headers("orders/create", body, "e1"))
        statuses.append(resp.status)

    h.run(scenario)
    assert statuses == [413]
    assert h.received == []
    assert h.ingest.counts[("shopify", "too_large")] == 1


def test_ids_beyond_64_bits_stay_exact() -> None:
    body = fixture("orders/create").replace(ORDER.encode(), b"123456789012345678901234567890", 1)
    result = ShopifyMapper().map(Delivery("orders/create", body, event_id="e", triggered_at="2026-11-27T10:00:00Z"))
    assert [ev.order_id for ev in result.events] == ["123456789012345678901234567890"]


def _drifted(topic: str, old: bytes, new: bytes) -> bytes:
    body = fixture(topic)
    assert old in body
    return body.replace(old, new, 1)


@pytest.mark.parametrize(
    ("topic", "body", "at", "field", "reason"),
    [
        ("orders/updated", _drifted("orders/updated", b'"cancelled_at"', b'"canceled_at"'), "2026-11-27T10:00:00Z",
         "cancelled_at", "renamed_field"),
        ("orders/create", _drifted("orders/create", b'"line_items"', b'"lineItems"'), "2026-11-27T10:00:00Z",
         "line_items", "renamed_field"),
        ("fulfillments/create", _drifted("fulfillments/create", b'"status": "pending"', b'"status": "picked"'),
         "2026-11-27T10:00:00Z", "status", "unknown_value"),
        ("orders/create", _drifted("orders/create", b'"quantity": 1,', b'"quantity": "1",'), "2026-11-27T10:00:00Z",
         "line_items[0].quantity", "wrong_type"),
        ("orders/create", fixture("orders/create"), "2026-11-27T10:00:00", "X-Shopify-Triggered-At",
         "naive_timestamp"),
        ("orders/create", _drifted("orders/create", b'"id": 820982911946154508', b'"id": 8.2e17'),
         "2026-11-27T10:00:00Z", "id", "wrong_type"),
        ("carts/create", b"{}", "2026-11-27T10:00:00Z", "X-Shopify-Topic", "unknown_topic"),
    ],
)  # fmt: skip
def test_drift_is_rejected_with_field_and_reason_and_counted(
    tmp_path: Path, topic: str, body: bytes, at: str, field: str, reason: str
) -> None:
    h = Harness(tmp_path)
    reply = h.ingest.shopify(body, headers(topic, body, "evt-drift", at=at))
    assert reply.status == 200  # verified, dead-lettered: a Shopify retry could not fix it
    assert reply.events == []
    [rej] = reply.body["rejected"]
    assert (rej["field"], rej["reason"]) == (field, reason)
    source = ShopifyMapper().source_of(topic)
    assert h.stats.rejected[(source, reason)] == 1
    [dead] = h.dead_lines()
    assert (dead["field"], dead["reason"], dead["source"]) == (field, reason, source)
    assert dead["file"] == "POST /webhooks/shopify evt-drift"


def test_fulfillment_order_link_is_learned_from_payloads_that_carry_both() -> None:
    m = ShopifyMapper()
    at = "2026-11-27T14:00:00Z"
    parked = m.map(Delivery("fulfillment_orders/cancelled", fixture("fulfillment_orders/cancelled"), "e1", at))
    assert (parked.events, parked.parked) == ([], 1)
    # orders/create teaches the order's line item ids ...
    m.map(Delivery("orders/create", fixture("orders/create"), "e2", at))
    # ... and a fulfillment order resource (REST shape) with line items links FO 7 to that order.
    rest_fo = {"fulfillment_order": {"id": 7, "status": "open", "line_items": [
        {"id": 1, "fulfillment_order_id": 7, "line_item_id": 487817672276298554, "quantity": 1}]}}  # fmt: skip
    assert m.index.resolve("7") is None
    m.map(Delivery("fulfillment_orders/hold_released", msgspec.json.encode(rest_fo), "e3", at))
    assert m.index.resolve("7") == ORDER
    # A fulfillment order carrying its order id links directly and releases the parked delivery;
    # the replacement fulfillment order of the cancelled one belongs to the same order.
    direct = {"fulfillment_order": {"id": FO_GID, "order_id": int(ORDER), "status": "open"}}
    out = m.map(Delivery("fulfillment_orders/order_routing_complete", msgspec.json.encode(direct), "e4", at))
    assert [(e.type, e.order_id) for e in out.events] == [("status_changed", ORDER), ("cancelled", ORDER)]
    assert m.index.resolve("2") == ORDER  # gid://shopify/FulfillmentOrder/2 replaced 1
    assert m.index.parked_count == 0


def test_a_never_linked_fulfillment_order_is_rejected_not_dropped() -> None:
    m = ShopifyMapper()
    m.map(Delivery("fulfillment_orders/cancelled", fixture("fulfillment_orders/cancelled"), "e1", "2026-11-27T14:00Z"))
    [rej] = m.expire(0)
    assert (rej.reason, rej.field, rej.source) == ("unresolved_order", "fulfillment_order.id", "store")


def test_storefront_reading_the_cancel_as_an_update_is_a_storefront_contradiction(tmp_path: Path) -> None:
    """The OMS cancels; the storefront keeps sending orders/updated with the order still open."""
    h = Harness(tmp_path)
    placed = fixture("orders/create").replace(b'"cancelled_at": "2021-12-31T19:00:00-05:00"', b'"cancelled_at": null')
    assert placed != fixture("orders/create")
    oms_cancel = msgspec.json.encode(
        {"eventId": "oms-1", "eventType": "ORDER_CANCELLED", "eventTime": "2026-11-27T14:00:00Z",
         "order": {"orderNumber": ORDER, "status": "CANCELLED"}}
    )  # fmt: skip
    replies = [
        h.ingest.shopify(placed, headers("orders/create", placed, "s-1", at="2026-11-27T13:00:00Z")),
        h.ingest.mapped("generic-oms", oms_cancel, {}),
        h.ingest.shopify(placed, headers("orders/updated", placed, "s-2", at="2026-11-27T14:00:40Z")),
        # much later traffic moves the watermark past every deadline
        h.ingest.shopify(placed, headers("orders/updated", placed, "s-3", at="2026-11-27T15:00:00Z")),
    ]
    assert [r.status for r in replies] == [200, 200, 200, 200]
    updates = [ev for r in replies for ev in r.events if ev.type == "status_changed"]
    assert [ev.status for ev in updates] == ["open", "open"]
    tracker = CircuitTracker(stats=h.stats)
    outcomes = {}
    for r in replies:
        for ev in r.events:
            for o in tracker.on_event(ev):
                outcomes[o.order_id] = o
    record = outcomes[ORDER]
    assert record.legs["storefront"].outcome == "contradicted"
    assert record.state == "broken"
    assert record.origin == "oms"
    assert h.stats.contradictions[("storefront", "status_changed")] == 2


def test_signature_matches_shopify_reference_computation() -> None:
    # base64(HMAC-SHA256("hush", "hello")) computed independently
    assert sign(b"hello", b"hush") == "zvT9tMFR8adPsBeM6dkn8QqflvWemcuCShl3MgGBDKI="
    assert verify(b"hello", sign(b"hello", b"hush"), b"hush")
    assert not verify(b"hello", None, b"hush")
