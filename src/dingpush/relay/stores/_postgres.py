"""``PostgresStore``: one outbox in PostgreSQL, shared by every relay instance that opens it.

Every operation borrows a connection from a pool (psycopg_pool) and runs one statement in
autocommit mode, or a short transaction where one statement cannot do it (a digest). What keeps
instances from stepping on each other is in the statements (``_postgres_queries.sql``): claims
take rows with ``FOR UPDATE SKIP LOCKED``, settles change a row only while the claim's lease
token is still on it, idempotency keys are a unique index.

Waking: each write that may have made a message claimable wakes this store's waiters at once
and, through ``NOTIFY`` on the schema's channel, those of every other instance; a listener
connection per store turns notifications into wake-ups. Polling (the dispatcher's idle timeout)
remains the fallback when a notification is lost.

Failures: a database that cannot be reached, a connection cut mid-statement, a lock held past
``lock_timeout`` or a statement past ``statement_timeout`` raise ``StoreUnavailable`` (the relay
answers 503); the pool replaces broken connections by itself, so the store recovers when the
database is back. A claim whose answer never arrived is under a lease: it comes back through
``requeue_expired`` once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import typing
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)

import psycopg
import psycopg_pool
from psycopg import errors, sql
from psycopg.rows import DictRow, dict_row

from dingpush import Clock, ConfigError
from dingpush.lowlevel import (
    POSTGRES_SCHEMA,
    SYSTEM_CLOCK,
    Migration,
    check_schema,
    describe_dsn,
    migrate,
    session_settings,
)

from . import _postgres_ops as ops
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
from ._errors import IncompatibleOutbox, StoreError, StoreUnavailable
from ._postgres_batch import BatchStats, EnqueueBatcher
from ._postgres_incidents import PostgresIncidentStore
from ._postgres_schema import COMPONENT, MIGRATIONS, unavailable

__all__ = ["PostgresStore"]

R = typing.TypeVar("R")
Conn = psycopg.AsyncConnection[DictRow]

log = logging.getLogger("dingpush.relay.outbox")

#: Notifications to other instances are sent at most this often (seconds): a burst of enqueues
#: wakes them once, and the first write after a quiet spell wakes them at once.
NOTIFY_SPACING = 0.01
_LISTEN_RETRY = (0.1, 5.0)  # first and longest pause before the listener reconnects

_DB_NOW = "extract(epoch FROM clock_timestamp())"
# Taken when free or run out, renewed by its holder, left alone otherwise: no row, not held.
_HOLD_TARGET = f"""
INSERT INTO target_leases AS l (target, holder, until, taken_at)
VALUES (%(target)s, %(holder)s, {_DB_NOW} + %(seconds)s, {_DB_NOW})
ON CONFLICT (target) DO UPDATE
   SET holder = excluded.holder, until = excluded.until,
       taken_at = CASE WHEN l.holder = excluded.holder THEN l.taken_at ELSE excluded.taken_at END
 WHERE l.holder = excluded.holder OR l.until <= {_DB_NOW}
RETURNING holder
"""
_RELEASE_TARGETS = "DELETE FROM target_leases WHERE holder = %(holder)s"
_TARGET_HOLDERS = f"SELECT target, holder FROM target_leases WHERE until > {_DB_NOW}"


class PostgresStore(BaseStore):
    """The outbox in a PostgreSQL schema, for one relay or several sharing it.

    Use it as ``async with PostgresStore("postgresql://relay@db/dingpush") as store:``;
    opening creates the schema's tables or brings them to the current version (once, however
    many instances start together), and an instance of an older dingpush keeps working on a
    schema a newer one migrated, as long as the newer one says it may.

    Its connections belong to the event loop that opened it: use it from that loop.

    Args:
        dsn: The database, as ``postgresql://user@host:5432/dbname`` or ``host=… dbname=…``
            (libpq's ``PG*`` environment variables fill in what it leaves out).
        schema: The schema holding the outbox's tables (created when missing). Instances that
            share an outbox use the same one.
        clock: Where time comes from (``dingpush.testing.FakeClock`` in tests). Due times and
            leases are stamped with it: keep the instances' clocks synchronised (NTP).
        pool_size: The most connections this store opens for its operations (one more listens
            for other instances' notifications).
        lock_timeout: Seconds a write waits for a free connection, and then for a row or table
            lock another session holds, before failing with ``StoreUnavailable``.
        statement_timeout: Seconds after which the server cancels any one statement.
        connect_timeout: Seconds to wait for a new connection to the server.
        application_name: How this store's sessions show in ``pg_stat_activity``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = POSTGRES_SCHEMA,
        clock: Clock | None = None,
        pool_size: int = 10,
        lock_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        application_name: str = "dingpush-relay",
    ) -> None:
        super().__init__()
        self.schema = check_schema(schema)
        self._where = f"{describe_dsn(dsn, 'PostgresStore')} (schema {schema!r})"
        check_limit(pool_size)
        check_positive("lock_timeout", lock_timeout)
        check_positive("statement_timeout", statement_timeout)
        check_positive("connect_timeout", connect_timeout)
        self._dsn = dsn
        self._clock = clock or SYSTEM_CLOCK
        self._pool_size = pool_size
        self._lock_timeout = lock_timeout
        self._statement_timeout = statement_timeout
        self._connect_timeout = connect_timeout
        self._connect_args: dict[str, typing.Any] = {
            # libpq counts whole seconds and treats anything under 2 as 2
            "connect_timeout": max(int(connect_timeout + 0.999), 2),
            "application_name": application_name,
        }
        # NOTIFY channels are identifiers: at most 63 bytes.
        self._channel = f"dingpush_outbox.{schema}"[:63]
        self._instance = uuid.uuid4().hex
        self._pool: psycopg_pool.AsyncConnectionPool[Conn] | None = None
        self._batcher: EnqueueBatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._announce = asyncio.Event()
        self._listening = asyncio.Event()
        self._open_lock = asyncio.Lock()
        #: The outbox's schema version when this store opened it (0 for a new schema).
        self.opened_at_version: int | None = None
        #: The on-call loop's incidents, in the same schema (shared by the fleet).
        self.incidents = PostgresIncidentStore(self)

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return f"PostgresStore({self._where}, {state})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            self.opened_at_version = await asyncio.to_thread(self._migrate)
            pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True, "row_factory": dict_row, **self._connect_args},
                configure=self._configure,
                # A connection the server dropped while idle (a restart, pg_terminate_backend)
                # is found and replaced before an operation gets it.
                check=psycopg_pool.AsyncConnectionPool.check_connection,
                timeout=self._lock_timeout,
                # While the server is unreachable the pool retries with growing pauses; giving
                # up after this long lets the next operation start afresh, so the store is
                # back soon after the server is, even after a long outage.
                reconnect_timeout=max(10.0, 2 * self._connect_timeout),
                name=f"dingpush-outbox-{self.schema}",
                open=False,
            )
            try:
                await pool.open(wait=True, timeout=self._connect_args["connect_timeout"] * 2)
            except (psycopg_pool.PoolTimeout, psycopg.Error) as exc:
                await pool.close()
                raise unavailable(exc, self._where) from exc
            self._pool = pool
            # Group commit: up to 4 INSERTs in flight, leaving connections for the rest.
            self._batcher = EnqueueBatcher(
                self._insert, writers=max(min(4, self._pool_size - 1), 1)
            )
            self._announce = asyncio.Event()
            self._listening = asyncio.Event()
            self._tasks = [
                asyncio.create_task(self._listen(), name="dingpush-outbox-listen"),
                asyncio.create_task(self._announcer(pool), name="dingpush-outbox-notify"),
            ]
            # Wait (briefly) until other instances' notifications reach this one.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connect_args["connect_timeout"]):
                    await self._listening.wait()

    async def aclose(self) -> None:
        async with self._open_lock:
            pool, self._pool = self._pool, None
            batcher, self._batcher = self._batcher, None
            tasks, self._tasks = self._tasks, []
        if batcher is not None:
            await batcher.aclose()
        for task in tasks:
            await _stop(task)
        if pool is not None:
            await pool.close()

    def write_stats(self) -> BatchStats:
        """How enqueues have been grouped into INSERTs since opening."""
        return self._batcher.stats() if self._batcher else BatchStats(0, 0, 0)

    def _migrate(self) -> int:
        """Create or upgrade the schema (in a worker thread: it runs once per open)."""
        statement, params = session_settings(
            self.schema,
            lock_timeout=max(self._lock_timeout, 10.0),
            statement_timeout=max(self._statement_timeout, 300.0),
        )
        try:
            with psycopg.connect(self._dsn, autocommit=True, **self._connect_args) as conn:
                conn.execute(statement, params)
                return migrate(
                    conn,
                    schema=self.schema,
                    component=COMPONENT,
                    steps=MIGRATIONS,
                    what=f"the outbox {self._where}",
                    on_step=self._log_step,
                )
        except ConfigError as exc:
            raise IncompatibleOutbox(str(exc)) from None
        except errors.DuplicateTable as exc:
            raise IncompatibleOutbox(
                f"schema {self.schema!r} of {self._where} already holds a table "
                f"that is not dingpush's ({exc.diag.message_primary}): give the store a "
                "schema of its own"
            ) from None
        except psycopg.Error as exc:
            raise unavailable(exc, self._where) from exc

    def _log_step(self, step: Migration) -> None:
        log.info("outbox %s at schema version %d: %s", self._where, step.version, step.summary)

    async def _configure(self, conn: Conn) -> None:
        statement, params = session_settings(
            self.schema,
            lock_timeout=self._lock_timeout,
            statement_timeout=self._statement_timeout,
        )
        await conn.execute(statement, params)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; any database failure comes out as a ``StoreError``."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(_NOT_OPEN.format(where=self._where))
        try:
            async with pool.connection() as conn:
                yield conn
        except StoreError:
            raise
        except psycopg.DataError as exc:
            raise ValueError(f"the outbox cannot store this value: {exc}") from exc
        except psycopg_pool.PoolClosed as exc:
            raise StoreUnavailable("the outbox store is closed") from exc
        except (psycopg.ProgrammingError, psycopg.IntegrityError) as exc:
            if not isinstance(
                exc,
                errors.UndefinedTable | errors.UndefinedFunction | errors.InsufficientPrivilege,
            ):
                raise  # a bug in a query, not a state of the database
            raise unavailable(exc, self._where) from exc
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise unavailable(exc, self._where) from exc

    async def _run(self, operation: Callable[[Conn, float], Awaitable[R]]) -> R:
        async with self._connection() as conn:
            return await operation(conn, self._clock.time())

    async def _transaction(self, operation: Callable[[Conn, float], Awaitable[R]]) -> R:
        async with self._connection() as conn, conn.transaction():
            return await operation(conn, self._clock.time())

    # -- waking other instances -----------------------------------------------------------------

    def _woke(self) -> None:
        """Work may be claimable: wake this store's waiters now and the others' soon."""
        self._signal.notify()
        self._announce.set()

    async def _announcer(self, pool: psycopg_pool.AsyncConnectionPool[Conn]) -> None:
        while True:
            await self._announce.wait()
            self._announce.clear()
            try:
                async with pool.connection() as conn:
                    await ops.notify(conn, self._channel, self._instance)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                # Only a hint is lost: the other instances poll.
                log.debug("could not notify other relay instances: %s", exc)
            await asyncio.sleep(NOTIFY_SPACING)

    async def _listen(self) -> None:
        pause, longest = _LISTEN_RETRY
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, **self._connect_args
                )
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening.set()
                    pause = _LISTEN_RETRY[0]
                    self._signal.notify()  # what was missed while not listening is due now
                    async for note in conn.notifies():
                        if note.payload != self._instance:
                            self._signal.notify()
            except (psycopg.Error, OSError) as exc:
                log.info("outbox %s: listening for other instances failed: %s", self._where, exc)
            self._listening.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    # -- readiness ----------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` (saying why) unless a commit could succeed right now.

        A real write, rolled back: it takes the lock every enqueue takes (so a table locked by
        another session shows here too) and inserts a row, which a read-only or unreachable
        database, or one out of resources, refuses.
        """

        async def probe(conn: Conn, now: float) -> None:
            async with conn.transaction(force_rollback=True):
                await ops.probe(conn, now)

        await self._run(probe)

    async def probe(self) -> None:
        """Prove that a write can commit now; raise ``StoreUnavailable`` naming why not.

        ``ping()``'s write, deleted again and committed: the commit writes and flushes WAL, which
        a full disk or a read-only database refuses, and leaves no row. No NOTIFY is sent.
        """
        await self._transaction(lambda conn, now: ops.probe(conn, now, commit=True))

    # -- writes -------------------------------------------------------------------------------

    async def enqueue_many(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        batch = list(messages)
        if not batch:
            return []
        for _ in range(3):
            batcher = self._batcher
            if batcher is None:
                raise StoreUnavailable(_NOT_OPEN.format(where=self._where))
            try:
                answers = await batcher.enqueue(batch)
                break
            except ops._KeyVanished:
                continue  # a pruned key's message: inserting again now stores it
        else:
            raise StoreUnavailable(f"the outbox {self._where} kept changing under this enqueue")
        if any(answer.created for answer in answers):
            self._woke()
        return answers

    async def _insert(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        return await self._run(lambda conn, now: ops.enqueue_many(conn, now, messages))

    async def claim(self, limit: int, *, lease: float, target: str | None = None) -> list[Claim]:
        check_limit(limit)
        check_positive("lease", lease)
        return await self._run(lambda conn, now: ops.claim(conn, now, limit, lease, target))

    async def mark_delivered(
        self, claim: Claim, *, reply: Mapping[str, typing.Any] | None = None
    ) -> OutboxMessage:
        text = encode_reply(reply)
        return await self._run(lambda conn, now: ops.mark_delivered(conn, now, claim, text))

    async def schedule_retry(
        self, claim: Claim, *, retry_at: float, error: str, errcode: ErrCode = None
    ) -> OutboxMessage:
        check_errcode(errcode)
        return await self._run(
            lambda conn, now: ops.schedule_retry(conn, now, claim, retry_at, error, errcode)
        )

    async def fail(self, claim: Claim, *, error: str, errcode: ErrCode = None) -> OutboxMessage:
        check_errcode(errcode)
        return await self._run(lambda conn, now: ops.fail(conn, now, claim, error, errcode))

    async def release(self, claims: Iterable[Claim]) -> int:
        held = dedupe_claims(claims)
        released = await self._run(lambda conn, now: ops.release(conn, now, held))
        if released:
            self._woke()
        return released

    async def requeue_expired(self) -> list[str]:
        requeued = await self._run(ops.requeue_expired)
        if requeued:
            self._woke()
        return requeued

    # -- target leases (one instance of a fleet serves a target alone) -------------------------

    async def hold_target(self, target: str, holder: str, seconds: float) -> bool:
        """Take or renew ``target``'s lease for ``holder`` for ``seconds``; whether it holds it.

        One statement: it takes the lease when no one holds it or its holder's ran out
        (on the database's clock), renews it when ``holder`` has it, and leaves it otherwise.
        """
        check_positive("seconds", seconds)
        params = {"target": target, "holder": holder, "seconds": float(seconds)}

        async def hold(conn: Conn, now: float) -> bool:
            cursor = await conn.execute(_HOLD_TARGET, params)
            return await cursor.fetchone() is not None

        return await self._run(hold)

    async def release_targets(self, holder: str) -> int:
        """Give up every target lease ``holder`` has (a clean shutdown); how many there were."""

        async def release(conn: Conn, now: float) -> int:
            cursor = await conn.execute(_RELEASE_TARGETS, {"holder": holder})
            return cursor.rowcount

        return await self._run(release)

    async def target_holders(self) -> dict[str, str]:
        """Each target whose lease is held now, and its holder."""

        async def holders(conn: Conn, now: float) -> dict[str, str]:
            cursor = await conn.execute(_TARGET_HOLDERS)
            return {row["target"]: row["holder"] for row in await cursor.fetchall()}

        return await self._run(holders)

    async def retry(self, message_id: str, *, due_at: float | None = None) -> OutboxMessage:
        message = await self._run(lambda conn, now: ops.retry(conn, now, message_id, due_at))
        self._woke()
        return message

    async def cancel(self, message_id: str, *, reason: str) -> OutboxMessage:
        return await self._run(lambda conn, now: ops.cancel(conn, now, message_id, reason))

    async def note_recall(self, message_id: str, recall: Mapping[str, typing.Any]) -> OutboxMessage:
        text = encode_reply(recall)
        assert text is not None
        return await self._run(lambda conn, now: ops.note_recall(conn, message_id, text))

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
            return await self._run(lambda conn, now: ops.failed_matching(conn, match, limit))
        ids = await self._run(lambda conn, now: ops.retry_many(conn, now, match, limit, due_at))
        if ids:
            self._woke()
        return ids

    async def digest(self, originals: Sequence[str], message: NewMessage) -> OutboxMessage:
        ids = check_digest_request(originals, message)
        digest = await self._transaction(lambda conn, now: ops.digest(conn, now, ids, message))
        self._woke()
        return digest

    async def prune(self, *, before: float) -> int:
        return await self._run(lambda conn, now: ops.prune(conn, before))

    # -- reads --------------------------------------------------------------------------------

    async def get(self, message_id: str) -> OutboxMessage:
        return await self._run(lambda conn, now: ops.get(conn, message_id))

    async def attempts(self, message_id: str) -> list[Attempt]:
        return await self._run(lambda conn, now: ops.attempts(conn, message_id))

    async def digest_originals(self, digest_id: str) -> list[OutboxMessage]:
        return await self._run(lambda conn, now: ops.digest_originals(conn, digest_id))

    async def list_messages(
        self,
        *,
        status: Status | None = None,
        target: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[OutboxMessage]:
        wanted, before = check_listing(status, limit, cursor)
        return await self._run(
            lambda conn, now: ops.list_messages(conn, wanted, target, limit, before)
        )

    async def list_queued(
        self, target: str, *, kinds: Collection[str] | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        check_limit(limit)
        wanted = None if kinds is None else list(kinds)
        return await self._run(lambda conn, now: ops.list_queued(conn, target, wanted, limit))

    async def next_due(self, *, target: str | None = None) -> float | None:
        return await self._run(lambda conn, now: ops.next_due(conn, target))

    async def stats(self, *, window: float = 60.0) -> OutboxStats:
        check_positive("window", window)
        return await self._run(lambda conn, now: ops.stats(conn, now, window))


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for its end.

    A cancellation can be swallowed inside psycopg_pool (a connection handed over at the moment
    it arrives is returned, not refused), so cancel again until the task is over.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        log.warning("a background task of the outbox failed: %r", task.exception())


_NOT_OPEN = (
    "the outbox {where} is not open: use 'async with PostgresStore(...) as store' "
    "or await store.open() first"
)
