"""Group commit: the one thread that writes to an SQLite outbox.

Callers hand the writer operations (functions of a connection) and get a future back. The writer
takes every operation waiting in its queue, runs them in one ``BEGIN IMMEDIATE`` transaction —
each in its own savepoint, so one operation's refusal (an unknown id, a lost lease) undoes only
that operation — commits once, and only then resolves the futures. While one batch is being
fsynced the next one gathers, so under load many callers share one fsync, and a caller is never
answered before its write is durable. No timer is involved: a lone write commits at once.

An asyncio caller (``submit_async``) gets an ``asyncio.Future`` instead, and the writer settles
all of a batch's asyncio futures with one ``call_soon_threadsafe`` per event loop: a
``concurrent.futures.Future`` wrapped by ``asyncio.wrap_future`` costs a wake-up of the event
loop per operation, which the 500-target profile showed on both threads.

An SQLite failure (disk full, I/O error, the file locked beyond the lock timeout) undoes the whole
batch and fails every operation in it with ``StoreUnavailable``: nothing in it was stored.

The lock timeout is one budget per operation, counted from when it was submitted: a batch waits
for another process's lock only as long as its oldest operation has left. (Waiting the whole
timeout again for each batch let an operation that arrived while the batch before it waited
spend nearly twice the timeout: 9.4-10 s for 5 s, past a caller's own 10 s.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import queue
import sqlite3
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import StoreUnavailable

__all__ = ["WriteStats", "Writer"]

log = logging.getLogger("dingpush.relay.outbox")

R = typing.TypeVar("R")
Operation = Callable[[sqlite3.Connection], typing.Any]
_Future = typing.Union["concurrent.futures.Future[typing.Any]", "asyncio.Future[typing.Any]"]
#: An operation, its caller's future, and when its wait for the file's lock must end.
_Item = tuple[Operation, _Future, float]

# sqlite3 errors that are an operation's own fault (a bug or a constraint), not the file's:
# they undo that operation only.
_OPERATION_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.NotSupportedError,
)

_STOP = object()


@dataclass(frozen=True, slots=True)
class WriteStats:
    """How the writer has batched: ``operations`` committed in ``transactions`` commits."""

    transactions: int
    operations: int
    largest_batch: int

    @property
    def mean_batch(self) -> float:
        return self.operations / self.transactions if self.transactions else 0.0


class Writer:
    """A thread that owns the write connection and commits queued operations in batches.

    Args:
        connect: Opens the write connection (called on the writer thread).
        setup: Runs once on the new connection before any operation (migrations).
        unavailable: Turns an SQLite error into the ``StoreUnavailable`` callers see.
        max_batch: The most operations one transaction takes; 1 commits each on its own.
        lock_timeout: Seconds an operation may wait, from its submission, for another
            process's lock on the file; None leaves the connection's own busy timeout alone.
        monotonic: Where the lock budget's time comes from (a fake clock's in tests).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        setup: Callable[[sqlite3.Connection], None],
        unavailable: Callable[[sqlite3.Error], StoreUnavailable],
        *,
        max_batch: int,
        lock_timeout: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "dingpush-outbox-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch!r}")
        self._connect = connect
        self._setup = setup
        self._unavailable = unavailable
        self._max_batch = max_batch
        self._lock_timeout = lock_timeout
        self._monotonic = monotonic
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closing = False
        self._failure: BaseException | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._transactions = self._operations = self._largest = 0

    def start(self) -> concurrent.futures.Future[None]:
        """Start the thread; the future resolves once the connection is open and set up."""
        self._thread.start()
        return self._ready

    def submit(self, operation: Callable[[sqlite3.Connection], R]) -> concurrent.futures.Future[R]:
        """Queue ``operation`` for the next batch; its future resolves after the commit."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._put(operation, future)
        return future

    def submit_async(
        self, operation: Callable[[sqlite3.Connection], R], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[R]:
        """:meth:`submit` for a caller on ``loop``: an ``asyncio.Future``, settled on ``loop``.

        Cancelling it before its batch starts drops the operation, as for :meth:`submit`.
        """
        future: asyncio.Future[R] = loop.create_future()
        self._put(operation, future)
        return future

    def _put(self, operation: Operation, future: _Future) -> None:
        with self._lock:
            if self._closing:
                raise StoreUnavailable("the outbox store is closed")
            if self._failure is not None:
                raise StoreUnavailable(f"the outbox writer has stopped: {self._failure!r}")
            budget = math.inf if self._lock_timeout is None else self._lock_timeout
            self._queue.put((operation, future, self._monotonic() + budget))

    def close(self) -> None:
        """Stop taking operations; those already queued are still committed (idempotent)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def stats(self) -> WriteStats:
        return WriteStats(self._transactions, self._operations, self._largest)

    # -- the writer thread -------------------------------------------------------------------

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._stop_with(exc)
            return
        try:
            self._setup(conn)
        except BaseException as exc:
            conn.close()
            self._stop_with(exc)
            return
        self._ready.set_result(None)
        try:
            self._serve(conn)
        except BaseException as exc:  # a bug in the loop itself: never leave a caller hanging
            log.exception("the outbox writer stopped")
            with self._lock:
                self._failure = exc
        finally:
            failure = self._failure
            self._fail_pending(
                StoreUnavailable(f"the outbox writer has stopped: {failure!r}")
                if failure is not None
                else StoreUnavailable("the outbox store is closed")
            )
            conn.close()

    def _stop_with(self, exc: BaseException) -> None:
        with self._lock:
            self._failure = exc
        self._ready.set_exception(exc)

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [typing.cast(_Item, first)]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(typing.cast(_Item, item))
            self._commit(conn, batch)
            if stop:
                return

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        # A caller that was cancelled before its turn is dropped: its write never happens.
        live = [item for item in batch if _start(item[1])]
        if not live:
            return
        outcomes: list[tuple[_Future, bool, typing.Any]] = []
        try:
            if self._lock_timeout is not None:
                left = min(deadline for _, _, deadline in live) - self._monotonic()
                conn.execute(f"PRAGMA busy_timeout = {max(round(left * 1000), 0):d}")
            conn.execute("BEGIN IMMEDIATE")
            for operation, future, _ in live:
                conn.execute("SAVEPOINT operation")
                try:
                    value = operation(conn)
                except sqlite3.DatabaseError as exc:
                    if not isinstance(exc, _OPERATION_ERRORS):
                        raise  # the file's failure, not this operation's: undo the batch
                    conn.execute("ROLLBACK TO operation")
                    outcomes.append((future, False, exc))
                except Exception as exc:
                    conn.execute("ROLLBACK TO operation")
                    outcomes.append((future, False, exc))
                else:
                    outcomes.append((future, True, value))
                conn.execute("RELEASE operation")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abandon(conn)
            error = self._unavailable(exc)
            _settle_all([(future, False, error) for _, future, _ in live])
            return
        except BaseException as exc:
            self._abandon(conn)
            stopped = StoreUnavailable(f"the outbox writer has stopped: {exc!r}")
            _settle_all([(future, False, stopped) for _, future, _ in live])
            raise
        self._transactions += 1
        self._operations += len(live)
        self._largest = max(self._largest, len(live))
        _settle_all(outcomes)

    def _abandon(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:  # SQLite may have rolled back already (disk full, I/O error)
            log.debug("rollback after a failed outbox batch failed too", exc_info=True)

    def _fail_pending(self, error: StoreUnavailable) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _, future, _ = typing.cast(_Item, item)
                if _start(future):
                    _settle_all([(future, False, error)])


def _start(future: _Future) -> bool:
    """Whether the caller still waits (an asyncio caller's cancel is seen on the next batch)."""
    if isinstance(future, concurrent.futures.Future):
        return future.set_running_or_notify_cancel()
    return not future.done()


def _settle_all(outcomes: list[tuple[_Future, bool, typing.Any]]) -> None:
    """Resolve the futures: threads' at once, each event loop's in one call on that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Future, bool, typing.Any]]] = {}
    for outcome in outcomes:
        future = outcome[0]
        if isinstance(future, concurrent.futures.Future):
            _settle(future, outcome[1], outcome[2])
        else:
            by_loop.setdefault(future.get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle_on_loop, settled)


def _settle_on_loop(outcomes: list[tuple[_Future, bool, typing.Any]]) -> None:
    for future, ok, value in outcomes:
        if not future.done():  # cancelled meanwhile
            _settle(future, ok, value)


def _settle(future: _Future, ok: bool, value: typing.Any) -> None:
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
