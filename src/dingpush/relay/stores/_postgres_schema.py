"""The PostgreSQL outbox's tables, their versions, and what a database error means for a caller.

``MIGRATIONS`` lists the steps from an empty schema to the current version;
``dingpush.lowlevel.migrate`` applies the missing ones once, under an advisory lock, when a
store opens. To change the schema, append a step (never edit a shipped one), keep it additive so
an older instance still running during a rolling upgrade works on the result (docs/postgres.md
states the rule), and add a test that upgrades a schema written at the previous version.
"""

from __future__ import annotations

import psycopg
import psycopg_pool
from psycopg import errors

from dingpush.lowlevel import Migration

from ._errors import StoreUnavailable

__all__ = ["COMPONENT", "MIGRATIONS", "SCHEMA_VERSION", "unavailable"]

COMPONENT = "outbox"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "messages with status, due time, lease and idempotency key; attempts; last errors",
        (
            # seq orders messages (cursor paging, FIFO among equal due times). Times are epoch
            # seconds from the instances' clocks, as the store contract speaks them. tries counts
            # attempts over the message's whole life and numbers its history; attempts restarts
            # at a manual retry. claimed_at is when the message was last claimed. last_errcode
            # is JSON: DingTalk's codes are ints or strings, and each comes back as it was.
            """
            CREATE TABLE messages (
                seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id              text NOT NULL UNIQUE,
                target          text NOT NULL,
                kind            text NOT NULL,
                payload         text NOT NULL,
                status          text NOT NULL CHECK (status IN
                                ('queued', 'sending', 'delivered', 'digested', 'failed')),
                idempotency_key text UNIQUE,
                created_at      double precision NOT NULL,
                updated_at      double precision NOT NULL,
                due_at          double precision NOT NULL,
                attempts        integer NOT NULL DEFAULT 0,
                tries           integer NOT NULL DEFAULT 0,
                lease_token     text,
                lease_until     double precision,
                claimed_at      double precision,
                delivered_at    double precision,
                last_error      text,
                last_errcode    jsonb,
                digest_id       text,
                carries         integer NOT NULL DEFAULT 0,
                reply           jsonb
            )
            """,
            # The queue, across targets and per target, in claim order.
            "CREATE INDEX messages_queue ON messages (due_at, seq) WHERE status = 'queued'",
            """
            CREATE INDEX messages_target_queue ON messages (target, due_at, seq)
             WHERE status = 'queued'
            """,
            "CREATE INDEX messages_leases ON messages (lease_until) WHERE status = 'sending'",
            "CREATE INDEX messages_delivered ON messages (delivered_at) WHERE status = 'delivered'",
            "CREATE INDEX messages_digest ON messages (digest_id) WHERE digest_id IS NOT NULL",
            "CREATE INDEX messages_status ON messages (status, seq)",
            "CREATE INDEX messages_target ON messages (target, seq)",
            """
            CREATE TABLE attempts (
                message_id  text NOT NULL,
                number      integer NOT NULL,
                target      text NOT NULL,
                outcome     text NOT NULL,
                started_at  double precision,
                finished_at double precision NOT NULL,
                errcode     jsonb,
                error       text,
                PRIMARY KEY (message_id, number)
            )
            """,
            """
            CREATE TABLE target_errors (
                target  text PRIMARY KEY,
                error   text NOT NULL,
                errcode jsonb,
                at      double precision NOT NULL
            )
            """,
            # ping() writes here and rolls back: readiness means a write can succeed now.
            "CREATE TABLE readiness_probe (at double precision NOT NULL)",
        ),
    ),
    Migration(
        2,
        "target leases: which instance of a fleet serves a target alone",
        (
            # until: epoch seconds on the database's clock (the fleet's one clock).
            """
            CREATE TABLE target_leases (
                target   text PRIMARY KEY,
                holder   text NOT NULL,
                until    double precision NOT NULL,
                taken_at double precision NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "incidents of the on-call loop: their messages and timelines",
        (
            # number: what people type (@robot ack 42). holder/claimed_until: the escalation
            # claim (times from the instances' clocks, as the store contract speaks them).
            """
            CREATE TABLE incidents (
                number          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                route           text NOT NULL,
                group_key       text NOT NULL,
                title           text NOT NULL,
                labels          jsonb NOT NULL,
                policy          text,
                state           text NOT NULL CHECK (state IN
                                ('open', 'acknowledged', 'silenced', 'resolved')),
                opened_at       double precision NOT NULL,
                step            integer NOT NULL DEFAULT 0,
                due_at          double precision,
                targets         text[] NOT NULL,
                acknowledged_by text,
                closed_at       double precision,
                holder          text,
                claimed_until   double precision
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
                number     bigint NOT NULL REFERENCES incidents ON DELETE CASCADE,
                position   integer NOT NULL,
                message_id text NOT NULL,
                PRIMARY KEY (number, position)
            )
            """,
            "CREATE INDEX incident_messages_id ON incident_messages (message_id)",
            """
            CREATE TABLE incident_events (
                number   bigint NOT NULL REFERENCES incidents ON DELETE CASCADE,
                position integer NOT NULL,
                at       double precision NOT NULL,
                kind     text NOT NULL,
                who      text,
                detail   text NOT NULL,
                PRIMARY KEY (number, position)
            )
            """,
        ),
    ),
    Migration(
        4,
        "the chat messages the relay acted on, with their answers",
        (
            # key: the app's name and the message's msgId. answer is NULL while the claimant
            # acts. Rows live until expires_at (§12.2's hour, on the instances' clocks as the
            # store contract speaks them); claims drop expired ones. Additive: version 3's
            # code runs on it (it just does not share what it answered).
            """
            CREATE TABLE chat_messages (
                key        text PRIMARY KEY,
                claimed_at double precision NOT NULL,
                expires_at double precision NOT NULL,
                answer     text
            )
            """,
            "CREATE INDEX chat_messages_expiry ON chat_messages (expires_at)",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def unavailable(exc: BaseException, where: str) -> StoreUnavailable:
    """Say in words why the PostgreSQL outbox cannot commit now, and what to do.

    ``where`` names the database and schema (never a password).
    """
    if isinstance(exc, psycopg_pool.PoolTimeout | TimeoutError):
        text = (
            f"the outbox {where} could not be reached in time (no working connection, or every "
            "connection busy): check that PostgreSQL is up and reachable; nothing was stored"
        )
    elif isinstance(exc, errors.LockNotAvailable):
        text = (
            f"the outbox {where} stayed locked by another session beyond lock_timeout: find "
            "it in pg_locks / pg_stat_activity (a long migration, a manual LOCK TABLE); "
            "nothing was stored"
        )
    elif isinstance(exc, errors.QueryCanceled):
        text = (
            f"a statement on the outbox {where} ran past statement_timeout and was cancelled: "
            "the database is overloaded or blocked; nothing of it was stored"
        )
    elif isinstance(exc, errors.ReadOnlySqlTransaction):
        text = (
            f"the outbox {where} is read-only (a standby, or a primary demoted by a "
            "failover): point the DSN at the primary; nothing was stored"
        )
    elif isinstance(exc, errors.InsufficientResources):
        text = (
            f"the database server of the outbox {where} is out of resources ({_first_line(exc)}): "
            "free disk space or connections; nothing was stored"
        )
    elif isinstance(exc, errors.UndefinedTable | errors.UndefinedFunction):
        text = (
            f"the outbox's tables are missing from {where} (schema dropped while the relay "
            "runs?): restart the relay to create them again"
        )
    elif isinstance(exc, errors.InsufficientPrivilege):
        text = (
            f"the database user may not write the outbox {where} ({_first_line(exc)}): grant "
            "it the schema's privileges"
        )
    elif isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected):
        text = f"the outbox {where} detected a conflict with another session: retry"
    elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        text = (
            f"lost the connection to the outbox {where} ({_first_line(exc)}): the relay "
            "reconnects by itself once PostgreSQL is back (a write cut off mid-commit may have "
            "been stored: retry with the same idempotency key)"
        )
    else:
        text = f"the outbox {where} is unavailable: {_first_line(exc)}"
    return StoreUnavailable(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
