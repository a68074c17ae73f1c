"""The durable outcome store: upsert by order id, idempotent redelivery, WAL, crash-safe batches."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa

from circuitwatch.streams.outcome import Outcome
from circuitwatch.streams.outcome_store import OutcomeStore, safe_url, store_error
from tests.kpi_fixtures import hand_made


def by_id(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.order_id: o for o in outcomes}


def test_round_trip_and_frame(tmp_path: Path) -> None:
    records = hand_made()
    with OutcomeStore(tmp_path / "out.db") as store:
        assert store.upsert(records) == len(records)
        assert by_id(store.outcomes()) == by_id(records)
        df = store.frame()
        assert len(df) == len(records)
        assert set(df["order_id"]) == {o.order_id for o in records}
        assert str(df["cancelled_at"].dt.tz) == "UTC"
        assert store.newest_cancellation() == datetime(2026, 11, 29, 22, 50, tzinfo=UTC)


def test_later_record_replaces_earlier_and_redelivery_changes_nothing(tmp_path: Path) -> None:
    c = by_id(hand_made())["BO-C"]
    first = msgspec.structs.replace(c, state="open", phantom_units=0)
    stream = [first, c, *hand_made()[:2]]
    with OutcomeStore(tmp_path / "out.db") as store:
        store.upsert(stream)
        store.upsert(stream)  # the same stream delivered twice
        assert store.count() == 3
        assert by_id(store.outcomes())["BO-C"] == c
        # one record at a time (as a sink agent would) gives the same rows
        store.upsert([first])
        store.upsert([c])
        assert by_id(store.outcomes())["BO-C"].state == "broken"


def test_offsets_keep_an_old_redelivery_from_replacing_a_newer_record(tmp_path: Path) -> None:
    c = by_id(hand_made())["BO-C"]
    old = msgspec.structs.replace(c, state="open")
    with OutcomeStore(tmp_path / "out.db") as store:
        store.upsert([old, c], offsets=[10, 11])
        assert by_id(store.outcomes())["BO-C"].state == "broken"
        store.upsert([old], offsets=[10])  # redelivered from an older offset
        assert by_id(store.outcomes())["BO-C"].state == "broken"
        store.upsert([c, old], offsets=[11, 10])  # out of order inside one batch
        assert by_id(store.outcomes())["BO-C"].state == "broken"
        newer = msgspec.structs.replace(c, manual_closures=2)
        store.upsert([newer], offsets=[12])
        assert by_id(store.outcomes())["BO-C"].manual_closures == 2


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    with OutcomeStore(path) as store:
        store.upsert(hand_made())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM circuit_outcomes").fetchone()[0] == 7
    finally:
        conn.close()


def test_a_failing_batch_leaves_the_previous_one_intact(tmp_path: Path) -> None:
    records = hand_made()
    with OutcomeStore(tmp_path / "out.db") as store:
        store.upsert(records[:3])
        broken = msgspec.structs.replace(records[3], cancelled_at="not a time")
        with pytest.raises(ValueError, match="isoformat"):
            store.upsert([records[4], broken])
        assert sorted(by_id(store.outcomes())) == ["BO-A", "BO-B", "BO-C"]


def test_window_reads_include_older_unfinished_circuits(tmp_path: Path) -> None:
    with OutcomeStore(tmp_path / "out.db") as store:
        store.upsert(hand_made())
        since, until = datetime(2026, 11, 22, 23, tzinfo=UTC), datetime(2026, 11, 29, 23, tzinfo=UTC)
        assert sorted(by_id(store.outcomes(since, until))) == ["BO-A", "BO-B", "BO-C", "BO-D", "BO-E"]
        with_debt = sorted(by_id(store.outcomes(since, until, unfinished_since=True)))
        assert with_debt == ["BO-A", "BO-B", "BO-C", "BO-D", "BO-E", "BO-F"]  # F is broken; G closed on time


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    records = hand_made()
    with OutcomeStore(tmp_path / "out.db") as store:
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for _ in range(20):
                    store.upsert(records)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.count() == len(records)


def _open_together(path: Path, barrier: Any) -> str | None:
    barrier.wait()
    try:
        with OutcomeStore(path) as store:
            store.upsert(hand_made())
        return None
    except Exception as e:  # returned, so the parent reports which open failed and why
        return repr(e)


def test_processes_creating_a_new_store_together(tmp_path: Path) -> None:
    """Two workers started at once both create the file (CI once lost this race: "database is locked")."""
    processes, rounds = 4, 25
    with multiprocessing.Manager() as manager, ProcessPoolExecutor(processes) as pool:
        barrier = manager.Barrier(processes)
        for n in range(rounds):
            path = tmp_path / f"round-{n}" / "out.db"
            errors = [e for e in pool.map(_open_together, [path] * processes, [barrier] * processes) if e]
            assert errors == [], f"round {n}: {errors}"
            with OutcomeStore(path) as store:
                assert store.count() == len(hand_made())


def test_url_with_password_is_masked() -> None:
    assert safe_url("postgresql+psycopg://kpi:hunter2@db.internal/cw") == "postgresql+psycopg://kpi:***@db.internal/cw"
    assert safe_url("/tmp/x.db").startswith("sqlite:///")


def test_store_errors_give_the_reason_and_never_the_password() -> None:
    url = "postgresql+psycopg://kpi:s3cret@db.internal/cw"
    refused = sa.exc.OperationalError("connect", {}, Exception('password "s3cret" refused\nDETAIL: more'))
    assert store_error(url, "open", refused) == (
        "postgresql+psycopg://kpi:***@db.internal/cw: cannot open the outcome store: "
        'OperationalError: password "***" refused'
    )
    missing = ModuleNotFoundError("No module named 'psycopg'", name="psycopg")
    assert store_error(url, "read", missing).endswith(": the database driver 'psycopg' is not installed")
