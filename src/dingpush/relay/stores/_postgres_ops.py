"""The PostgreSQL outbox's operations: coroutines over one connection, one per store method.

Each runs on a connection in autocommit mode, so a single statement is its own transaction;
the few that need several statements (a digest) open one explicitly. None of them knows about
the pool, retries or errors: ``PostgresStore`` decides how they run and what a failure means.
The rules they share with the other backends (lease checks, what may be digested) come from
``_base``.
"""

from __future__ import annotations

import importlib.resources
import typing
from collections.abc import Collection, Mapping, Sequence

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

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
    delivery_is_new,
    encode_cursor,
    new_lease_token,
    new_message_id,
)
from ._errors import MessageNotFound
from ._sqlite_ops import load_queries

Conn = AsyncConnection[DictRow]

Q = load_queries(
    importlib.resources.files(__package__).joinpath("_postgres_queries.sql").read_text("utf-8")
)

#: Delivered messages deleted per statement by ``prune``.
PRUNE_BATCH = 5000


# -- rows -------------------------------------------------------------------------------------


def message_from_row(row: Mapping[str, typing.Any]) -> OutboxMessage:
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
        reply=row["reply"],
    )


def _errcode(errcode: ErrCode) -> Jsonb | None:
    return None if errcode is None else Jsonb(errcode)


async def _one(conn: Conn, message_id: str) -> DictRow:
    row = await (await conn.execute(Q["get_message"], {"id": message_id})).fetchone()
    if row is None:
        raise MessageNotFound(message_id)
    return row


async def _refused(conn: Conn, claim: Claim) -> typing.NoReturn:
    """Raise why a settle changed nothing: an unknown id, or a lease this claim lost."""
    row = await (await conn.execute(Q["lease_state"], {"id": claim.id})).fetchone()
    if row is None:
        raise MessageNotFound(claim.id)
    check_lease(claim.id, Status(row["status"]), row["lease_token"], claim)
    raise AssertionError("a settle that matched no row was refused without a reason")


# -- writes -----------------------------------------------------------------------------------


async def enqueue_many(conn: Conn, now: float, messages: Sequence[NewMessage]) -> list[Enqueued]:
    ids = [new_message_id() for _ in messages]
    params = {
        "now": now,
        "ids": ids,
        "targets": [m.target for m in messages],
        "kinds": [m.kind for m in messages],
        "payloads": [m.payload for m in messages],
        "keys": [m.idempotency_key for m in messages],
        "due": [m.due_at for m in messages],
    }
    cursor = await conn.execute(Q["insert_messages"], params)
    created = {row["id"] for row in await cursor.fetchall()}
    known: dict[str, str] = {}
    repeated = [m.idempotency_key for m, i in zip(messages, ids, strict=True) if i not in created]
    if repeated:
        rows = await conn.execute(Q["ids_for_keys"], {"keys": repeated})
        known = {row["idempotency_key"]: row["id"] for row in await rows.fetchall()}
    answers = []
    for message, message_id in zip(messages, ids, strict=True):
        if message_id in created:
            answers.append(Enqueued(message_id, created=True))
        elif message.idempotency_key in known:
            answers.append(Enqueued(known[message.idempotency_key], created=False))
        else:
            # The first holder of the key was pruned in between: the caller tries again.
            raise _KeyVanished(message.idempotency_key)
    return answers


class _KeyVanished(Exception):
    """An idempotency key's message disappeared between the insert and the lookup."""


async def claim(
    conn: Conn, now: float, limit: int, lease: float, target: str | None
) -> list[Claim]:
    token, until = new_lease_token(), now + lease
    params = {"token": token, "lease_until": until, "now": now, "limit": limit, "target": target}
    query = Q["claim_due"] if target is None else Q["claim_due_for_target"]
    rows = await (await conn.execute(query, params)).fetchall()
    rows.sort(key=lambda r: (r["due_at"], r["seq"]))
    return [Claim(message_from_row(row), token, until) for row in rows]


async def mark_delivered(
    conn: Conn, now: float, claimed: Claim, reply: str | None
) -> OutboxMessage:
    params = {"id": claimed.id, "now": now, "reply": reply}
    for _ in range(3):
        row = await (await conn.execute(Q["mark_delivered"], params)).fetchone()
        if row is not None:
            return message_from_row(row)
        current = await _one(conn, claimed.id)
        if not delivery_is_new(current["id"], Status(current["status"])):
            return message_from_row(current)
    raise AssertionError(f"message {claimed.id!r} kept changing while being marked delivered")


async def schedule_retry(
    conn: Conn, now: float, claimed: Claim, retry_at: float, error: str, errcode: ErrCode
) -> OutboxMessage:
    params = {
        "id": claimed.id,
        "token": claimed.token,
        "now": now,
        "retry_at": retry_at,
        "error": error,
        "errcode": _errcode(errcode),
    }
    row = await (await conn.execute(Q["schedule_retry"], params)).fetchone()
    if row is None:
        await _refused(conn, claimed)
    return message_from_row(row)


async def fail(
    conn: Conn, now: float, claimed: Claim, error: str, errcode: ErrCode
) -> OutboxMessage:
    params = {
        "id": claimed.id,
        "token": claimed.token,
        "now": now,
        "error": error,
        "errcode": _errcode(errcode),
    }
    row = await (await conn.execute(Q["fail_message"], params)).fetchone()
    if row is None:
        await _refused(conn, claimed)
    return message_from_row(row)


async def release(conn: Conn, now: float, claims: Sequence[Claim]) -> int:
    if not claims:
        return 0
    params = {"now": now, "ids": [c.id for c in claims], "tokens": [c.token for c in claims]}
    return len(await (await conn.execute(Q["release_claims"], params)).fetchall())


async def requeue_expired(conn: Conn, now: float) -> list[str]:
    params = {"now": now, "error": LEASE_EXPIRED_ERROR}
    return [
        row["id"] for row in await (await conn.execute(Q["requeue_expired"], params)).fetchall()
    ]


async def retry(conn: Conn, now: float, message_id: str, due_at: float | None) -> OutboxMessage:
    params = {"id": message_id, "now": now, "due_at": now if due_at is None else due_at}
    row = await (await conn.execute(Q["retry_message"], params)).fetchone()
    if row is None:
        check_retryable(message_from_row(await _one(conn, message_id)))
        raise AssertionError(f"message {message_id!r} is failed but was not retried")
    return message_from_row(row)


async def cancel(conn: Conn, now: float, message_id: str, reason: str) -> OutboxMessage:
    params = {"id": message_id, "now": now, "error": reason, "errcode": _errcode(CANCELLED)}
    row = await (await conn.execute(Q["cancel_message"], params)).fetchone()
    if row is None:
        check_cancellable(message_from_row(await _one(conn, message_id)))
        raise AssertionError(f"message {message_id!r} is queued but was not cancelled")
    return message_from_row(row)


async def note_recall(conn: Conn, message_id: str, recall: str) -> OutboxMessage:
    cursor = await conn.execute(Q["note_recall"], {"id": message_id, "recall": recall})
    found = await cursor.fetchone()
    if found is None:
        check_recallable(message_from_row(await _one(conn, message_id)))
        raise AssertionError(f"message {message_id!r} is delivered but the recall was not noted")
    return message_from_row(found)


def _filter(match: DeadLetterFilter, limit: int) -> dict[str, typing.Any]:
    return {
        "target": match.target,
        "errcode": _errcode(match.errcode),
        "error": match.error,
        "failed_since": match.failed_since,
        "failed_before": match.failed_before,
        "limit": limit,
    }


async def failed_matching(conn: Conn, match: DeadLetterFilter, limit: int) -> list[str]:
    """The ids of the dead letters ``match`` takes, oldest first (reads only)."""
    rows = await (await conn.execute(Q["failed_matching"], _filter(match, limit))).fetchall()
    return [row["id"] for row in rows]


async def retry_many(
    conn: Conn, now: float, match: DeadLetterFilter, limit: int, due_at: float | None
) -> list[str]:
    params = {**_filter(match, limit), "now": now, "due_at": now if due_at is None else due_at}
    rows = await (await conn.execute(Q["retry_many"], params)).fetchall()
    return [row["id"] for row in sorted(rows, key=lambda r: r["seq"])]


async def digest(
    conn: Conn, now: float, originals: Sequence[str], message: NewMessage
) -> OutboxMessage:
    """Inside a transaction: lock the originals, check them in the given order, merge them."""
    rows = await (await conn.execute(Q["lock_originals"], {"ids": list(originals)})).fetchall()
    found = {row["id"]: row for row in rows}
    for original in originals:
        if original not in found:
            raise MessageNotFound(original)
        check_digestible(message_from_row(found[original]), message.target)
    params = {
        "id": new_message_id(),
        "target": message.target,
        "kind": message.kind,
        "payload": message.payload,
        "now": now,
        "due_at": now if message.due_at is None else message.due_at,
        "carries": len(originals),
        "originals": list(originals),
    }
    row = await (await conn.execute(Q["insert_digest"], params)).fetchone()
    assert row is not None
    return message_from_row(row)


async def prune(conn: Conn, before: float) -> int:
    removed = 0
    while True:
        cursor = await conn.execute(Q["prune"], {"before": before, "batch": PRUNE_BATCH})
        row = await cursor.fetchone()
        count = 0 if row is None else int(row["count"])
        removed += count
        if count == 0:
            return removed


async def probe(conn: Conn, now: float, *, commit: bool = False) -> None:
    """Inside a transaction: take the enqueue lock and write a row.

    With ``commit`` the row is deleted again, so that the caller's commit writes and flushes
    WAL (what a full disk refuses) and leaves nothing; otherwise the caller rolls back.
    """
    await conn.execute(Q["probe_lock"])
    await conn.execute(Q["probe_write"], {"now": now})
    if commit:
        await conn.execute(Q["probe_clear"])


async def notify(conn: Conn, channel: str, payload: str) -> None:
    await conn.execute(Q["notify"], {"channel": channel, "payload": payload})


# -- reads ------------------------------------------------------------------------------------


async def get(conn: Conn, message_id: str) -> OutboxMessage:
    return message_from_row(await _one(conn, message_id))


async def attempts(conn: Conn, message_id: str) -> list[Attempt]:
    await _one(conn, message_id)
    rows = await (await conn.execute(Q["list_attempts"], {"message_id": message_id})).fetchall()
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
        for row in rows
    ]


async def digest_originals(conn: Conn, digest_id: str) -> list[OutboxMessage]:
    await _one(conn, digest_id)
    cursor = await conn.execute(Q["digest_originals"], {"digest_id": digest_id})
    return [message_from_row(row) for row in await cursor.fetchall()]


async def list_messages(
    conn: Conn, status: Status | None, target: str | None, limit: int, before: int | None
) -> Page[OutboxMessage]:
    params = {
        "status": None if status is None else status.value,
        "target": target,
        "before": 2**63 - 1 if before is None else before,
        "limit": limit + 1,  # one more tells whether there is a next page
    }
    rows = await (await conn.execute(Q["list_messages"], params)).fetchall()
    page = rows[:limit]
    cursor = encode_cursor(page[-1]["seq"]) if len(rows) > limit else None
    return Page(tuple(message_from_row(row) for row in page), cursor)


async def list_queued(
    conn: Conn, target: str, kinds: Collection[str] | None, limit: int
) -> list[OutboxMessage]:
    params = {
        "target": target,
        "kinds": None if kinds is None else sorted(kinds),
        "limit": limit,
    }
    rows = await (await conn.execute(Q["list_queued"], params)).fetchall()
    return [message_from_row(row) for row in rows]


async def next_due(conn: Conn, target: str | None) -> float | None:
    if target is None:
        cursor = await conn.execute(Q["next_due"])
    else:
        cursor = await conn.execute(Q["next_due_for_target"], {"target": target})
    row = await cursor.fetchone()
    return None if row is None else typing.cast(float | None, row["min"])


async def stats(conn: Conn, now: float, window: float) -> OutboxStats:
    figures: dict[str, dict[str, typing.Any]] = {}
    rows = await (await conn.execute(Q["stats"], {"since": now - window})).fetchall()
    for row in rows:
        entry = figures.setdefault(row["target"], {})
        figure = row["figure"]
        if figure == "error":
            entry.update(
                last_error=row["error"], last_errcode=row["errcode"], last_error_at=row["at"]
            )
        elif figure == "delivered_recent":
            entry["delivered_recent"] = int(row["count"])
        else:
            entry[figure] = int(row["count"])
            if figure == Status.QUEUED.value:
                entry["oldest_due"] = row["oldest_due"]
    targets: Mapping[str, TargetStats] = {
        name: TargetStats(target=name, **entry) for name, entry in sorted(figures.items())
    }
    return OutboxStats(at=now, window=window, targets=targets)
