"""The SQLite store's machinery on its own: the group-commit writer, the reader pool, and a
migration step that fails half-way."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dingpush.relay.stores import SQLiteStore, StoreUnavailable
from dingpush.relay.stores._sqlite import _ReaderPool
from dingpush.relay.stores._sqlite_schema import (
    MIGRATIONS,
    Migration,
    connect,
    migrate,
    schema_version,
    unavailable,
)
from dingpush.relay.stores._sqlite_writer import Writer
from dingpush.testing import FakeClock


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "scratch.sqlite"


def make_writer(
    path: pathlib.Path,
    *,
    max_batch: int = 100,
    setup: Callable[[sqlite3.Connection], None] | None = None,
) -> Writer:
    def default_setup(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT UNIQUE)")

    return Writer(
        lambda: connect(path, lock_timeout=1.0),
        setup or default_setup,
        lambda exc: unavailable(exc, path),
        max_batch=max_batch,
    )


@pytest.fixture
def writer(path: pathlib.Path) -> Iterator[Writer]:
    writer = make_writer(path, max_batch=2)
    writer.start().result(timeout=30)
    yield writer
    writer.close()
    writer.join()


def insert(key: str) -> Callable[[sqlite3.Connection], int]:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (key,)).rowcount


def hold(
    entered: threading.Event, release: threading.Event
) -> Callable[[sqlite3.Connection], None]:
    def operation(conn: sqlite3.Connection) -> None:
        entered.set()
        assert release.wait(30)

    return operation


def keys(path: pathlib.Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT k FROM t ORDER BY k")]
    finally:
        conn.close()


def test_a_constraint_violation_undoes_only_its_operation(
    writer: Writer, path: pathlib.Path
) -> None:
    writer.submit(insert("a")).result(timeout=30)
    entered, release = threading.Event(), threading.Event()
    writer.submit(hold(entered, release))
    assert entered.wait(30)
    duplicate, fresh = writer.submit(insert("a")), writer.submit(insert("b"))
    release.set()
    with pytest.raises(sqlite3.IntegrityError):
        duplicate.result(timeout=30)
    assert fresh.result(timeout=30) == 1
    assert keys(path) == ["a", "b"]


def test_a_crashing_operation_stops_the_writer_without_leaving_anyone_waiting(
    writer: Writer, path: pathlib.Path
) -> None:
    entered, release = threading.Event(), threading.Event()
    writer.submit(hold(entered, release))
    assert entered.wait(30)

    def crash(conn: sqlite3.Connection) -> None:
        raise SystemExit("simulated interpreter shutdown")

    futures: list[concurrent.futures.Future[Any]] = [
        writer.submit(insert("x")),
        writer.submit(crash),  # same batch as "x"
        writer.submit(insert("y")),  # max_batch=2: waits in the queue for the next batch
    ]
    release.set()
    for future in futures:
        with pytest.raises(StoreUnavailable, match="writer has stopped"):
            future.result(timeout=30)
    writer.join()
    with pytest.raises(StoreUnavailable, match="writer has stopped"):
        writer.submit(insert("z"))
    assert keys(path) == []


def test_the_lock_timeout_is_one_budget_counted_from_submission(path: pathlib.Path) -> None:
    # A write that arrives while the batch ahead of it waits for the file's lock may only wait
    # what is left of its own budget: not a whole lock_timeout more (9.4-10 s for 5 s before).
    clock = FakeClock()
    writer = Writer(
        lambda: connect(path, lock_timeout=5.0),
        lambda conn: None,
        lambda exc: unavailable(exc, path),
        max_batch=1,
        lock_timeout=5.0,
        monotonic=clock.monotonic,
    )
    writer.start().result(timeout=30)
    try:
        entered, release = threading.Event(), threading.Event()
        ahead = writer.submit(hold(entered, release))
        assert entered.wait(30)
        budget = writer.submit(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0])
        clock.advance(4.4)  # the batch ahead spent 4.4 s of the later write's budget
        release.set()
        ahead.result(timeout=30)
        assert budget.result(timeout=30) == 600
        clock.advance(10)  # a write submitted now has its whole budget
        assert (
            writer.submit(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]).result(
                timeout=30
            )
            == 5000
        )
    finally:
        writer.close()
        writer.join()


def test_a_failed_setup_fails_the_start(path: pathlib.Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        raise RuntimeError("no schema for you")

    writer = make_writer(path, setup=broken)
    with pytest.raises(RuntimeError, match="no schema"):
        writer.start().result(timeout=30)
    writer.join()
    with pytest.raises(StoreUnavailable, match="no schema"):
        writer.submit(insert("a"))


def test_closing_commits_what_was_queued_and_refuses_the_rest(path: pathlib.Path) -> None:
    writer = make_writer(path)
    writer.start().result(timeout=30)
    queued = [writer.submit(insert(str(i))) for i in range(10)]
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(StoreUnavailable, match="closed"):
        writer.submit(insert("late"))
    writer.join()
    assert [f.result(timeout=0) for f in queued] == [1] * 10
    assert len(keys(path)) == 10


def test_a_batch_is_at_least_one_write(path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        make_writer(path, max_batch=0)


def test_readers_turn_sqlite_failures_into_unavailable(path: pathlib.Path) -> None:
    pool = _ReaderPool(
        1,
        lambda: connect(path, lock_timeout=1.0, readonly=True),
        lambda exc: unavailable(exc, path),
    )

    def failing(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(StoreUnavailable, match="unavailable: disk I/O error"):
        pool.submit(failing).result(timeout=30)
    assert pool.submit(lambda conn: conn.execute("SELECT 1").fetchone()[0]).result(30) == 1
    pool.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        pool.submit(failing)


def test_a_failed_migration_step_leaves_the_previous_version(path: pathlib.Path) -> None:
    broken = Migration(
        2,
        "broken",
        ("ALTER TABLE messages ADD COLUMN extra TEXT", "INSERT INTO no_such_table VALUES (1)"),
    )
    conn = connect(path, lock_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable, match="no such table"):
            migrate(conn, path, steps=(MIGRATIONS[0], broken))
        assert schema_version(conn) == 1
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        assert "extra" not in columns  # the half-done step was rolled back
        steps: list[int] = []
        assert migrate(conn, path, on_step=lambda s: steps.append(s.version)) == 1
        assert steps == [m.version for m in MIGRATIONS[1:]]
        assert schema_version(conn) == MIGRATIONS[-1].version
    finally:
        conn.close()


@pytest.mark.anyio
async def test_upgrades_are_logged(path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dingpush.relay.outbox")
    async with SQLiteStore(path):
        pass
    messages = [r.getMessage() for r in caplog.records]
    assert any("upgraded to schema version 2" in m for m in messages), messages


@pytest.mark.anyio
async def test_a_lone_write_does_not_wait_for_company(path: pathlib.Path) -> None:
    async with SQLiteStore(path) as store:
        await asyncio.wait_for(store.ping(), timeout=30)  # no timer holds a lone write back
        assert store.write_stats().transactions == 1


def test_asyncio_callers_of_one_batch_are_answered_together_and_a_refusal_is_theirs_alone(
    writer: Writer, path: pathlib.Path
) -> None:
    """submit_async: a batch's futures settle on their loop; a refusal undoes only its own."""
    entered, release = threading.Event(), threading.Event()
    writer.submit(insert("a")).result(timeout=30)

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        writer.submit(hold(entered, release))
        assert await asyncio.to_thread(entered.wait, 30)
        # max_batch=2: "b" and the duplicate "a" share a batch, "c" comes in the next one
        futures = [writer.submit_async(insert(k), loop) for k in ("b", "a", "c")]
        release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    first, duplicate, last = asyncio.run(main())
    assert (first, last) == (1, 1)
    assert isinstance(duplicate, sqlite3.IntegrityError)
    assert keys(path) == ["a", "b", "c"]
