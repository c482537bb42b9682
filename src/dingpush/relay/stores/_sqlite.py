"""``SQLiteStore``: the embedded outbox, one SQLite file in write-ahead-log mode.

Writes go through one writer thread that commits them in batches (group commit, see
``_sqlite_writer.py``); reads run on a small pool of reader threads, each with its own
connection, which WAL lets proceed while the writer commits. The event loop only waits on
futures: no SQLite call ever runs on it. A thread is the honest way to make a blocking library
asynchronous here: the standard library has no async SQLite driver, and every call really does
block on disk I/O.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import pathlib
import sqlite3
import threading
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from dingpush import Clock
from dingpush.lowlevel import SYSTEM_CLOCK

from . import _sqlite_ops as ops
from ._base import (
    Attempt,
    BaseStore,
    Claim,
    DeadLetterFilter,
    Enqueued,
    ErrCode,
    NewMessage,
    OutboxMessage,
    OutboxStats,
    Page,
    Status,
    check_digest_request,
    check_errcode,
    check_limit,
    check_listing,
    check_positive,
    dedupe_claims,
    encode_reply,
)
from ._errors import StoreError, StoreUnavailable
from ._sqlite_incidents import SQLiteIncidentStore
from ._sqlite_schema import Migration, connect, migrate, unavailable
from ._sqlite_writer import Writer, WriteStats

__all__ = ["SQLiteStore"]

R = typing.TypeVar("R")

log = logging.getLogger("dingpush.relay.outbox")

DEFAULT_PATH = "dingpush-outbox.sqlite"


class SQLiteStore(BaseStore):
    """The outbox in one SQLite file: durable on return, crash-safe, one fsync per batch.

    Use it as ``async with SQLiteStore("outbox.sqlite") as store:``; opening creates the file
    or brings an older one to the current schema.

    Args:
        path: The database file (``-wal`` and ``-shm`` files appear beside it).
        clock: Where time comes from (``dingpush.testing.FakeClock`` in tests).
        group_commit: Let concurrent writes share one transaction and one fsync. Off, every
            write commits (and fsyncs) on its own: slower, for comparison only.
        max_batch: The most writes one group commit takes.
        lock_timeout: Seconds a write may wait, from the moment it is asked for, for another
            process's lock on the file before it fails with ``StoreUnavailable`` (one budget,
            however many batches are ahead of it).
        readers: Reader threads (and connections) for queries.
        max_size: Refuse writes (``StoreUnavailable``) once the database file would pass this
            many bytes, to keep a flood from filling the disk. None: no limit but the disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        clock: Clock | None = None,
        group_commit: bool = True,
        max_batch: int = 512,
        lock_timeout: float = 5.0,
        readers: int = 2,
        max_size: int | None = None,
    ) -> None:
        super().__init__()
        self.path = pathlib.Path(path)
        if str(path) in ("", ":memory:"):
            raise ValueError(
                "SQLiteStore needs a file path; use MemoryStore for an outbox in memory"
            )
        check_limit(max_batch)
        check_limit(readers)
        check_positive("lock_timeout", lock_timeout)
        self._clock = clock or SYSTEM_CLOCK
        self._max_batch = max_batch if group_commit else 1
        self._lock_timeout = lock_timeout
        self._readers = readers
        self._max_size = max_size
        self._writer: Writer | None = None
        self._pool: _ReaderPool | None = None
        self._starting: concurrent.futures.Future[None] | None = None
        self._pending: tuple[Writer, _ReaderPool] | None = None
        self._open_lock = threading.Lock()
        #: The schema version the file had when this store opened it (0 for a new file).
        self.opened_at_version: int | None = None
        #: The on-call loop's incidents, kept in the same file (open and closed with it).
        self.incidents = SQLiteIncidentStore(self)

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteStore({str(self.path)!r}, {state})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        with self._open_lock:
            starting = self._starting
            if starting is None:
                writer = Writer(
                    self._connect,
                    self._setup,
                    self._unavailable,
                    max_batch=self._max_batch,
                    lock_timeout=self._lock_timeout,
                )
                starting = self._starting = writer.start()
                self._pending = (
                    writer,
                    _ReaderPool(self._readers, self._reader, self._unavailable),
                )
        try:
            # Concurrent openers all wait here for the same start; only then may anyone write.
            await asyncio.wrap_future(starting)
        except BaseException:
            with self._open_lock:
                failed = self._pending if self._starting is starting else None
                if failed is not None:  # leave the store ready for another try
                    self._starting = self._pending = None
            if failed is not None:
                failed[1].close()  # no reader has run yet: nothing to wait for
            raise
        with self._open_lock:
            if self._starting is starting and self._pending is not None:
                self._writer, self._pool = self._pending

    async def aclose(self) -> None:
        with self._open_lock:
            pending, self._starting, self._pending = self._pending, None, None
            self._writer = self._pool = None
        if pending is None:
            return
        writer, pool = pending
        writer.close()
        await asyncio.to_thread(writer.join)
        await asyncio.to_thread(pool.close)

    def write_stats(self) -> WriteStats:
        """How writes have been batched since opening (transactions, operations)."""
        return self._writer.stats() if self._writer else WriteStats(0, 0, 0)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, lock_timeout=self._lock_timeout, max_size=self._max_size)

    def _reader(self) -> sqlite3.Connection:
        return connect(self.path, lock_timeout=self._lock_timeout, readonly=True)

    def _setup(self, conn: sqlite3.Connection) -> None:
        self.opened_at_version = migrate(conn, self.path, on_step=self._log_step)

    def _log_step(self, step: Migration) -> None:
        log.info(
            "outbox %s upgraded to schema version %d: %s", self.path, step.version, step.summary
        )

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailable:
        return unavailable(exc, self.path)

    async def _write(self, operation: Callable[[sqlite3.Connection, float], R]) -> R:
        writer = self._writer
        if writer is None:
            raise StoreUnavailable(_NOT_OPEN.format(path=str(self.path)))
        clock = self._clock
        loop = asyncio.get_running_loop()
        return await writer.submit_async(lambda conn: operation(conn, clock.time()), loop)

    async def _read(self, operation: Callable[[sqlite3.Connection], R]) -> R:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(_NOT_OPEN.format(path=str(self.path)))
        return await asyncio.wrap_future(pool.submit(operation))

    async def ping(self) -> None:
        # Through the writer: the writer is alive and can take the file's lock.
        await self._write(ops.ping)

    async def probe(self) -> None:
        # A real write, committed like any other: a full disk, an I/O error or an immutable
        # file fails it where ping's empty transaction writes no page and passes.
        await self._write(ops.probe)

    # -- writes -------------------------------------------------------------------------------

    async def enqueue_many(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        batch = list(messages)
        answers = await self._write(lambda conn, now: ops.enqueue_many(conn, now, batch))
        if any(answer.created for answer in answers):
            self._signal.notify()
        return answers

    async def claim(self, limit: int, *, lease: float, target: str | None = None) -> list[Claim]:
        check_limit(limit)
        check_positive("lease", lease)
        return await self._write(lambda conn, now: ops.claim(conn, now, limit, lease, target))

    async def mark_delivered(
        self, claim: Claim, *, reply: Mapping[str, typing.Any] | None = None
    ) -> OutboxMessage:
        text = encode_reply(reply)
        return await self._write(lambda conn, now: ops.mark_delivered(conn, now, claim, text))

    async def schedule_retry(
        self, claim: Claim, *, retry_at: float, error: str, errcode: ErrCode = None
    ) -> OutboxMessage:
        check_errcode(errcode)
        return await self._write(
            lambda conn, now: ops.schedule_retry(conn, now, claim, retry_at, error, errcode)
        )

    async def fail(self, claim: Claim, *, error: str, errcode: ErrCode = None) -> OutboxMessage:
        check_errcode(errcode)
        return await self._write(lambda conn, now: ops.fail(conn, now, claim, error, errcode))

    async def release(self, claims: Iterable[Claim]) -> int:
        held = dedupe_claims(claims)
        released = await self._write(lambda conn, now: ops.release(conn, now, held))
        if released:
            self._signal.notify()
        return released

    async def requeue_expired(self) -> list[str]:
        requeued = await self._write(ops.requeue_expired)
        if requeued:
            self._signal.notify()
        return requeued

    async def retry(self, message_id: str, *, due_at: float | None = None) -> OutboxMessage:
        message = await self._write(lambda conn, now: ops.retry(conn, now, message_id, due_at))
        self._signal.notify()
        return message

    async def retry_many(
        self,
        match: DeadLetterFilter,
        *,
        limit: int = 1000,
        due_at: float | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        check_limit(limit)
        if dry_run:
            return await self._read(lambda conn: ops.failed_matching(conn, match, limit))
        retried = await self._write(
            lambda conn, now: ops.retry_many(conn, now, match, limit, due_at)
        )
        if retried:
            self._signal.notify()
        return retried

    async def digest(self, originals: Sequence[str], message: NewMessage) -> OutboxMessage:
        ids = check_digest_request(originals, message)
        digest = await self._write(lambda conn, now: ops.digest(conn, now, ids, message))
        self._signal.notify()
        return digest

    async def prune(self, *, before: float) -> int:
        return await self._write(lambda conn, now: ops.prune(conn, now, before))

    # -- reads --------------------------------------------------------------------------------

    async def get(self, message_id: str) -> OutboxMessage:
        return await self._read(lambda conn: ops.get(conn, message_id))

    async def attempts(self, message_id: str) -> list[Attempt]:
        return await self._read(lambda conn: ops.attempts(conn, message_id))

    async def digest_originals(self, digest_id: str) -> list[OutboxMessage]:
        return await self._read(lambda conn: ops.digest_originals(conn, digest_id))

    async def list_messages(
        self,
        *,
        status: Status | None = None,
        target: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[OutboxMessage]:
        wanted, before = check_listing(status, limit, cursor)
        return await self._read(lambda conn: ops.list_messages(conn, wanted, target, limit, before))

    async def list_queued(
        self, target: str, *, kinds: Collection[str] | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        check_limit(limit)
        wanted = None if kinds is None else list(kinds)
        return await self._read(lambda conn: ops.list_queued(conn, target, wanted, limit))

    async def next_due(self, *, target: str | None = None) -> float | None:
        return await self._read(lambda conn: ops.next_due(conn, target))

    async def stats(self, *, window: float = 60.0) -> OutboxStats:
        check_positive("window", window)
        now = self._clock.time()
        return await self._read(lambda conn: ops.stats(conn, now, window))


_NOT_OPEN = (
    "the outbox {path!r} is not open: use 'async with SQLiteStore(...) as store' "
    "or await store.open() first"
)


class _ReaderPool:
    """Reader threads, each with its own read-only connection, opened on first use."""

    def __init__(
        self,
        size: int,
        connect: Callable[[], sqlite3.Connection],
        unavailable: Callable[[sqlite3.Error], StoreUnavailable],
    ) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="dingpush-outbox-reader"
        )
        self._connect = connect
        self._unavailable = unavailable
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    def submit(self, operation: Callable[[sqlite3.Connection], R]) -> concurrent.futures.Future[R]:
        try:
            return self._executor.submit(self._run, operation)
        except RuntimeError as exc:  # shut down
            raise StoreUnavailable("the outbox store is closed") from exc

    def _run(self, operation: Callable[[sqlite3.Connection], R]) -> R:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        try:
            # One read transaction: a multi-query read (stats) sees a single snapshot.
            conn.execute("BEGIN")
            try:
                return operation(conn)
            finally:
                conn.execute("COMMIT")
        except StoreError:
            raise
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
