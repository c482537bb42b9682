"""The PostgreSQL server the tests use, and a scratch schema per test, dropped after it.

The server is the one at 127.0.0.1:5432 (database ``test``, trust auth) unless
``DINGPUSH_TEST_POSTGRES`` names another. A test that needs it and cannot reach it fails with
the fix in its message: nothing is skipped for want of PostgreSQL.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import secrets
import threading

import psycopg
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
        try:
            with psycopg.connect(DSN, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            _reachable = True
        except psycopg.Error as exc:
            _reachable = False
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
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
