"""The SQLite outbox's operations: plain functions over a connection, one per store method.

Write operations run on the writer thread inside the batch's transaction (each in a savepoint);
read operations run on a reader thread. None of them commits, sleeps or knows about asyncio, so
``SQLiteStore`` decides how they are scheduled and this module only says what they do.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import sqlite3
import typing
from collections.abc import Collection, Mapping, Sequence

from ._base import (
    CANCELLED,
    LEASE_EXPIRED_ERROR,
    Attempt,
    Claim,
    DeadLetterFilter,
    Enqueued,
    ErrCode,
    NewMessage,
    OutboxMessage,
    OutboxStats,
    Outcome,
    Page,
    Status,
    TargetStats,
    check_cancellable,
    check_digestible,
    check_lease,
    check_recallable,
    check_retryable,
    decode_reply,
    delivery_is_new,
    encode_cursor,
    new_lease_token,
    new_message_id,
    with_recall,
)
from ._errors import MessageNotFound

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$")


def load_queries(text: str) -> dict[str, str]:
    """Split ``-- name: x`` blocks into ``{"x": "SELECT …"}``."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "-- name: _end"]:
        match = _NAME.match(line)
        if match is None:
            lines.append(line)
            continue
        if name is not None:
            body = "\n".join(lines).strip().rstrip(";")
            code = [part for part in lines if part.strip() and not part.lstrip().startswith("--")]
            if name in queries or not code:
                raise ValueError(f"query {name!r} is defined twice or has no SQL")
            queries[name] = body
        name, lines = match.group(1), []
    return queries


Q = load_queries(
    importlib.resources.files(__package__).joinpath("_sqlite_queries.sql").read_text("utf-8")
)


# -- rows -------------------------------------------------------------------------------------


def message_from_row(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        target=row["target"],
        kind=row["kind"],
        payload=row["payload"],
        status=Status(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        idempotency_key=row["idempotency_key"],
        lease_until=row["lease_until"],
        delivered_at=row["delivered_at"],
        last_error=row["last_error"],
        last_errcode=row["last_errcode"],
        digest_id=row["digest_id"],
        carries=row["carries"],
        reply=decode_reply(row["reply"]),
    )


def _one(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row:
    row = conn.execute(Q["get_message"], {"id": message_id}).fetchone()
    if row is None:
        raise MessageNotFound(message_id)
    return typing.cast(sqlite3.Row, row)


def _record(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    outcome: Outcome,
    now: float,
    error: str | None,
    errcode: ErrCode,
) -> None:
    """Add an attempt to the message's history (the caller's UPDATE counts it on the message)."""
    conn.execute(
        Q["insert_attempt"],
        {
            "message_id": row["id"],
            "target": row["target"],
            "outcome": outcome.value,
            "started_at": row["claimed_at"],
            "now": now,
            "errcode": errcode,
            "error": error,
        },
    )
    if error is not None:
        conn.execute(
            Q["note_target_error"],
            {"target": row["target"], "error": error, "errcode": errcode, "now": now},
        )


# -- writes (on the writer thread, inside a transaction) ---------------------------------------


def enqueue_many(
    conn: sqlite3.Connection, now: float, messages: Sequence[NewMessage]
) -> list[Enqueued]:
    answers = []
    for message in messages:
        inserted = conn.execute(
            Q["insert_message"],
            {
                "id": new_message_id(),
                "target": message.target,
                "kind": message.kind,
                "payload": message.payload,
                "idempotency_key": message.idempotency_key,
                "now": now,
                "due_at": now if message.due_at is None else message.due_at,
                "carries": 0,
            },
        ).fetchone()
        if inserted is not None:
            answers.append(Enqueued(inserted["id"], created=True))
        else:
            first = conn.execute(
                Q["id_for_key"], {"idempotency_key": message.idempotency_key}
            ).fetchone()
            answers.append(Enqueued(first["id"], created=False))
    return answers


def claim(
    conn: sqlite3.Connection, now: float, limit: int, lease: float, target: str | None
) -> list[Claim]:
    token, until = new_lease_token(), now + lease
    params = {"token": token, "lease_until": until, "now": now, "limit": limit, "target": target}
    query = Q["claim_due"] if target is None else Q["claim_due_for_target"]
    rows = conn.execute(query, params).fetchall()
    rows.sort(key=lambda r: (r["due_at"], r["seq"]))
    return [Claim(message_from_row(row), token, until) for row in rows]


def mark_delivered(
    conn: sqlite3.Connection, now: float, claimed: Claim, reply: str | None
) -> OutboxMessage:
    row = _one(conn, claimed.id)
    if not delivery_is_new(row["id"], Status(row["status"])):
        return message_from_row(row)
    _record(conn, row, Outcome.DELIVERED, now, None, None)
    updated = conn.execute(Q["mark_delivered"], {"id": row["id"], "now": now, "reply": reply})
    return message_from_row(updated.fetchone())


def schedule_retry(
    conn: sqlite3.Connection,
    now: float,
    claimed: Claim,
    retry_at: float,
    error: str,
    errcode: ErrCode,
) -> OutboxMessage:
    row = _one(conn, claimed.id)
    check_lease(row["id"], Status(row["status"]), row["lease_token"], claimed)
    _record(conn, row, Outcome.RETRY, now, error, errcode)
    params = {"id": row["id"], "now": now, "retry_at": retry_at, "error": error}
    updated = conn.execute(Q["schedule_retry"], {**params, "errcode": errcode})
    return message_from_row(updated.fetchone())


def fail(
    conn: sqlite3.Connection, now: float, claimed: Claim, error: str, errcode: ErrCode
) -> OutboxMessage:
    row = _one(conn, claimed.id)
    check_lease(row["id"], Status(row["status"]), row["lease_token"], claimed)
    _record(conn, row, Outcome.FAILED, now, error, errcode)
    params = {"id": row["id"], "now": now, "error": error, "errcode": errcode}
    return message_from_row(conn.execute(Q["fail_message"], params).fetchone())


def release(conn: sqlite3.Connection, now: float, claims: Sequence[Claim]) -> int:
    released = 0
    for held in claims:
        params = {"id": held.id, "token": held.token, "now": now}
        released += conn.execute(Q["release_claim"], params).rowcount
    return released


def requeue_expired(conn: sqlite3.Connection, now: float) -> list[str]:
    rows = conn.execute(Q["expired_leases"], {"now": now}).fetchall()
    for row in rows:
        _record(conn, row, Outcome.LEASE_EXPIRED, now, LEASE_EXPIRED_ERROR, None)
        conn.execute(
            Q["requeue_message"], {"id": row["id"], "now": now, "error": LEASE_EXPIRED_ERROR}
        )
    return [row["id"] for row in rows]


def retry(
    conn: sqlite3.Connection, now: float, message_id: str, due_at: float | None
) -> OutboxMessage:
    check_retryable(message_from_row(_one(conn, message_id)))
    params = {"id": message_id, "now": now, "due_at": now if due_at is None else due_at}
    return message_from_row(conn.execute(Q["retry_message"], params).fetchone())


def cancel(conn: sqlite3.Connection, now: float, message_id: str, reason: str) -> OutboxMessage:
    check_cancellable(message_from_row(_one(conn, message_id)))
    params = {"id": message_id, "now": now, "error": reason, "errcode": CANCELLED}
    return message_from_row(conn.execute(Q["cancel_message"], params).fetchone())


def note_recall(
    conn: sqlite3.Connection, message_id: str, recall: Mapping[str, typing.Any]
) -> OutboxMessage:
    message = message_from_row(_one(conn, message_id))
    check_recallable(message)
    params = {"id": message_id, "reply": with_recall(message.reply, recall)}
    return message_from_row(conn.execute(Q["note_recall"], params).fetchone())


def retry_many(
    conn: sqlite3.Connection,
    now: float,
    match: DeadLetterFilter,
    limit: int,
    due_at: float | None,
) -> list[str]:
    ids = failed_matching(conn, match, limit)
    params = {"now": now, "due_at": now if due_at is None else due_at}
    for message_id in ids:
        conn.execute(Q["retry_message"], {**params, "id": message_id}).fetchone()
    return ids


def failed_matching(conn: sqlite3.Connection, match: DeadLetterFilter, limit: int) -> list[str]:
    """The ids of the dead letters ``match`` takes, oldest first (reads only)."""
    params = {
        "target": match.target,
        "errcode": match.errcode,
        "error": match.error,
        "failed_since": match.failed_since,
        "failed_before": match.failed_before,
        "limit": limit,
    }
    return [row["id"] for row in conn.execute(Q["failed_matching"], params)]


def digest(
    conn: sqlite3.Connection, now: float, originals: Sequence[str], message: NewMessage
) -> OutboxMessage:
    for original in originals:
        check_digestible(message_from_row(_one(conn, original)), message.target)
    digest_id = new_message_id()
    conn.execute(
        Q["insert_message"],
        {
            "id": digest_id,
            "target": message.target,
            "kind": message.kind,
            "payload": message.payload,
            "idempotency_key": None,
            "now": now,
            "due_at": now if message.due_at is None else message.due_at,
            "carries": len(originals),
        },
    ).fetchone()
    for original in originals:
        conn.execute(Q["mark_digested"], {"id": original, "digest_id": digest_id, "now": now})
    return message_from_row(_one(conn, digest_id))


def prune(conn: sqlite3.Connection, now: float, before: float) -> int:
    conn.execute(Q["prune_attempts"], {"before": before})
    removed = conn.execute(Q["prune_originals"], {"before": before}).rowcount
    return int(removed + conn.execute(Q["prune_delivered"], {"before": before}).rowcount)


def ping(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(Q["ping"]).fetchone()


def probe(conn: sqlite3.Connection, now: float) -> None:
    """Write a row and remove it in the same transaction: the commit must write a page."""
    conn.execute(Q["probe_write"], {"now": now})
    conn.execute(Q["probe_remove"])


# -- reads (on a reader thread) ----------------------------------------------------------------


def get(conn: sqlite3.Connection, message_id: str) -> OutboxMessage:
    return message_from_row(_one(conn, message_id))


def attempts(conn: sqlite3.Connection, message_id: str) -> list[Attempt]:
    _one(conn, message_id)
    return [
        Attempt(
            message_id=row["message_id"],
            number=row["number"],
            outcome=Outcome(row["outcome"]),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            errcode=row["errcode"],
            error=row["error"],
        )
        for row in conn.execute(Q["list_attempts"], {"message_id": message_id})
    ]


def digest_originals(conn: sqlite3.Connection, digest_id: str) -> list[OutboxMessage]:
    _one(conn, digest_id)
    rows = conn.execute(Q["digest_originals"], {"digest_id": digest_id})
    return [message_from_row(row) for row in rows]


def list_messages(
    conn: sqlite3.Connection,
    status: Status | None,
    target: str | None,
    limit: int,
    before: int | None,
) -> Page[OutboxMessage]:
    params = {
        "status": None if status is None else status.value,
        "target": target,
        "before": 2**63 - 1 if before is None else before,
        "limit": limit + 1,  # one more tells whether there is a next page
    }
    rows = conn.execute(Q["list_messages"], params).fetchall()
    page = rows[:limit]
    cursor = encode_cursor(page[-1]["seq"]) if len(rows) > limit else None
    return Page(tuple(message_from_row(row) for row in page), cursor)


def list_queued(
    conn: sqlite3.Connection, target: str, kinds: Collection[str] | None, limit: int
) -> list[OutboxMessage]:
    params = {
        "target": target,
        "kinds": None if kinds is None else json.dumps(sorted(kinds)),
        "limit": limit,
    }
    return [message_from_row(row) for row in conn.execute(Q["list_queued"], params)]


def next_due(conn: sqlite3.Connection, target: str | None) -> float | None:
    if target is None:
        row = conn.execute(Q["next_due"]).fetchone()
    else:
        row = conn.execute(Q["next_due_for_target"], {"target": target}).fetchone()
    return typing.cast(float | None, row[0])


def stats(conn: sqlite3.Connection, now: float, window: float) -> OutboxStats:
    figures: dict[str, dict[str, typing.Any]] = {}
    for row in conn.execute(Q["stats_by_status"]):
        entry = figures.setdefault(row["target"], {})
        entry[row["status"]] = row["count"]
        if row["status"] == Status.QUEUED.value:
            entry["oldest_due"] = row["oldest_due"]
    for row in conn.execute(Q["stats_delivered"], {"since": now - window}):
        figures.setdefault(row["target"], {})["delivered_recent"] = row["count"]
    for row in conn.execute(Q["stats_errors"]):
        figures.setdefault(row["target"], {}).update(
            last_error=row["error"], last_errcode=row["errcode"], last_error_at=row["at"]
        )
    targets: Mapping[str, TargetStats] = {
        name: TargetStats(target=name, **entry) for name, entry in sorted(figures.items())
    }
    return OutboxStats(at=now, window=window, targets=targets)
