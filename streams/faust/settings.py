"""Worker settings from the environment (12-factor), overridable from the CLI.

Every name a deployment might change is here: broker, app id, topic names,
partition count, the metrics listener. Listeners default to 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from circuitwatch.events import SOURCES

Clock = Literal["wall", "event"]


class SettingsError(ValueError):
    """A one-line description of a bad setting."""


@dataclass(frozen=True)
class WorkerSettings:
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "circuitwatch"
    topic_prefix: str = ""  # prepended to every topic name (isolation of tenants / test runs)
    raw_topic: str = "bopis.raw.{source}"
    events_topic: str = "bopis.events"
    outcomes_topic: str = "bopis.circuit-outcomes"
    dead_letter_topic: str = "bopis.dead-letter"
    partitions: int = 8
    replication: int = 1
    store: str = "memory://"  # or rocksdb:// (needs rocksdict)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    webhooks_host: str = "127.0.0.1"
    webhooks_port: int | None = None  # serve POST /webhooks/shopify and /ingest/<mapping> from the worker
    clock: Clock = "wall"  # wall: silent legs breach in real time; event: event time only (backfills)
    tick: float = 1.0  # seconds between live-clock advances
    batch: int = 1000  # events per tracker batch (one table write per order per batch)
    batch_within: float = 0.2  # seconds to wait for a batch to fill
    config: str | None = None  # circuit.yaml
    outcome_store: str = "circuitwatch-outcomes.db"  # a path or SQLAlchemy URL; "off": outcomes stay in Kafka only
    commit_interval: float = 1.0  # seconds between offset commits
    session_timeout: float = 30.0  # seconds before the group gives a dead worker's partitions away
    loglevel: str = "warning"
    datadir: str = "circuitwatch-data"  # Faust/RocksDB local state (a cache: the changelog is the truth)
    sources: tuple[str, ...] = field(default=SOURCES)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def raw(self, source: str) -> str:
        return self.topic(self.raw_topic.format(source=source))

    @property
    def events(self) -> str:
        return self.topic(self.events_topic)

    @property
    def outcomes(self) -> str:
        return self.topic(self.outcomes_topic)

    @property
    def dead_letter(self) -> str:
        return self.topic(self.dead_letter_topic)

    @property
    def validate_group(self) -> str:
        """Consumer group of the raw-topic validator (the tracker agent's group is the app id)."""
        return self.app_id + ".validate"

    @property
    def bootstrap(self) -> str:
        """host:port[,host:port] for aiokafka (no scheme)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";") if part)

    def all_topics(self) -> list[str]:
        return [*(self.raw(s) for s in self.sources), self.events, self.outcomes, self.dead_letter]


_ENV: dict[str, tuple[str, type]] = {
    "CIRCUITWATCH_BROKER": ("broker", str),
    "CIRCUITWATCH_APP_ID": ("app_id", str),
    "CIRCUITWATCH_TOPIC_PREFIX": ("topic_prefix", str),
    "CIRCUITWATCH_TOPIC_RAW": ("raw_topic", str),
    "CIRCUITWATCH_TOPIC_EVENTS": ("events_topic", str),
    "CIRCUITWATCH_TOPIC_OUTCOMES": ("outcomes_topic", str),
    "CIRCUITWATCH_TOPIC_DEAD_LETTER": ("dead_letter_topic", str),
    "CIRCUITWATCH_PARTITIONS": ("partitions", int),
    "CIRCUITWATCH_REPLICATION": ("replication", int),
    "CIRCUITWATCH_STORE": ("store", str),
    "CIRCUITWATCH_METRICS_HOST": ("metrics_host", str),
    "CIRCUITWATCH_METRICS_PORT": ("metrics_port", int),
    "CIRCUITWATCH_WEBHOOKS_HOST": ("webhooks_host", str),
    "CIRCUITWATCH_WEBHOOKS_PORT": ("webhooks_port", int),
    "CIRCUITWATCH_CLOCK": ("clock", str),
    "CIRCUITWATCH_TICK": ("tick", float),
    "CIRCUITWATCH_BATCH": ("batch", int),
    "CIRCUITWATCH_BATCH_WITHIN": ("batch_within", float),
    "CIRCUITWATCH_CONFIG": ("config", str),
    "CIRCUITWATCH_OUTCOME_STORE": ("outcome_store", str),
    "CIRCUITWATCH_SESSION_TIMEOUT": ("session_timeout", float),
    "CIRCUITWATCH_COMMIT_INTERVAL": ("commit_interval", float),
    "CIRCUITWATCH_LOGLEVEL": ("loglevel", str),
    "CIRCUITWATCH_DATADIR": ("datadir", str),
}


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
    """Defaults, then `CIRCUITWATCH_*` variables, then explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for var, (name, kind) in _ENV.items():
        text = env.get(var)
        if text is None or text == "":
            continue
        try:
            values[name] = kind(text)
        except ValueError:
            raise SettingsError(f"{var}={text!r}: expected {kind.__name__}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(replace(WorkerSettings(), **values))


def validate(s: WorkerSettings) -> WorkerSettings:
    if not s.broker.startswith("kafka://"):
        raise SettingsError(f"broker {s.broker!r}: expected kafka://host:port")
    if s.clock not in ("wall", "event"):
        raise SettingsError(f"clock {s.clock!r}: expected wall or event")
    if s.partitions < 1 or s.batch < 1:
        raise SettingsError("partitions and batch must be at least 1")
    if not (0 <= s.metrics_port <= 65535):
        raise SettingsError(f"metrics port {s.metrics_port}: out of range")
    if "{source}" not in s.raw_topic:
        raise SettingsError(f"raw topic {s.raw_topic!r} must contain {{source}}")
    if not (s.store.startswith("memory://") or s.store.startswith("rocksdb://")):
        raise SettingsError(f"store {s.store!r}: expected memory:// or rocksdb://")
    return s
