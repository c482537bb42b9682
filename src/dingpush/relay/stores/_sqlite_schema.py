"""The SQLite outbox's file: connection settings, schema versions and migrations.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS`` lists the steps from an empty
file to the current version, and opening a file applies the missing ones, each in its own
``BEGIN IMMEDIATE`` transaction together with the version bump, so a crash mid-upgrade leaves the
file at the previous version. ``PRAGMA application_id`` marks the file as a dingpush outbox.

To change the schema, append a step (never edit a shipped one) and add a test that upgrades a
file written at the previous version.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dingpush import ConfigError

from ._errors import IncompatibleOutbox, StoreUnavailable

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "connect",
    "migrate",
    "schema_version",
    "unavailable",
]

#: "DPSH": tells a dingpush outbox from any other SQLite file.
APPLICATION_ID = 0x44505348


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``statements`` take a file at ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "messages with status, due time, lease and idempotency key",
        (
            # seq orders messages (cursor paging, FIFO among equal due times); AUTOINCREMENT so
            # a pruned seq is never handed out again and a cursor never skips a message.
            # last_errcode has no type on purpose: DingTalk's codes are ints or strings, and
            # a column without affinity keeps each as it was written.
            """
            CREATE TABLE messages (
                seq             INTEGER PRIMARY KEY AUTOINCREMENT,
                id              TEXT NOT NULL UNIQUE,
                target          TEXT NOT NULL,
                kind            TEXT NOT NULL,
                payload         TEXT NOT NULL,
                status          TEXT NOT NULL,
                idempotency_key TEXT UNIQUE,
                created_at      REAL NOT NULL,
                updated_at      REAL NOT NULL,
                due_at          REAL NOT NULL,
                attempts        INTEGER NOT NULL DEFAULT 0,
                lease_token     TEXT,
                lease_until     REAL,
                claimed_at      REAL,
                delivered_at    REAL,
                last_error      TEXT,
                last_errcode
            )
            """,
            "CREATE INDEX messages_due ON messages (status, due_at)",
            "CREATE INDEX messages_target_due ON messages (target, status, due_at)",
        ),
    ),
    Migration(
        2,
        "digests, delivery replies, attempt history and each target's last error",
        (
            "ALTER TABLE messages ADD COLUMN digest_id TEXT",
            "ALTER TABLE messages ADD COLUMN carries INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE messages ADD COLUMN reply TEXT",
            "CREATE INDEX messages_digest ON messages (digest_id) WHERE digest_id IS NOT NULL",
            "CREATE INDEX messages_delivered ON messages (delivered_at) WHERE status = 'delivered'",
            """
            CREATE TABLE attempts (
                message_id  TEXT NOT NULL,
                number      INTEGER NOT NULL,
                target      TEXT NOT NULL,
                outcome     TEXT NOT NULL,
                started_at  REAL,
                finished_at REAL NOT NULL,
                errcode,
                error       TEXT,
                PRIMARY KEY (message_id, number)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE target_errors (
                target  TEXT PRIMARY KEY,
                error   TEXT NOT NULL,
                errcode,
                at      REAL NOT NULL
            ) WITHOUT ROWID
            """,
            # Version 1 kept errors on the messages only: seed each target's last error.
            """
            INSERT INTO target_errors (target, error, errcode, at)
            SELECT target, last_error, last_errcode, max(updated_at)
              FROM messages
             WHERE last_error IS NOT NULL
             GROUP BY target
            """,
        ),
    ),
    Migration(
        3,
        "incidents of the on-call loop: their messages and timelines",
        (
            # number: what people type (@robot ack 42); AUTOINCREMENT so a number is never
            # reused. labels and targets are JSON. holder/claimed_until: the escalation claim.
            """
            CREATE TABLE incidents (
                number          INTEGER PRIMARY KEY AUTOINCREMENT,
                route           TEXT NOT NULL,
                group_key       TEXT NOT NULL,
                title           TEXT NOT NULL,
                labels          TEXT NOT NULL,
                policy          TEXT,
                state           TEXT NOT NULL,
                opened_at       REAL NOT NULL,
                step            INTEGER NOT NULL DEFAULT 0,
                due_at          REAL,
                targets         TEXT NOT NULL,
                acknowledged_by TEXT,
                closed_at       REAL,
                holder          TEXT,
                claimed_until   REAL
            )
            """,
            # One live (not resolved) incident per alert group and route.
            """
            CREATE UNIQUE INDEX incidents_live ON incidents (route, group_key)
             WHERE state <> 'resolved'
            """,
            """
            CREATE INDEX incidents_due ON incidents (due_at, number)
             WHERE state = 'open' AND due_at IS NOT NULL
            """,
            """
            CREATE TABLE incident_messages (
                number     INTEGER NOT NULL,
                position   INTEGER NOT NULL,
                message_id TEXT NOT NULL,
                PRIMARY KEY (number, position)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX incident_messages_id ON incident_messages (message_id)",
            """
            CREATE TABLE incident_events (
                number   INTEGER NOT NULL,
                position INTEGER NOT NULL,
                at       REAL NOT NULL,
                kind     TEXT NOT NULL,
                who      TEXT,
                detail   TEXT NOT NULL,
                PRIMARY KEY (number, position)
            ) WITHOUT ROWID
            """,
        ),
    ),
    Migration(
        4,
        "the chat messages the relay acted on, with their answers",
        (
            # key: the app's name and the message's msgId. answer is NULL while the claimant
            # acts. Rows live until expires_at (§12.2's hour); claims drop expired ones.
            """
            CREATE TABLE chat_messages (
                key        TEXT PRIMARY KEY,
                claimed_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                answer     TEXT
            ) WITHOUT ROWID
            """,
            "CREATE INDEX chat_messages_expiry ON chat_messages (expires_at)",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

_SQLITE_MIN = (3, 35, 0)  # UPDATE … RETURNING


def connect(
    path: pathlib.Path,
    *,
    lock_timeout: float,
    readonly: bool = False,
    max_size: int | None = None,
) -> sqlite3.Connection:
    """Open a connection with the outbox's settings: WAL, ``synchronous=FULL``, a lock timeout.

    Transactions are explicit (``isolation_level=None``): the writer issues ``BEGIN IMMEDIATE``
    and ``COMMIT`` itself, so a batch of writes shares exactly one commit.
    """
    if sqlite3.sqlite_version_info < _SQLITE_MIN:
        raise IncompatibleOutbox(
            f"the SQLite outbox needs SQLite 3.35 or newer (UPDATE … RETURNING); this Python "
            f"has {sqlite3.sqlite_version}: use a newer Python build"
        )
    if not path.parent.is_dir():
        raise ConfigError(
            f"the directory of the outbox file {str(path)!r} does not exist: create it, or "
            "point the relay's store at another path"
        )
    try:
        conn = sqlite3.connect(
            path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise unavailable(exc, path) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
        else:
            # WAL: readers never block the writer; FULL: a commit is on disk when it returns.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise IncompatibleOutbox(
                    f"the outbox file {str(path)!r} cannot use write-ahead logging (journal "
                    f"mode stays {mode!r}; network file systems cannot): put it on a local disk"
                )
            if max_size is not None:
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {max(int(max_size) // page_size, 1)}")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _open_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    conn: sqlite3.Connection,
    path: pathlib.Path,
    *,
    up_to: int = SCHEMA_VERSION,
    steps: Sequence[Migration] = MIGRATIONS,
    on_step: Callable[[Migration], None] | None = None,
) -> int:
    """Bring the file to schema ``up_to`` and return the version it had before.

    ``on_step`` is told of each step once it has committed.
    """
    try:
        before = _check_file(conn, path)
        for step in steps:
            if before < step.version <= up_to:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in step.statements:
                        conn.execute(statement)
                    # Both pragmas are stored in the file's header page: they commit with the step.
                    conn.execute(f"PRAGMA user_version = {step.version:d}")
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if on_step is not None:
                    on_step(step)
        return before
    except sqlite3.DatabaseError as exc:
        raise _open_error(exc, path) from exc


def _check_file(conn: sqlite3.Connection, path: pathlib.Path) -> int:
    version = schema_version(conn)
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise IncompatibleOutbox(
            f"{str(path)!r} is an SQLite file of another application (application_id "
            f"{app_id:#x}): point the relay's store at a file of its own"
        )
    if version > SCHEMA_VERSION:
        raise IncompatibleOutbox(
            f"the outbox {str(path)!r} has schema version {version}, written by a newer "
            f"dingpush; this one knows versions up to {SCHEMA_VERSION}: upgrade dingpush "
            "(a downgrade cannot read it)"
        )
    if version == 0:
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchone()[0]
        if tables:
            raise IncompatibleOutbox(
                f"{str(path)!r} already holds {tables} tables or indexes but is no dingpush "
                "outbox: point the relay's store at a new file"
            )
    return version


def _open_error(exc: sqlite3.DatabaseError, path: pathlib.Path) -> Exception:
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return IncompatibleOutbox(
            f"{str(path)!r} is not a usable SQLite database ({exc}): point the relay's store "
            "at another file, or restore this one from a backup"
        )
    return unavailable(exc, path)


def unavailable(exc: sqlite3.Error, path: pathlib.Path | str) -> StoreUnavailable:
    """Say in words why the outbox file cannot commit, and what to do."""
    name = getattr(exc, "sqlite_errorname", "")
    where = repr(os.fspath(path))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        text = (
            f"the outbox {where} stayed locked by another process beyond the lock timeout: "
            "retry, or stop the process holding it (run one relay per SQLite outbox)"
        )
    elif name == "SQLITE_FULL":
        text = (
            f"the outbox {where} is full (the disk, or the store's max_size): free space or "
            "raise the limit"
        )
    elif name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        text = f"the outbox {where} cannot be written ({exc}): check the file's permissions"
    elif name.startswith("SQLITE_IOERR"):
        # A file made immutable (chattr +i) or read-only under root fails a write with EPERM,
        # which SQLite reports as an I/O error: say so, it is the likelier cause.
        text = (
            f"an I/O error on the outbox {where} ({exc}): check that it and its -wal and -shm "
            "files can be written (not read-only or immutable: lsattr), and the disk"
        )
    else:
        text = f"the outbox {where} is unavailable: {exc}"
    return StoreUnavailable(text)
