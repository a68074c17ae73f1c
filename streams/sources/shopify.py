"""Shopify webhooks, topic by topic, to canonical events.

Which system a topic speaks for: `orders/*` are the shop's own record of the
order, what the customer sees (`storefront`); `fulfillment_orders/*` and
`fulfillments/*` are the work at the fulfilling location, for BOPIS the store
(`store`); `refunds/create` that restocks is the reservation coming back
(`inventory`). All three are settings.

Fulfillment-order bodies carry no order id. `FulfillmentOrderIndex` learns
fulfillment order -> order from every payload that carries both (a fulfillment
order object with `order_id`, its line items' `fulfillment_order_id` +
`line_item_id` against line items seen on orders, replacement / moved / split /
merged fulfillment orders against their original). An event whose order is not
known yet is parked (bounded) and released when the link is learned; one never
resolved is rejected as `unresolved_order`, never dropped.

Ids are kept exact (parsed by msgspec as Python ints, never floats). The event
time is `X-Shopify-Triggered-At` when the webhook carries it, else the body's
own timestamp; the event id is `X-Shopify-Event-Id`, else derived from the
topic, object id and time (stable across redeliveries of a capture).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from circuitwatch.events import Event
from circuitwatch.streams.sources.common import (
    MISSING_FIELD,
    RENAMED_FIELD,
    UNKNOWN_TOPIC,
    UNKNOWN_VALUE,
    UNRESOLVED_ORDER,
    WRONG_TYPE,
    Drift,
    Mapped,
    build_event,
    gid_tail,
    make_reject,
    parse_json,
    parse_time,
    similar_key,
    to_id,
    to_qty,
    type_name,
)

ORDER_FULFILLMENT_STATUS = frozenset({"fulfilled", "partial", "restocked", "unfulfilled", "unshipped", "on_hold"})
FULFILLMENT_STATUS = {
    "pending": "staged",
    "open": "staged",
    "success": "picked_up",  # a pickup order's fulfilment is the handover
    "cancelled": "cancelled",
    "error": "status_changed",
    "failure": "status_changed",
}
FO_STATUS = frozenset({"open", "in_progress", "cancelled", "incomplete", "closed", "scheduled", "on_hold"})
RESTOCKING = frozenset({"cancel", "return", "legacy_restock"})
# Topics Shopify can send that carry nothing for the circuit: counted as ignored, not rejected.
NOT_CIRCUIT = {
    "orders/paid": "payment capture is not a circuit step",
    "orders/edited": "an order edit carries no status",
    "orders/delete": "a deleted order carries no status",
    "fulfillment_events/create": "carrier tracking is not a circuit step",
    "locations/update": "a location change carries no order",
    "inventory_levels/update": "a stock level per item and location carries no order id",
}


@dataclass(frozen=True)
class Delivery:
    """One webhook as received: topic, raw body and the headers that matter."""

    topic: str
    body: bytes
    event_id: str | None = None  # X-Shopify-Event-Id
    triggered_at: str | None = None  # X-Shopify-Triggered-At
    ref: str = "-"  # where it came from (file or request id), for the dead letter
    line: int = 0


@dataclass
class ShopifySettings:
    orders_source: str = "storefront"
    fulfillment_source: str = "store"
    refunds_source: str = "inventory"
    locations: dict[str, str] = field(default_factory=dict)  # Shopify location id -> store id


class FulfillmentOrderIndex:
    """Fulfillment order -> order, learned from payloads that carry both; bounded (LRU)."""

    def __init__(self, max_links: int = 500_000, max_parked: int = 10_000) -> None:
        self.max_links = max_links
        self.max_parked = max_parked
        self.orders: OrderedDict[str, str] = OrderedDict()  # fulfillment order id -> order id
        self.lines: OrderedDict[str, str] = OrderedDict()  # order line item id -> order id
        self.aliases: dict[str, str] = {}  # derived fulfillment order -> the one it came from
        self.parked: OrderedDict[str, list[tuple[float, Delivery]]] = OrderedDict()
        self.parked_count = 0

    def resolve(self, fo: str) -> str | None:
        seen = set()
        while fo not in self.orders and fo in self.aliases and fo not in seen:
            seen.add(fo)
            fo = self.aliases[fo]
        order = self.orders.get(fo)
        if order is not None:
            self.orders.move_to_end(fo)
        return order

    def learn(self, fo: str, order: str) -> list[Delivery]:
        """Record a link; returns the parked deliveries it releases (its derived ones too)."""
        self._put(self.orders, fo, order)
        items = self.parked.pop(fo, [])
        self.parked_count -= len(items)
        released = [d for _, d in items]
        for new, old in list(self.aliases.items()):
            if old == fo:
                del self.aliases[new]
                if new not in self.orders:
                    released += self.learn(new, order)
        return released

    def learn_line(self, line_item: str, order: str) -> None:
        self._put(self.lines, line_item, order)

    def alias(self, new: str, old: str) -> list[Delivery]:
        order = self.resolve(old)
        if order is not None:
            return self.learn(new, order)
        self.aliases[new] = old
        if len(self.aliases) > self.max_links:
            self.aliases.pop(next(iter(self.aliases)))
        return []

    def park(self, fo: str, delivery: Delivery, now: float) -> list[Delivery]:
        """Hold a delivery until its order is known; returns what overflow pushes out."""
        self.parked.setdefault(fo, []).append((now, delivery))
        self.parked_count += 1
        evicted = []
        while self.parked_count > self.max_parked:
            _, items = self.parked.popitem(last=False)
            self.parked_count -= len(items)
            evicted += [d for _, d in items]
        return evicted

    def expire(self, older_than: float) -> list[Delivery]:
        """Deliveries parked before `older_than` (wall time): to be rejected."""
        out: list[Delivery] = []
        for fo in list(self.parked):
            keep = [(t, d) for t, d in self.parked[fo] if t >= older_than]
            out += [d for t, d in self.parked[fo] if t < older_than]
            if keep:
                self.parked[fo] = keep
            else:
                del self.parked[fo]
        self.parked_count -= len(out)
        return out

    def _put(self, table: OrderedDict[str, str], key: str, value: str) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > self.max_links:
            table.popitem(last=False)


class ShopifyMapper:
    """Maps deliveries to events; keeps the fulfillment-order index between calls."""

    def __init__(self, settings: ShopifySettings | None = None, index: FulfillmentOrderIndex | None = None) -> None:
        self.settings = settings or ShopifySettings()
        self.index = index or FulfillmentOrderIndex()
        self.clock: Callable[[], float] = time.monotonic

    @staticmethod
    def topics() -> list[str]:
        return sorted([*_HANDLERS, *_FO_TOPICS])

    def source_of(self, topic: str) -> str:
        family = topic.split("/", 1)[0]
        if family == "orders":
            return self.settings.orders_source
        if family in ("fulfillment_orders", "fulfillments"):
            return self.settings.fulfillment_source
        if family == "refunds":
            return self.settings.refunds_source
        return "unknown"

    def map(self, d: Delivery) -> Mapped:
        """Map one delivery (plus any parked ones it resolves); never raises for bad input."""
        out = Mapped()
        source = self.source_of(d.topic)
        try:
            body = parse_json(d.body)
            if not isinstance(body, dict):
                raise Drift("-", WRONG_TYPE, f"expected a JSON object, got {type_name(body)}")
            released = self._learn(body)
            if d.topic in NOT_CIRCUIT:
                out.ignored = f"{d.topic}: {NOT_CIRCUIT[d.topic]}"
            elif d.topic in _FO_TOPICS:
                self._fulfillment_order(d, body, out)
            elif d.topic in _HANDLERS:
                event = _HANDLERS[d.topic](self, d, body)
                if event is None:
                    out.ignored = f"{d.topic}: restocks nothing, so releases no reservation"
                else:
                    out.events.append(event)
            else:
                raise Drift("X-Shopify-Topic", UNKNOWN_TOPIC, f"no mapping for topic {d.topic!r}")
        except Drift as e:
            out.rejected.append(make_reject(d.body, e, source=source, file=d.ref, line=d.line))
            return out
        for parked in released:
            out.extend(self.map(parked))
        return out

    def learn(self, fo: Any, order: Any) -> Mapped:
        """A link from outside (a mapped system's event, a seed file); maps what it releases."""
        out = Mapped()
        for parked in self.index.learn(gid_tail(fo, "fulfillment_order_id"), gid_tail(order, "order_id")):
            out.extend(self.map(parked))
        return out

    def expire(self, max_age: float) -> list[Any]:
        """Reject deliveries parked longer than `max_age` seconds (all with max_age=0)."""
        cutoff = self.clock() - max_age if max_age > 0 else float("inf")
        return [self._unresolved(d) for d in self.index.expire(cutoff)]

    def _unresolved(self, d: Delivery) -> Any:
        drift = Drift("fulfillment_order.id", UNRESOLVED_ORDER, "no payload linked this fulfillment order to an order")
        return make_reject(d.body, drift, source=self.source_of(d.topic), file=d.ref, line=d.line)

    # -- learning ------------------------------------------------------------

    def _learn(self, body: dict[str, Any]) -> list[Delivery]:
        released: list[Delivery] = []
        for obj, key in _walk(body):
            order = obj.get("order_id", obj.get("orderId"))
            if order is None and isinstance(obj.get("order"), dict):
                order = obj["order"].get("id")
            fo = obj.get("fulfillment_order_id")
            own_id = obj.get("id")
            try:
                if order is not None and fo is not None:
                    released += self.index.learn(gid_tail(fo, "fulfillment_order_id"), gid_tail(order, "order_id"))
                if order is not None and own_id is not None and _is_fo(key, own_id):
                    released += self.index.learn(gid_tail(own_id, "id"), gid_tail(order, "order_id"))
                if fo is not None and obj.get("line_item_id") is not None:
                    known = self.index.lines.get(gid_tail(obj["line_item_id"], "line_item_id"))
                    if known is not None:
                        released += self.index.learn(gid_tail(fo, "fulfillment_order_id"), known)
            except Drift:
                continue  # a link we cannot read is not this payload's drift
        return released

    # -- topics --------------------------------------------------------------

    def _event(self, d: Delivery, body: dict[str, Any], etype: str, order_id: str, when: Any, **extra: Any) -> Event:
        at = self._time(d, body, when)
        base = d.event_id or f"{d.topic}:{body.get('id', order_id)}:{at.isoformat()}"
        data = {
            "event_id": base,
            "order_id": order_id,
            "source": self.source_of(d.topic),
            "type": etype,
            "occurred_at": at,
            **extra,
        }
        data.setdefault("attrs", {})["shopify_topic"] = d.topic
        return build_event(data)

    def _time(self, d: Delivery, body: dict[str, Any], when: Any) -> datetime:
        if d.triggered_at:
            return parse_time(d.triggered_at, "X-Shopify-Triggered-At")
        if when is None:
            raise Drift("X-Shopify-Triggered-At", MISSING_FIELD, f"{d.topic} bodies carry no time: header required")
        return parse_time(_need(body, when), when)

    def _store(self, location: Any, field_name: str) -> str | None:
        if location is None:
            return None
        loc = gid_tail(location, field_name)
        return self.settings.locations.get(loc, loc)

    def _order_lines(self, body: dict[str, Any], order_id: str) -> list[dict[str, Any]]:
        items = _need(body, "line_items")
        if not isinstance(items, list):
            raise Drift("line_items", WRONG_TYPE, f"expected an array, got {type_name(items)}")
        lines = []
        for n, item in enumerate(items):
            at = f"line_items[{n}]"
            if not isinstance(item, dict):
                raise Drift(at, WRONG_TYPE, f"expected an object, got {type_name(item)}")
            line_id = to_id(_need(item, "id", at), f"{at}.id")
            self.index.learn_line(line_id, order_id)
            sku = item.get("sku") or (f"variant:{item['variant_id']}" if item.get("variant_id") else f"line:{line_id}")
            lines.append(
                {
                    "line_id": line_id,
                    "sku": to_id(sku, f"{at}.sku"),
                    "qty": to_qty(_need(item, "quantity", at), f"{at}.quantity"),
                }
            )
        return lines

    def _order(self, d: Delivery, body: dict[str, Any], etype: str, when: str, status: str | None) -> Event:
        order_id = to_id(_need(body, "id"), "id")
        cancelled_at = _need(body, "cancelled_at")
        if cancelled_at is not None:
            parse_time(cancelled_at, "cancelled_at")  # a naive or broken time is drift even if unused
        if status is None:  # orders/updated: what the shop now shows
            status = _order_status(body)
        attrs = {"name": body.get("name"), "financial_status": body.get("financial_status")}
        if body.get("cancel_reason"):
            attrs["cancel_reason"] = body["cancel_reason"]
        return self._event(
            d,
            body,
            etype,
            order_id,
            when,
            store_id=self._store(body.get("location_id"), "location_id"),
            lines=self._order_lines(body, order_id),
            status=status,
            attrs={k: v for k, v in attrs.items() if v is not None},
        )

    def _fulfillment(self, d: Delivery, body: dict[str, Any]) -> Event:
        order_id = to_id(_need(body, "order_id"), "order_id")
        status = _need(body, "status")
        if not isinstance(status, str) or status not in FULFILLMENT_STATUS:
            known = ", ".join(sorted(FULFILLMENT_STATUS))
            raise Drift("status", UNKNOWN_VALUE, f"unknown value {status!r} (known: {known})")
        return self._event(
            d,
            body,
            FULFILLMENT_STATUS[status],
            order_id,
            "updated_at",
            store_id=self._store(body.get("location_id"), "location_id"),
            lines=self._order_lines(body, order_id),
            status=status,
            attrs={"fulfillment_id": to_id(_need(body, "id"), "id")},
        )

    def _refund(self, d: Delivery, body: dict[str, Any]) -> Event | None:
        order_id = to_id(_need(body, "order_id"), "order_id")
        items = _need(body, "refund_line_items")
        if not isinstance(items, list):
            raise Drift("refund_line_items", WRONG_TYPE, f"expected an array, got {type_name(items)}")
        lines, store = [], None
        for n, item in enumerate(items):
            at = f"refund_line_items[{n}]"
            if not isinstance(item, dict):
                raise Drift(at, WRONG_TYPE, f"expected an object, got {type_name(item)}")
            restock = _need(item, "restock_type", at)
            if restock not in RESTOCKING and restock != "no_restock":
                raise Drift(f"{at}.restock_type", UNKNOWN_VALUE, f"unknown value {restock!r}")
            if restock == "no_restock":
                continue
            line_id = to_id(_need(item, "line_item_id", at), f"{at}.line_item_id")
            sku = (item.get("line_item") or {}).get("sku") or f"line:{line_id}"
            lines.append({"line_id": line_id, "sku": sku, "qty": to_qty(_need(item, "quantity", at), f"{at}.quantity")})
            store = store or self._store(item.get("location_id"), f"{at}.location_id")
        if not lines:
            return None
        refund_id = to_id(_need(body, "id"), "id")
        return self._event(
            d,
            body,
            "reservation_released",
            order_id,
            "created_at",
            store_id=store,
            lines=lines,
            attrs={"refund_id": refund_id},
        )

    def _fulfillment_order(self, d: Delivery, body: dict[str, Any], out: Mapped) -> None:
        path, etype, status_override, derived = _FO_TOPICS[d.topic]
        fo_obj = _need_path(body, path)
        fo = gid_tail(_need(fo_obj, "id", path), f"{path}.id")
        status = _need(fo_obj, "status", path)
        if not isinstance(status, str) or status not in FO_STATUS:
            known = ", ".join(sorted(FO_STATUS))
            raise Drift(f"{path}.status", UNKNOWN_VALUE, f"unknown value {status!r} (known: {known})")
        for other in derived:
            ref = _find_path(body, other)
            if isinstance(ref, dict) and ref.get("id") is not None:
                self.index.alias(gid_tail(ref["id"], f"{other}.id"), fo)
        if d.topic == "fulfillment_orders/merged":
            for n, intent in enumerate(_find_path(body, "merge_intents") or []):
                if isinstance(intent, dict) and intent.get("fulfillment_order_id") is not None:
                    self.index.alias(gid_tail(intent["fulfillment_order_id"], f"merge_intents[{n}]"), fo)
        order = self.index.resolve(fo)
        if order is None:
            self._time(d, body, None)  # a delivery that can never map is rejected now, not parked
            for evicted in self.index.park(fo, d, self.clock()):
                out.rejected.append(self._unresolved(evicted))
            out.parked += 1
            return
        location = body.get("destination_location_id") or fo_obj.get("assigned_location_id")
        attrs: dict[str, Any] = {"fulfillment_order_id": fo, "fulfillment_order_status": status}
        if isinstance(fo_obj.get("request_status"), str):
            attrs["request_status"] = fo_obj["request_status"]
        event = self._event(
            d,
            body,
            etype,
            order,
            None,
            store_id=self._store(location, "assigned_location_id"),
            status=status_override or status,
            attrs=attrs,
        )
        out.events.append(event)


def _order_status(body: dict[str, Any]) -> str:
    if body.get("cancelled_at") is not None:
        return "cancelled"
    fulfillment = body.get("fulfillment_status")
    if fulfillment is not None:
        if fulfillment not in ORDER_FULFILLMENT_STATUS:
            raise Drift("fulfillment_status", UNKNOWN_VALUE, f"unknown value {fulfillment!r}")
        return str(fulfillment)
    return "closed" if body.get("closed_at") is not None else "open"


def _need(obj: Any, key: str, where: str = "") -> Any:
    """A required key; its absence is drift (renamed when a near-identical key sits beside it)."""
    name = f"{where}.{key}" if where else key
    if not isinstance(obj, dict):
        raise Drift(where or "-", WRONG_TYPE, f"expected an object, got {type_name(obj)}")
    if key in obj:
        return obj[key]
    match = similar_key(key, list(obj), cutoff=0.85)
    if match is not None:
        seen = f"{where}.{match}" if where else match
        raise Drift(name, RENAMED_FIELD, f"field is missing; payload has unexpected {seen!r} (renamed?)")
    raise Drift(name, MISSING_FIELD, "required field is missing")


def _need_path(body: dict[str, Any], path: str) -> dict[str, Any]:
    obj: Any = body
    done = ""
    for part in path.split("."):
        obj = _need(obj, part, done)
        done = f"{done}.{part}" if done else part
    if not isinstance(obj, dict):
        raise Drift(path, WRONG_TYPE, f"expected an object, got {type_name(obj)}")
    return obj


def _find_path(body: dict[str, Any], path: str) -> Any:
    obj: Any = body
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _is_fo(key: str | None, own_id: Any) -> bool:
    if isinstance(own_id, str) and own_id.startswith("gid://shopify/FulfillmentOrder/"):
        return True
    return key is not None and key.startswith(("fulfillment_order", "fulfillmentOrder"))


def _walk(obj: Any, key: str | None = None, depth: int = 0) -> Iterator[tuple[dict[str, Any], str | None]]:
    if depth > 6:
        return
    if isinstance(obj, dict):
        yield obj, key
        for k, v in obj.items():
            if isinstance(v, dict | list):
                yield from _walk(v, k, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key, depth + 1)


_Handler = Callable[[ShopifyMapper, Delivery, dict[str, Any]], Event | None]
_HANDLERS: dict[str, _Handler] = {
    "orders/create": lambda m, d, b: m._order(d, b, "order_placed", "created_at", "open"),
    "orders/updated": lambda m, d, b: m._order(d, b, "status_changed", "updated_at", None),
    "orders/cancelled": lambda m, d, b: m._order(d, b, "cancelled", "cancelled_at", "cancelled"),
    "orders/fulfilled": lambda m, d, b: m._order(d, b, "status_changed", "updated_at", "fulfilled"),
    "orders/partially_fulfilled": lambda m, d, b: m._order(d, b, "status_changed", "updated_at", "partially_fulfilled"),
    "fulfillments/create": ShopifyMapper._fulfillment,
    "fulfillments/update": ShopifyMapper._fulfillment,
    "refunds/create": ShopifyMapper._refund,
}
# topic -> (path of the fulfillment order, canonical type, status to report (None: its own), derived FOs)
_FO_TOPICS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "fulfillment_orders/cancellation_request_submitted": ("fulfillment_order", "cancel_requested", None, ()),
    "fulfillment_orders/cancellation_request_accepted": ("fulfillment_order", "cancelled", None, ()),
    "fulfillment_orders/cancellation_request_rejected": (
        "fulfillment_order", "status_changed", "cancellation_rejected", ()
    ),
    "fulfillment_orders/cancelled": ("fulfillment_order", "cancelled", None, ("replacement_fulfillment_order",)),
    "fulfillment_orders/order_routing_complete": ("fulfillment_order", "status_changed", None, ()),
    "fulfillment_orders/line_items_prepared_for_pickup": ("fulfillment_order", "ready_for_pickup", None, ()),
    "fulfillment_orders/moved": ("original_fulfillment_order", "status_changed", "moved", ("moved_fulfillment_order",)),
    "fulfillment_orders/placed_on_hold": (
        "fulfillment_order", "status_changed", None, ("remaining_fulfillment_order",)
    ),
    "fulfillment_orders/hold_released": ("fulfillment_order", "status_changed", None, ()),
    "fulfillment_orders/split": (
        "fulfillment_order", "status_changed", "split",
        ("remaining_fulfillment_order", "replacement_fulfillment_order"),
    ),
    "fulfillment_orders/merged": ("fulfillment_order_merges.fulfillment_order", "status_changed", "merged", ()),
    "fulfillment_orders/fulfillment_request_submitted": (
        "original_fulfillment_order", "status_changed", "fulfillment_requested", ("submitted_fulfillment_order",)
    ),
    "fulfillment_orders/fulfillment_request_accepted": ("fulfillment_order", "status_changed", None, ()),
    "fulfillment_orders/fulfillment_request_rejected": ("fulfillment_order", "status_changed", None, ()),
    "fulfillment_orders/progress_reported": ("fulfillment_order", "status_changed", None, ()),
    "fulfillment_orders/scheduled_fulfillment_order_ready": ("fulfillment_order", "status_changed", None, ()),
}  # fmt: skip
