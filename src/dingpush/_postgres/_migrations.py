"""What dingpush's PostgreSQL parts share: psycopg on demand, schemas, versioned migrations.

The relay's outbox (``dingpush.relay.stores.PostgresStore``), :class:`PostgresRateLimiter` and
:class:`PostgresTokenCache` each keep their tables in one schema of a database (``dingpush`` by
default) and bring them to their current version when they first connect.

Migrations: a component (``outbox``, ``ratelimit``, ``tokens``) lists its steps; the table
``dingpush_migrations`` records each applied step. Applying runs in one transaction that first
takes a transaction-scoped advisory lock for the schema, so instances starting together wait for
each other and the steps run once: the second instance finds them recorded. Every step records
``compatible_from``, the oldest schema version whose code still works on the result, so an older
instance still running during a rolling upgrade keeps working (and one too old to do so refuses
to start with a message saying so). See docs/postgres.md for the rule a step must follow.

psycopg is imported only when a PostgreSQL object is created (``import dingpush`` never loads
it); without it the error says which extra to install.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import typing
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dingpush._errors import ConfigError

if typing.TYPE_CHECKING:
    import psycopg

__all__ = [
    "INSTALL_HINT",
    "POSTGRES_SCHEMA",
    "Migration",
    "Session",
    "check_schema",
    "describe_dsn",
    "migrate",
    "require_psycopg",
    "session_settings",
]

log = logging.getLogger("dingpush")

R = typing.TypeVar("R")

#: The schema dingpush's tables live in unless told otherwise.
POSTGRES_SCHEMA = "dingpush"
INSTALL_HINT = "pip install 'dingpush[postgres]'"

#: Advisory lock class for migrations: "DPSH", the SQLite outbox's application id too.
_LOCK_CLASS = 0x44505348
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS dingpush_migrations (
    component       text NOT NULL,
    version         integer NOT NULL,
    summary         text NOT NULL,
    compatible_from integer NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    applied_by      text NOT NULL DEFAULT current_setting('application_name'),
    PRIMARY KEY (component, version)
)
"""
_CURRENT = """
SELECT version, compatible_from FROM dingpush_migrations
 WHERE component = %(component)s ORDER BY version DESC LIMIT 1
"""
_RECORD = """
INSERT INTO dingpush_migrations (component, version, summary, compatible_from)
VALUES (%(component)s, %(version)s, %(summary)s, %(compatible_from)s)
"""


def require_psycopg(what: str, *, pool: bool = False) -> None:
    """Make sure psycopg 3 (and psycopg_pool) can be imported; else say which extra brings it."""
    for name in ("psycopg", "psycopg_pool") if pool else ("psycopg",):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ModuleNotFoundError(
                f"{what} needs {name}, which is not installed: {INSTALL_HINT}", name=name
            ) from exc


def check_schema(schema: str) -> str:
    """Accept a plain lower-case identifier, the kind that needs no quoting anywhere."""
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise ConfigError(
            f"schema {schema!r} is not a plain PostgreSQL identifier: use lower-case letters, "
            "digits and underscores, starting with a letter (e.g. 'dingpush')"
        )
    return schema


def describe_dsn(dsn: str, what: str) -> str:
    """Check a DSN and name the database it points at, for messages and reprs: no password.

    Raises ``ConfigError`` for a DSN psycopg cannot read.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError(f"{what} needs a DSN such as 'postgresql://user@host:5432/dbname'")
    try:
        info = conninfo_to_dict(dsn)
    except ProgrammingError:
        raise ConfigError(
            f"{what}: the DSN is not a PostgreSQL connection string (write it as "
            "'postgresql://user@host:5432/dbname' or 'host=... dbname=...')"
        ) from None
    host = str(info.get("host") or "localhost")
    port = str(info.get("port") or 5432)
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or '?'}"


def session_settings(
    schema: str, *, lock_timeout: float, statement_timeout: float
) -> tuple[str, dict[str, str]]:
    """The statement (and its parameters) that sets up a session for dingpush's tables.

    ``search_path`` points at the schema only, so queries name tables without it; commits wait
    for the disk whatever the database's default (``synchronous_commit``).
    """
    statement = (
        "SELECT set_config('search_path', %(schema)s, false),"
        " set_config('lock_timeout', %(lock_timeout)s, false),"
        " set_config('statement_timeout', %(statement_timeout)s, false),"
        " set_config('idle_in_transaction_session_timeout', %(idle)s, false),"
        " set_config('synchronous_commit', 'on', false)"
    )
    return statement, {
        "schema": schema,
        "lock_timeout": _ms(lock_timeout),
        "statement_timeout": _ms(statement_timeout),
        # A client that vanished mid-transaction must not hold its locks for long.
        "idle": _ms(max(statement_timeout, 60.0)),
    }


def _ms(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 1)}ms"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``statements`` take a component from ``version - 1`` to ``version``.

    ``compatible_from`` is the oldest schema version whose code still works once this step is
    applied. An additive step (new tables, new columns with defaults, new indexes) keeps the
    previous step's value; a step that removes or changes what older code uses sets it to its
    own version, and older instances then refuse to start until they are upgraded.
    """

    version: int
    summary: str
    statements: tuple[str, ...]
    compatible_from: int = 1


def migrate(
    conn: psycopg.Connection[typing.Any],
    *,
    schema: str,
    component: str,
    steps: Sequence[Migration],
    what: str,
    on_step: Callable[[Migration], None] | None = None,
) -> int:
    """Bring ``component``'s tables in ``schema`` to its last step; return the version found.

    ``conn`` is in autocommit mode. The steps missing run in one transaction under an advisory
    lock, so concurrent callers apply them once between them; ``on_step`` hears of each step
    this call applied, after the commit. A schema written by a newer dingpush is accepted when
    its ``compatible_from`` allows this version, refused with ``ConfigError`` otherwise.
    """
    from psycopg import sql

    known = steps[-1].version
    found = _current(conn, schema, component)
    if found is not None and found[0] >= known:
        return _accept(found, known, schema, component, what)
    applied: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _lock_key(schema)))
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute("SELECT set_config('search_path', %s, true)", (schema,))
        conn.execute(_MIGRATIONS_TABLE)
        row = conn.execute(_CURRENT, {"component": component}).fetchone()
        found = None if row is None else (int(row[0]), int(row[1]))
        before = 0 if found is None else found[0]
        for step in steps:
            if step.version > before:
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute(
                    _RECORD,
                    {
                        "component": component,
                        "version": step.version,
                        "summary": step.summary,
                        "compatible_from": step.compatible_from,
                    },
                )
                applied.append(step)
    for step in applied:
        log.info(
            "%s: schema %r brought to %s version %d: %s",
            what,
            schema,
            component,
            step.version,
            step.summary,
        )
        if on_step is not None:
            on_step(step)
    if found is not None and found[0] > known:
        return _accept(found, known, schema, component, what)
    return 0 if found is None else found[0]


def _current(
    conn: psycopg.Connection[typing.Any], schema: str, component: str
) -> tuple[int, int] | None:
    """The component's (version, compatible_from), or None when nothing is recorded yet."""
    table = conn.execute("SELECT to_regclass(%s)", (f"{schema}.dingpush_migrations",)).fetchone()
    if table is None or table[0] is None:
        return None
    from psycopg import sql

    query = sql.SQL(
        "SELECT version, compatible_from FROM {}.dingpush_migrations"
        " WHERE component = %s ORDER BY version DESC LIMIT 1"
    ).format(sql.Identifier(schema))
    row = conn.execute(query, (component,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _accept(found: tuple[int, int], known: int, schema: str, component: str, what: str) -> int:
    version, compatible_from = found
    if version > known:
        if known < compatible_from:
            raise ConfigError(
                f"{what}: schema {schema!r} holds {component} version {version}, written by a "
                f"newer dingpush that needs at least version {compatible_from}; this one knows "
                f"up to {known}: upgrade dingpush on this instance"
            )
        log.info(
            "%s: schema %r holds %s version %d from a newer dingpush; this one (version %d) "
            "works with it",
            what,
            schema,
            component,
            version,
            known,
        )
    return version


def _lock_key(schema: str) -> int:
    """The advisory lock's second key: the schema's CRC-32 as a signed int4."""
    key = zlib.crc32(schema.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


class Session:
    """One connection of this process to a schema, for the synchronous PostgreSQL parts.

    The rate limiter and the token cache are called from sync and async clients alike, through
    synchronous protocols; each call is one short statement, so one connection per process,
    used under a lock, serves them (as ``FileRateLimiter`` does with its SQLite file). It is
    opened, and the component's tables created or upgraded, on first use; a connection the
    server dropped (a restart, a failover) is replaced and the call tried once more.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str,
        component: str,
        steps: Sequence[Migration],
        what: str,
        timeout: float,
        application_name: str,
    ) -> None:
        self.schema = check_schema(schema)
        self.where = f"{describe_dsn(dsn, what)} (schema {schema!r})"
        self._dsn = dsn
        self._component = component
        self._steps = steps
        self._what = what
        self._timeout = timeout
        self._application_name = application_name
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[typing.Any] | None = None
        self._pid = -1
        self._migrated = False
        # Close the connection when the owner is dropped unclosed (a cache handed to a client
        # and never closed), rather than leave it to the garbage collector's warning.
        self._finalizer: weakref.finalize[typing.Any, typing.Any] | None = None

    def run(self, operation: Callable[[psycopg.Connection[typing.Any]], R]) -> R:
        """Run ``operation`` on the connection; psycopg's errors come out unchanged."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                conn = self._connect()
                try:
                    return operation(conn)
                except psycopg.OperationalError:
                    if not conn.closed or attempt == 2:
                        raise
                    self._conn = None  # dropped by the server: once more on a new one
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if self._finalizer is not None:
                self._finalizer.detach()
        if conn is not None:
            conn.close()

    def _connect(self) -> psycopg.Connection[typing.Any]:
        import psycopg

        # A connection must not cross a fork: a child opens its own.
        if self._conn is not None and not self._conn.closed and self._pid == os.getpid():
            return self._conn
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=max(int(self._timeout + 0.999), 2),
            application_name=self._application_name,
        )
        try:
            statement, params = session_settings(
                self.schema, lock_timeout=self._timeout, statement_timeout=self._timeout
            )
            conn.execute(statement, params)
            if not self._migrated:
                migrate(
                    conn,
                    schema=self.schema,
                    component=self._component,
                    steps=self._steps,
                    what=self._what,
                )
                self._migrated = True
        except BaseException:
            conn.close()
            raise
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, conn.close)
        self._conn, self._pid = conn, os.getpid()
        return conn
