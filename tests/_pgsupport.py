"""The PostgreSQL server the tests use, and a scratch schema per test, dropped after it.

The server is the one at 127.0.0.1:5432 (database ``test``, trust auth) unless
``DINGPUSH_TEST_POSTGRES`` names another. A test that needs it and cannot reach it fails with
the fix in its message: nothing is skipped for want of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import secrets
import threading
import time
import typing

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

DSN = os.environ.get("DINGPUSH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

#: Every schema this test run creates starts with this (several runs may share the server).
RUN = f"dpt_{os.getpid()}_{secrets.token_hex(3)}"

_names = itertools.count(1)
_lock = threading.Lock()
_created: set[str] = set()
_reachable: bool | None = None


def require_server() -> None:
    """Fail the calling test (never skip it) when the server cannot be reached."""
    global _reachable
    if _reachable is None:
        reason = ""
        try:
            with psycopg.connect(DSN, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        _reachable = not reason
        if reason:
            pytest.fail(
                f"PostgreSQL is not reachable at {DSN} ({reason}). These tests need a real "
                "server: start it (service postgresql start) and create the database "
                "(createdb -U postgres test), or set DINGPUSH_TEST_POSTGRES to the DSN of "
                "one you can use. Nothing is skipped for want of it.",
                pytrace=False,
            )
    if not _reachable:
        pytest.fail(f"PostgreSQL is not reachable at {DSN} (see the first failure)", pytrace=False)


def scratch_schema() -> str:
    """A schema name no other test (or test run) uses; ``drop_schema`` removes it."""
    require_server()
    with _lock:
        if not _created:
            atexit.register(drop_all)
        name = f"{RUN}_{next(_names)}"
        _created.add(name)
    return name


def drop_schema(name: str) -> None:
    with psycopg.connect(DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    with _lock:
        _created.discard(name)


def drop_all() -> None:
    """Drop what this run left behind (a test that failed before cleaning up)."""
    for name in sorted(_created):
        with contextlib.suppress(psycopg.Error):
            drop_schema(name)


def terminate_backends(application_name: str) -> int:
    """``pg_terminate_backend`` every session of that name; how many there were."""
    with psycopg.connect(DSN, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


class Proxy:
    """A loopback TCP proxy to the server, which a test cuts and restores.

    Cutting it drops every connection through it and refuses new ones, as a database that went
    down or a network partition would; restoring accepts connections again on the same port.
    """

    def __init__(self) -> None:
        parts = psycopg.conninfo.conninfo_to_dict(DSN)
        self._upstream = (
            str(parts.get("host") or "127.0.0.1"),
            int(str(parts.get("port") or 5432)),
        )
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def dsn(self) -> str:
        return psycopg.conninfo.make_conninfo(DSN, host="127.0.0.1", port=str(self.port))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def restore(self) -> None:
        await self.start()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._links.discard(writer)
            writer.transport.abort()


async def wait_until_blocked(application_name: str, *, timeout: float = 30.0) -> None:
    """Wait until a session of that name waits for a lock (a bound, not a timing)."""
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event_type = 'Lock'",
                (application_name,),
            )
            row = await cursor.fetchone()
            if row is not None and row[0] > 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no session of {application_name!r} ever waited for a lock")
            await asyncio.sleep(0.02)


class ThreadedProxy:
    """A :class:`Proxy` on an event loop of its own thread.

    For code under test that talks to the database synchronously from the test's event loop
    (``PostgresRateLimiter``): a proxy on that same loop could not pump its bytes meanwhile.
    """

    def __init__(self) -> None:
        self._proxy = Proxy()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        return self._proxy.dsn

    def _call(
        self, work: typing.Callable[[], typing.Coroutine[typing.Any, typing.Any, None]]
    ) -> None:
        asyncio.run_coroutine_threadsafe(work(), self._loop).result(timeout=30)

    def start(self) -> None:
        self._call(self._proxy.start)

    def cut(self) -> None:
        self._call(self._proxy.cut)

    def restore(self) -> None:
        self._call(self._proxy.restore)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
