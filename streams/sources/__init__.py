"""Source adapters: real systems' payloads mapped to canonical `Event`s.

`mapping` is the declarative engine for `mappings/*.yaml` (any OMS, WMS or store
app, no code) and its drift detection; `shopify` maps Shopify webhooks topic by
topic; `signature` verifies Shopify's HMAC. Everything here is pure (no I/O
besides reading mapping files): the HTTP layer is `streams.ingest_http`.
"""

from circuitwatch.streams.sources.common import Drift, Mapped

__all__ = ["Drift", "Mapped"]
