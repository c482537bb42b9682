"""``MemoryStore``: the outbox in a dict, for tests and for ``immediate`` use.

It keeps the whole contract (the same suite runs against it as against SQLite) except
durability: everything is gone when the process ends. Operations scan the messages, which is fine
for the thousands a test or a short-lived process holds.
"""

from __future__ import annotations

import itertools
import threading
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from dingpush import Clock
from dingpush.lowlevel import SYSTEM_CLOCK

from ._base import (
    LEASE_EXPIRED_ERROR,
    Attempt,
    BaseStore,
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
    check_digest_request,
    check_digestible,
    check_errcode,
    check_lease,
    check_limit,
    check_listing,
    check_positive,
    check_retryable,
    decode_reply,
    dedupe_claims,
    delivery_is_new,
    encode_cursor,
    encode_reply,
    new_lease_token,
    new_message_id,
)
from ._errors import MessageNotFound, StoreUnavailable
from ._incidents_memory import MemoryIncidentStore

__all__ = ["MemoryStore"]

R = typing.TypeVar("R")


@dataclass(slots=True, kw_only=True)
class _Row:
    seq: int
    id: str
    target: str
    kind: str
    payload: str
    status: Status
    created_at: float
    updated_at: float
    due_at: float
    attempts: int = 0
    idempotency_key: str | None = None
    lease_token: str | None = None
    lease_until: float | None = None
    claimed_at: float | None = None
    delivered_at: float | None = None
    last_error: str | None = None
    last_errcode: ErrCode = None
    digest_id: str | None = None
    carries: int = 0
    reply: str | None = None

    def snapshot(self) -> OutboxMessage:
        return OutboxMessage(
            id=self.id,
            target=self.target,
            kind=self.kind,
            payload=self.payload,
            status=self.status,
            created_at=self.created_at,
            updated_at=self.updated_at,
            due_at=self.due_at,
            attempts=self.attempts,
            idempotency_key=self.idempotency_key,
            lease_until=self.lease_until,
            delivered_at=self.delivered_at,
            last_error=self.last_error,
            last_errcode=self.last_errcode,
            digest_id=self.digest_id,
            carries=self.carries,
            reply=decode_reply(self.reply),
        )

    def unlease(self) -> None:
        self.lease_token = self.lease_until = self.claimed_at = None


class MemoryStore(BaseStore):
    """An in-memory outbox with the full store contract, minus durability.

    Args:
        clock: Where time comes from (``dingpush.testing.FakeClock`` in tests).
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock or SYSTEM_CLOCK
        # One lock, held for whole operations: they never await, so this makes each atomic
        # across threads as well as tasks.
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._keys: dict[str, str] = {}
        self._history: dict[str, list[Attempt]] = {}
        self._errors: dict[str, tuple[str, ErrCode, float]] = {}
        self._seq = itertools.count(1)
        self._closed = False
        #: The on-call loop's incidents, in memory too.
        self.incidents = MemoryIncidentStore()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._rows)} messages>)"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True

    async def ping(self) -> None:
        self._run(lambda now: None)

    async def probe(self) -> None:
        # Memory takes every write while it is open: being open is the whole proof.
        self._run(lambda now: None)

    def _run(self, operation: Callable[[float], R]) -> R:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the outbox store is closed")
            return operation(self._clock.time())

    def _row(self, message_id: str) -> _Row:
        try:
            return self._rows[message_id]
        except KeyError:
            raise MessageNotFound(message_id) from None

    # -- writes -------------------------------------------------------------------------------

    async def enqueue_many(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        batch = list(messages)

        def operation(now: float) -> list[Enqueued]:
            answers: list[Enqueued] = []
            added: list[_Row] = []
            for message in batch:
                first = None
                if message.idempotency_key is not None:
                    first = self._keys.get(message.idempotency_key)
                    if first is None:
                        first = next((r.id for r in added if _same_key(r, message)), None)
                if first is not None:
                    answers.append(Enqueued(first, created=False))
                    continue
                row = _new_row(next(self._seq), message, now)
                added.append(row)
                answers.append(Enqueued(row.id, created=True))
            for row in added:  # all or nothing: nothing above can fail half-way
                self._rows[row.id] = row
                if row.idempotency_key is not None:
                    self._keys[row.idempotency_key] = row.id
            return answers

        answers = self._run(operation)
        if any(answer.created for answer in answers):
            self._signal.notify()
        return answers

    async def claim(self, limit: int, *, lease: float, target: str | None = None) -> list[Claim]:
        check_limit(limit)
        check_positive("lease", lease)

        def operation(now: float) -> list[Claim]:
            due = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r.status is Status.QUEUED
                    and r.due_at <= now
                    and (target is None or r.target == target)
                ),
                key=lambda r: (r.due_at, r.seq),
            )[:limit]
            token, until = new_lease_token(), now + lease
            for row in due:
                row.status, row.updated_at = Status.SENDING, now
                row.lease_token, row.lease_until, row.claimed_at = token, until, now
            return [Claim(row.snapshot(), token, until) for row in due]

        return self._run(operation)

    async def mark_delivered(
        self, claim: Claim, *, reply: Mapping[str, typing.Any] | None = None
    ) -> OutboxMessage:
        reply_text = encode_reply(reply)

        def operation(now: float) -> OutboxMessage:
            row = self._row(claim.id)
            if delivery_is_new(row.id, row.status):
                self._record(row, Outcome.DELIVERED, now, None, None)
                row.status, row.updated_at, row.delivered_at = Status.DELIVERED, now, now
                row.reply = reply_text
                row.unlease()
            return row.snapshot()

        return self._run(operation)

    async def schedule_retry(
        self, claim: Claim, *, retry_at: float, error: str, errcode: ErrCode = None
    ) -> OutboxMessage:
        check_errcode(errcode)

        def operation(now: float) -> OutboxMessage:
            row = self._row(claim.id)
            check_lease(row.id, row.status, row.lease_token, claim)
            self._record(row, Outcome.RETRY, now, error, errcode)
            row.status, row.updated_at, row.due_at = Status.QUEUED, now, retry_at
            row.unlease()
            return row.snapshot()

        return self._run(operation)

    async def fail(self, claim: Claim, *, error: str, errcode: ErrCode = None) -> OutboxMessage:
        check_errcode(errcode)

        def operation(now: float) -> OutboxMessage:
            row = self._row(claim.id)
            check_lease(row.id, row.status, row.lease_token, claim)
            self._record(row, Outcome.FAILED, now, error, errcode)
            row.status, row.updated_at = Status.FAILED, now
            row.unlease()
            return row.snapshot()

        return self._run(operation)

    async def release(self, claims: Iterable[Claim]) -> int:
        held = dedupe_claims(claims)

        def operation(now: float) -> int:
            released = 0
            for claim in held:
                row = self._rows.get(claim.id)
                if row and row.status is Status.SENDING and row.lease_token == claim.token:
                    row.status, row.updated_at = Status.QUEUED, now
                    row.unlease()
                    released += 1
            return released

        released = self._run(operation)
        if released:
            self._signal.notify()
        return released

    async def requeue_expired(self) -> list[str]:
        def operation(now: float) -> list[str]:
            expired = [
                r
                for r in self._rows.values()
                if r.status is Status.SENDING and r.lease_until is not None and r.lease_until <= now
            ]
            for row in sorted(expired, key=lambda r: r.seq):
                self._record(row, Outcome.LEASE_EXPIRED, now, LEASE_EXPIRED_ERROR, None)
                row.status, row.updated_at = Status.QUEUED, now
                row.unlease()
            return [row.id for row in sorted(expired, key=lambda r: r.seq)]

        requeued = self._run(operation)
        if requeued:
            self._signal.notify()
        return requeued

    async def retry(self, message_id: str, *, due_at: float | None = None) -> OutboxMessage:
        def operation(now: float) -> OutboxMessage:
            row = self._row(message_id)
            check_retryable(row.snapshot())
            row.status, row.updated_at, row.attempts = Status.QUEUED, now, 0
            row.due_at = now if due_at is None else due_at
            return row.snapshot()

        message = self._run(operation)
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

        def operation(now: float) -> list[str]:
            rows = sorted((r for r in self._rows.values() if match.matches(r)), key=lambda r: r.seq)
            picked = rows[:limit]
            if not dry_run:
                for row in picked:
                    row.status, row.updated_at, row.attempts = Status.QUEUED, now, 0
                    row.due_at = now if due_at is None else due_at
            return [row.id for row in picked]

        retried = self._run(operation)
        if retried and not dry_run:
            self._signal.notify()
        return retried

    async def digest(self, originals: Sequence[str], message: NewMessage) -> OutboxMessage:
        ids = check_digest_request(originals, message)

        def operation(now: float) -> OutboxMessage:
            rows = [self._row(i) for i in ids]
            for row in rows:
                check_digestible(row.snapshot(), message.target)
            digest = _new_row(next(self._seq), message, now)
            digest.carries = len(rows)
            self._rows[digest.id] = digest
            for row in rows:
                row.status, row.updated_at, row.digest_id = Status.DIGESTED, now, digest.id
            return digest.snapshot()

        digest = self._run(operation)
        self._signal.notify()
        return digest

    async def prune(self, *, before: float) -> int:
        def operation(now: float) -> int:
            digests = {
                r.id
                for r in self._rows.values()
                if r.status is Status.DELIVERED and (r.delivered_at or before) < before
            }
            doomed = [r for r in self._rows.values() if r.id in digests or r.digest_id in digests]
            for row in doomed:
                del self._rows[row.id]
                self._history.pop(row.id, None)
                if row.idempotency_key is not None:
                    self._keys.pop(row.idempotency_key, None)
            return len(doomed)

        return self._run(operation)

    def _record(
        self, row: _Row, outcome: Outcome, now: float, error: str | None, errcode: ErrCode
    ) -> None:
        history = self._history.setdefault(row.id, [])
        history.append(
            Attempt(
                message_id=row.id,
                number=len(history) + 1,
                outcome=outcome,
                started_at=row.claimed_at,
                finished_at=now,
                errcode=errcode,
                error=error,
            )
        )
        row.attempts += 1
        if error is not None:
            row.last_error, row.last_errcode = error, errcode
            self._errors[row.target] = (error, errcode, now)

    # -- reads --------------------------------------------------------------------------------

    async def get(self, message_id: str) -> OutboxMessage:
        return self._run(lambda now: self._row(message_id).snapshot())

    async def attempts(self, message_id: str) -> list[Attempt]:
        def operation(now: float) -> list[Attempt]:
            self._row(message_id)
            return list(self._history.get(message_id, ()))

        return self._run(operation)

    async def digest_originals(self, digest_id: str) -> list[OutboxMessage]:
        def operation(now: float) -> list[OutboxMessage]:
            self._row(digest_id)
            rows = [r for r in self._rows.values() if r.digest_id == digest_id]
            return [r.snapshot() for r in sorted(rows, key=lambda r: r.seq)]

        return self._run(operation)

    async def list_messages(
        self,
        *,
        status: Status | None = None,
        target: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[OutboxMessage]:
        wanted, after = check_listing(status, limit, cursor)

        def operation(now: float) -> Page[OutboxMessage]:
            rows = sorted(
                (
                    r
                    for r in self._rows.values()
                    if (wanted is None or r.status is wanted)
                    and (target is None or r.target == target)
                    and (after is None or r.seq < after)
                ),
                key=lambda r: -r.seq,
            )
            page = rows[:limit]
            more = len(rows) > limit
            return Page(
                tuple(r.snapshot() for r in page),
                encode_cursor(page[-1].seq) if more else None,
            )

        return self._run(operation)

    async def list_queued(
        self, target: str, *, kinds: Collection[str] | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        check_limit(limit)

        def operation(now: float) -> list[OutboxMessage]:
            rows = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r.status is Status.QUEUED
                    and r.target == target
                    and (kinds is None or r.kind in kinds)
                ),
                key=lambda r: (r.due_at, r.seq),
            )
            return [r.snapshot() for r in rows[:limit]]

        return self._run(operation)

    async def next_due(self, *, target: str | None = None) -> float | None:
        def operation(now: float) -> float | None:
            return min(
                (
                    r.due_at
                    for r in self._rows.values()
                    if r.status is Status.QUEUED and (target is None or r.target == target)
                ),
                default=None,
            )

        return self._run(operation)

    async def stats(self, *, window: float = 60.0) -> OutboxStats:
        check_positive("window", window)

        def operation(now: float) -> OutboxStats:
            figures: dict[str, dict[str, typing.Any]] = {}
            since = now - window
            for row in self._rows.values():
                entry = figures.setdefault(row.target, {})
                if row.status in (Status.QUEUED, Status.SENDING, Status.FAILED):
                    entry[row.status.value] = entry.get(row.status.value, 0) + 1
                if row.status is Status.QUEUED:
                    oldest = entry.get("oldest_due")
                    entry["oldest_due"] = row.due_at if oldest is None else min(oldest, row.due_at)
                delivered = row.delivered_at
                if row.status is Status.DELIVERED and delivered is not None and delivered >= since:
                    entry["delivered_recent"] = entry.get("delivered_recent", 0) + 1
            for name, (error, errcode, at) in self._errors.items():
                figures.setdefault(name, {}).update(
                    last_error=error, last_errcode=errcode, last_error_at=at
                )
            targets = {
                name: TargetStats(target=name, **entry)
                for name, entry in sorted(figures.items())
                if entry
            }
            return OutboxStats(at=now, window=window, targets=targets)

        return self._run(operation)


def _same_key(row: _Row, message: NewMessage) -> bool:
    return message.idempotency_key is not None and row.idempotency_key == message.idempotency_key


def _new_row(seq: int, message: NewMessage, now: float) -> _Row:
    return _Row(
        seq=seq,
        id=new_message_id(),
        target=message.target,
        kind=message.kind,
        payload=message.payload,
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
        due_at=now if message.due_at is None else message.due_at,
        idempotency_key=message.idempotency_key,
    )
