"""What only the SQLite store does: group commit, durability, file locking, its named queries.

Batching is made deterministic with a *gate*: an operation submitted to the writer that blocks
its thread until the test opens it, so everything submitted meanwhile lands in the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from dingpush.relay.stores import (
    MessageNotFound,
    NewMessage,
    SQLiteStore,
    Status,
    StoreUnavailable,
)
from dingpush.relay.stores import _sqlite_ops as ops
from dingpush.relay.stores._sqlite_schema import SCHEMA_VERSION
from dingpush.testing import FakeClock

from ._disks import fill, immutable, small_filesystem

pytestmark = pytest.mark.anyio


def new(text: str = "hello", **kw: object) -> NewMessage:
    return NewMessage(target="ops", kind="text", payload=f'{{"text":"{text}"}}', **kw)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "outbox.sqlite"


@pytest.fixture
async def store(path: pathlib.Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(path, clock=FakeClock()) as opened:
        yield opened


class Gate:
    """Holds the writer thread inside a batch until opened."""

    def __init__(self, store: SQLiteStore) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        assert store._writer is not None
        self.future = store._writer.submit(self._hold)

    def _hold(self, conn: sqlite3.Connection) -> None:
        self.entered.set()
        if not self._open.wait(30):
            raise RuntimeError("the test never opened the gate")

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 30)

    async def open(self) -> None:
        self._open.set()
        await asyncio.wrap_future(self.future)


@pytest.fixture
def outside(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file, as a second process would have."""
    conn = sqlite3.connect(path, isolation_level=None)
    yield conn
    conn.close()


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


# -- group commit -----------------------------------------------------------------------------


async def test_concurrent_enqueues_share_one_commit(store: SQLiteStore) -> None:
    gate = Gate(store)
    await gate.wait_entered()
    before = store.write_stats()
    tasks = [asyncio.ensure_future(store.enqueue(new(f"m{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # every task has handed its write to the writer
    await gate.open()
    answers = await asyncio.gather(*tasks)
    assert len({a.id for a in answers}) == 50
    after = store.write_stats()
    assert after.transactions - before.transactions == 2  # the gate's batch, then all 50
    assert after.largest_batch == 50 and after.mean_batch > 1


async def test_without_group_commit_every_write_commits_alone(path: pathlib.Path) -> None:
    async with SQLiteStore(path, group_commit=False) as store:
        gate = Gate(store)
        await gate.wait_entered()
        tasks = [asyncio.ensure_future(store.enqueue(new())) for _ in range(20)]
        await asyncio.sleep(0)
        await gate.open()
        await asyncio.gather(*tasks)
        stats = store.write_stats()
        assert (stats.transactions, stats.operations, stats.largest_batch) == (21, 21, 1)


async def test_a_caller_is_answered_only_after_the_commit(
    store: SQLiteStore, outside: sqlite3.Connection
) -> None:
    first = Gate(store)
    await first.wait_entered()
    pending = asyncio.ensure_future(store.enqueue(new()))
    await asyncio.sleep(0)
    second = Gate(store)  # same batch as the enqueue, after it: holds the batch before COMMIT
    await first.open()
    await second.wait_entered()
    await asyncio.sleep(0.01)
    assert not pending.done()
    assert count(outside) == 0  # written, not yet committed: nobody else sees it
    await second.open()
    answer = await pending
    assert count(outside) == 1
    assert outside.execute("SELECT id FROM messages").fetchone()[0] == answer.id


async def test_one_refused_operation_does_not_undo_its_batch(store: SQLiteStore) -> None:
    gate = Gate(store)
    await gate.wait_entered()
    before = store.write_stats().transactions
    refused = asyncio.ensure_future(store.retry("no-such-id"))
    accepted = asyncio.ensure_future(store.enqueue(new()))
    await asyncio.sleep(0)
    await gate.open()
    with pytest.raises(MessageNotFound):
        await refused
    assert (await store.get((await accepted).id)).status is Status.QUEUED
    assert store.write_stats().transactions - before == 2


async def test_a_cancelled_caller_stores_nothing(
    store: SQLiteStore, outside: sqlite3.Connection
) -> None:
    gate = Gate(store)
    await gate.wait_entered()
    cancelled = asyncio.ensure_future(store.enqueue(new()))
    kept = asyncio.ensure_future(store.enqueue(new()))
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled  # the cancellation reaches the writer's queue before the gate opens
    await gate.open()
    await kept
    assert cancelled.cancelled()
    assert count(outside) == 1


# -- when the file cannot commit --------------------------------------------------------------


async def test_a_locked_file_makes_the_store_unavailable(
    path: pathlib.Path, outside: sqlite3.Connection
) -> None:
    async with SQLiteStore(path, lock_timeout=0.05) as store:
        kept = await store.enqueue(new())
        outside.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailable, match="locked by another process") as caught:
            await store.enqueue(new())
        assert caught.value.transient
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert (await store.get(kept.id)).status is Status.QUEUED  # WAL: reads go on
        outside.execute("COMMIT")
        await store.ping()
        await store.enqueue(new())
        assert count(outside) == 2


async def test_a_full_store_fails_the_whole_batch(
    path: pathlib.Path, outside: sqlite3.Connection
) -> None:
    async with SQLiteStore(path, max_size=256 * 1024) as store:
        gate = Gate(store)
        await gate.wait_entered()
        small = asyncio.ensure_future(store.enqueue(new("small")))
        large = asyncio.ensure_future(store.enqueue(new("x" * 400_000)))
        await asyncio.sleep(0)
        await gate.open()
        for task in (small, large):
            with pytest.raises(StoreUnavailable, match="full"):
                await task
        assert count(outside) == 0  # nothing of the failed batch was stored
        await store.enqueue(new("fits"))  # the store carries on once the flood has passed
        assert count(outside) == 1


async def test_the_probe_fails_on_a_full_disk_where_ping_did_not(tmp_path: pathlib.Path) -> None:
    with small_filesystem() as disk:
        where = disk or tmp_path
        async with SQLiteStore(
            where / "outbox.sqlite", lock_timeout=0.05, max_size=None if disk else 64 * 1024
        ) as store:
            await store.probe()
            filler = fill(disk) if disk else None
            if filler is None:  # no tmpfs (not root): fill the store up to its max_size
                with contextlib.suppress(StoreUnavailable):
                    for _ in range(100):
                        await store.enqueue(new("x" * 8000))
            with pytest.raises(StoreUnavailable, match="full"):
                await store.enqueue(new("y" * 8000))
            with pytest.raises(StoreUnavailable, match="is full"):
                await store.probe()
            if filler is not None:
                filler.unlink()
                await store.probe()  # ready again once there is room


async def test_the_probe_fails_on_an_immutable_file(
    path: pathlib.Path, outside: sqlite3.Connection
) -> None:
    async with SQLiteStore(path, lock_timeout=0.05) as store:
        await store.enqueue(new())
        with immutable(path.with_name(path.name + "-wal")) as frozen:
            if not frozen:  # not root: the lock stands in for a file that cannot be written
                outside.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match=r"I/O error|locked"):
                await store.enqueue(new())
            with pytest.raises(StoreUnavailable, match=r"I/O error|locked"):
                await store.probe()
            if not frozen:
                outside.execute("COMMIT")
        await store.probe()
        await store.enqueue(new())
        assert count(outside) == 2


async def test_enqueue_many_is_atomic(path: pathlib.Path, outside: sqlite3.Connection) -> None:
    async with SQLiteStore(path, max_size=256 * 1024) as store:
        with pytest.raises(StoreUnavailable):
            await store.enqueue_many([new("a"), new("b"), new("x" * 400_000)])
        assert count(outside) == 0


async def test_an_unopened_store_says_how_to_open_it(path: pathlib.Path) -> None:
    store = SQLiteStore(path)
    with pytest.raises(StoreUnavailable, match="async with SQLiteStore"):
        await store.enqueue(new())
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.get("x")
    assert "closed" in repr(store)


# -- durability and sharing the file ----------------------------------------------------------


async def test_everything_survives_reopening(path: pathlib.Path) -> None:
    clock = FakeClock()
    async with SQLiteStore(path, clock=clock) as store:
        delivered, failed, queued = [(await store.enqueue(new())).id for _ in range(3)]
        await store.mark_delivered((await store.claim(1, lease=30))[0], reply={"errcode": 0})
        await store.fail((await store.claim(1, lease=30))[0], error="revoked", errcode=300001)
    async with SQLiteStore(path, clock=clock) as store:
        assert (await store.get(delivered)).reply == {"errcode": 0}
        assert (await store.get(failed)).last_errcode == 300001
        assert [c.id for c in await store.claim(5, lease=30)] == [queued]
        assert store.opened_at_version == SCHEMA_VERSION


async def test_two_stores_on_one_file_never_claim_the_same_message(path: pathlib.Path) -> None:
    async with SQLiteStore(path) as one, SQLiteStore(path) as two:
        ids = {a.id for a in await one.enqueue_many([new(str(i)) for i in range(150)])}
        claimed: list[str] = []

        async def claimer(store: SQLiteStore) -> None:
            while batch := await store.claim(4, lease=30):
                claimed.extend(c.id for c in batch)

        await asyncio.gather(*(claimer(s) for s in (one, two, one, two)))
        assert sorted(claimed) == sorted(ids)


async def test_file_settings(store: SQLiteStore, outside: sqlite3.Connection) -> None:
    assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._writer is not None
    level = await asyncio.wrap_future(
        store._writer.submit(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
    )
    assert level == 2  # FULL


# -- the named queries ------------------------------------------------------------------------


def test_every_named_query_is_used_and_exists() -> None:
    source = pathlib.Path(ops.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'Q\["(\w+)"\]', source))
    assert used == set(ops.Q)


async def test_every_named_query_compiles(store: SQLiteStore, path: pathlib.Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for name, sql in ops.Q.items():
            params = dict.fromkeys(re.findall(r":(\w+)", sql))
            assert conn.execute(f"EXPLAIN {sql}", params).fetchall(), name
    finally:
        conn.close()


def test_query_files_are_parsed_strictly() -> None:
    text = "-- name: a\nSELECT 1;\n-- name: b\n-- only a comment\n"
    assert ops.load_queries("-- name: a\nSELECT 1;\n") == {"a": "SELECT 1"}
    with pytest.raises(ValueError, match="'a' is defined twice"):
        ops.load_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(ValueError, match="'b' is defined twice or has no SQL"):
        ops.load_queries(text)


async def test_concurrent_openers_share_one_start(path: pathlib.Path) -> None:
    store = SQLiteStore(path)
    await asyncio.gather(store.open(), store.open(), store.open())
    try:
        assert (await store.get((await store.enqueue(new())).id)).status is Status.QUEUED
    finally:
        await store.aclose()
