"""The durable outcome store: one row per circuit, the latest record wins.

`replay`, `demo` and the Faust sink on `bopis.circuit-outcomes` all write here,
and the weekly KPI export reads from here. SQLite (WAL, one transaction per
batch, so a crash mid-write leaves the previous batch intact) is the default;
any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) works for retailers who
outgrow one file. Upserting by order id makes delivery idempotent: the same
stream delivered twice leaves the same rows. When the caller knows each record's
position in the stream (a Kafka offset), passing it as `offsets` also stops a
late redelivery of an older record from replacing a newer one.

The API is small and synchronous; each call opens and commits its own
transaction, so it is safe from threads (e.g. `loop.run_in_executor`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from circuitwatch.streams.outcome import Outcome, decode, encode, parse_iso

TABLE = "circuit_outcomes"
_metadata = sa.MetaData()
outcomes_table = sa.Table(
    TABLE,
    _metadata,
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("store_id", sa.String(64), nullable=True),
    sa.Column("origin", sa.String(32), nullable=True),
    sa.Column("cancelled_at", sa.String(40), nullable=False),  # RFC 3339, as in the record
    sa.Column("cancelled_ts", sa.Float, nullable=False, index=True),  # epoch seconds, for range reads
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("record", sa.Text, nullable=False),  # the outcome record, JSON
    sa.Column("seq", sa.BigInteger, nullable=True),  # stream position (Kafka offset) when known
)


def store_url(target: str | Path) -> str:
    """A SQLAlchemy URL as given, or a file path turned into a SQLite URL."""
    text = str(target)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def safe_url(target: str | Path) -> str:
    """The store's URL with any password masked, for messages and reports."""
    try:
        return sa.make_url(store_url(target)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"


def store_error(target: str | Path, verb: str, error: BaseException) -> str:
    """A one-line message for a store that failed: its masked URL, what failed and the driver's reason."""
    if isinstance(error, ModuleNotFoundError):
        return f"{safe_url(target)}: the database driver {error.name!r} is not installed"
    text = str(getattr(error, "orig", None) or error).strip()
    reason = text.splitlines()[0] if text else "no detail"
    try:
        password = sa.make_url(store_url(target)).password
    except sa.exc.ArgumentError:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return f"{safe_url(target)}: cannot {verb} the outcome store: {type(error).__name__}: {reason}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: workers, demo and replay may share the file
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=FULL")  # a committed batch survives power loss, not only a crash
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """WAL is a property of the file, set once; the switch is retried, not waited for.

    Two processes opening a new file together can get "database is locked" from
    the switch at once (SQLite's busy timeout does not cover it), so it is tried
    again for up to the busy timeout.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_schema(engine: Engine) -> None:
    """Create the table and its indexes unless they exist, safe when workers start together.

    create_all's check-then-create loses that race (the second CREATE fails with
    "already exists"); IF NOT EXISTS is decided under the database's write lock.
    """
    if engine.dialect.name not in ("sqlite", "postgresql"):
        _metadata.create_all(engine)
        return
    with engine.begin() as conn:
        for table in _metadata.sorted_tables:
            conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


class OutcomeStore:
    """Outcome records keyed by order id (the later record replaces the earlier)."""

    def __init__(self, url: str | Path = "circuitwatch-outcomes.db", *, echo: bool = False) -> None:
        self.url = store_url(url)
        self.engine: Engine = sa.create_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            database = self.engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        _create_schema(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------

    def upsert(self, outcomes: Iterable[Outcome], *, offsets: Iterable[int] | None = None) -> int:
        """Write records in one transaction; returns how many distinct circuits the batch held.

        Within a batch the last record of an order wins (or the highest offset).
        With offsets, a stored row is only replaced by a record at the same or a
        later offset, so redelivering an old stretch of the topic changes nothing.
        """
        latest: dict[str, dict[str, Any]] = {}
        pairs: Iterable[tuple[Outcome, int | None]] = (
            zip(outcomes, offsets, strict=True) if offsets is not None else ((o, None) for o in outcomes)
        )
        for outcome, seq in pairs:
            prev = latest.get(outcome.order_id)
            if prev is not None and seq is not None and prev["seq"] is not None and seq < prev["seq"]:
                continue
            latest[outcome.order_id] = _row(outcome, seq)
        if not latest:
            return 0
        rows = list(latest.values())
        with self.engine.begin() as conn:
            self._write(conn, rows)
        return len(rows)

    def _write(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        t = outcomes_table
        if self.dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            stmt = (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(t)
            newer = sa.or_(stmt.excluded.seq.is_(None), t.c.seq.is_(None), stmt.excluded.seq >= t.c.seq)
            values = {c.name: stmt.excluded[c.name] for c in t.columns if c.name != "order_id"}
            conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.order_id], set_=values, where=newer), rows)
            return
        # Any other database: replace row by row inside the same transaction.
        for row in rows:
            current = conn.execute(sa.select(t.c.seq).where(t.c.order_id == row["order_id"])).first()
            if current is None:
                conn.execute(t.insert(), row)
            elif row["seq"] is None or current.seq is None or row["seq"] >= current.seq:
                conn.execute(t.update().where(t.c.order_id == row["order_id"]), row)

    # -- reading -------------------------------------------------------------

    def _select(self, since: datetime | None, until: datetime | None, unfinished_since: bool) -> sa.Select[Any]:
        t = outcomes_table
        query = sa.select(t)
        if until is not None:
            query = query.where(t.c.cancelled_ts < until.timestamp())
        if since is not None:
            recent = t.c.cancelled_ts >= since.timestamp()
            query = query.where(sa.or_(recent, t.c.state != "closed") if unfinished_since else recent)
        return query.order_by(t.c.cancelled_ts, t.c.order_id)

    def outcomes(
        self, since: datetime | None = None, until: datetime | None = None, *, unfinished_since: bool = False
    ) -> list[Outcome]:
        """Records of circuits cancelled in [since, until).

        unfinished_since: also circuits cancelled before `since` that did not close
        on time (they can still be sync debt or hold phantom inventory later).
        """
        with self.engine.connect() as conn:
            records = conn.execute(
                self._select(since, until, unfinished_since).with_only_columns(outcomes_table.c.record)
            )
            return [decode(r) for r in records.scalars()]

    def frame(self, since: datetime | None = None, until: datetime | None = None) -> Any:
        """The stored rows as a pandas DataFrame (one row per circuit; `record` is the JSON)."""
        import pandas as pd

        with self.engine.connect() as conn:
            df = pd.read_sql(self._select(since, until, False), conn)
        df["cancelled_at"] = pd.to_datetime(df["cancelled_at"], utc=True, format="ISO8601")
        return df.drop(columns=["cancelled_ts"])

    def newest_cancellation(self) -> datetime | None:
        """When the most recently cancelled stored circuit was cancelled (UTC)."""
        with self.engine.connect() as conn:
            ts = conn.execute(sa.select(sa.func.max(outcomes_table.c.cancelled_ts))).scalar_one()
        return None if ts is None else datetime.fromtimestamp(float(ts), UTC)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outcomes_table)).scalar_one())


def _row(outcome: Outcome, seq: int | None) -> dict[str, Any]:
    return {
        "order_id": outcome.order_id,
        "store_id": outcome.store_id,
        "origin": outcome.origin,
        "cancelled_at": outcome.cancelled_at,
        "cancelled_ts": parse_iso(outcome.cancelled_at),
        "state": outcome.state,
        "record": encode(outcome).decode(),
        "seq": seq,
    }
