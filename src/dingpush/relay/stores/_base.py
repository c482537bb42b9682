"""The outbox store contract: records, statuses and the ``OutboxStore`` protocol.

A store keeps opaque payloads (JSON text it never parses) plus the metadata the relay routes and
schedules by. Every backend implements :class:`OutboxStore` and passes the same contract suite
(``tests/relay/test_store_contract.py``); the helpers below hold the rules they share, so the
backends differ only in how they keep rows.

Statuses and their transitions::

    enqueue ──► queued ──claim──► sending ──mark_delivered──► delivered
                 │ ▲ ▲              │ │
          digest │ │ └──────────────┘ │ schedule_retry, release, lease expiry
                 ▼ │                  │
           digested└──retry── failed ◄┘ fail
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import enum
import json
import math
import threading
import typing
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from ._errors import InvalidTransition, LeaseLost

__all__ = [
    "Attempt",
    "Claim",
    "DeadLetterFilter",
    "Enqueued",
    "ErrCode",
    "NewMessage",
    "OutboxMessage",
    "OutboxStats",
    "OutboxStore",
    "Outcome",
    "Page",
    "Status",
    "TargetStats",
]

#: DingTalk's error code: an int for oapi/webhook replies, a string for the v1.0 API.
ErrCode = int | str | None


class Status(enum.StrEnum):
    """Where a message is in its life."""

    QUEUED = "queued"  #: waiting for its due time and a free slot
    SENDING = "sending"  #: claimed by a dispatcher, under a lease
    DELIVERED = "delivered"  #: DingTalk accepted it (final)
    DIGESTED = "digested"  #: merged into a digest message, which carries it (final)
    FAILED = "failed"  #: refused for good: a dead letter until someone retries it

    @property
    def is_final(self) -> bool:
        """Whether no dispatcher will touch the message again (``failed`` waits for an operator)."""
        return self in (Status.DELIVERED, Status.DIGESTED, Status.FAILED)


class Outcome(enum.StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"  #: accepted by DingTalk
    RETRY = "retry"  #: a transient failure; the message was scheduled again
    FAILED = "failed"  #: a permanent failure; the message became a dead letter
    LEASE_EXPIRED = "lease_expired"  #: the claimer vanished; the message was requeued


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message to put in the outbox.

    Args:
        target: The configured target name it goes to.
        kind: What the payload is (``text``, ``markdown``… or the relay's own kinds); the
            coalescer merges by kind, the store only records it.
        payload: JSON text, stored and returned byte for byte.
        idempotency_key: A caller's key; enqueueing the same key again returns the first id
            and stores nothing new.
        due_at: Epoch seconds before which it is not delivered; now when omitted.
    """

    target: str
    kind: str
    payload: str
    idempotency_key: str | None = None
    due_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("target", "kind"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"NewMessage.{name} must be a non-empty string, not {value!r}")
        if not isinstance(self.payload, str):
            raise ValueError("NewMessage.payload must be JSON text (a str), not bytes or a dict")
        if self.idempotency_key is not None and (
            not isinstance(self.idempotency_key, str) or not self.idempotency_key
        ):
            raise ValueError("NewMessage.idempotency_key must be a non-empty string or None")


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to an enqueue: the message id and whether this call stored it."""

    id: str
    #: False when the idempotency key was seen before and ``id`` is the first message's.
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMessage:
    """One message in the outbox, as stored."""

    id: str  #: a UUID; the dispatcher sends it as DingTalk's ``msgUuid``
    target: str
    kind: str
    payload: str
    status: Status
    created_at: float
    updated_at: float
    due_at: float
    #: Delivery attempts since enqueue, or since the last manual retry (the retry policy's count).
    attempts: int = 0
    idempotency_key: str | None = None
    lease_until: float | None = None  #: while ``sending``: when the claim's lease runs out
    delivered_at: float | None = None
    last_error: str | None = None
    last_errcode: ErrCode = None
    digest_id: str | None = None  #: for a ``digested`` message: the digest that carries it
    carries: int = 0  #: for a digest: how many originals it carries
    reply: Mapping[str, typing.Any] | None = field(default=None, compare=False)

    @property
    def cancelled(self) -> bool:
        """Whether it was taken out of the queue before it was sent (:meth:`OutboxStore.cancel`)."""
        return self.status is Status.FAILED and self.last_errcode == CANCELLED


@dataclass(frozen=True, slots=True)
class Claim:
    """A message taken for delivery under a lease: settle it before the lease runs out."""

    message: OutboxMessage
    token: str
    lease_until: float

    @property
    def id(self) -> str:
        return self.message.id

    def __repr__(self) -> str:
        return f"Claim(id={self.message.id!r}, target={self.message.target!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One delivery attempt of a message, for its history."""

    message_id: str
    number: int  #: 1, 2, … over the message's whole life (manual retries keep counting)
    outcome: Outcome
    started_at: float | None  #: when the message was claimed for this attempt
    finished_at: float
    errcode: ErrCode = None
    error: str | None = None


T = typing.TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(typing.Generic[T]):
    """One page of a listing, newest first; pass ``next_cursor`` back for the next page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterFilter:
    """Which dead letters (``failed`` messages) a bulk retry takes; every field narrows it.

    An empty filter takes every dead letter but the cancelled ones: a message recalled while
    still queued (:meth:`OutboxStore.cancel`, errcode :data:`CANCELLED`) was taken back on
    purpose, and retrying "everything of ops" must not send it after all. Only a filter whose
    ``errcode`` is ``"cancelled"`` takes them (and then only them).

    Args:
        target: Only messages to this target.
        errcode: Only messages whose last errcode is exactly this (an int for webhook and oapi
            answers, a str for the v1.0 API: ``300001`` and ``"300001"`` differ).
        error: Only messages whose last error contains this text (case-sensitive), e.g.
            ``"TransportError"`` for those that gave up on the network.
        failed_since: Only messages that failed at or after this time (epoch seconds).
        failed_before: Only messages that failed before this time (epoch seconds).
    """

    target: str | None = None
    errcode: ErrCode = None
    error: str | None = None
    failed_since: float | None = None
    failed_before: float | None = None

    def __post_init__(self) -> None:
        for name in ("target", "error"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"DeadLetterFilter.{name} must be a non-empty string or None")
        check_errcode(self.errcode)
        for name in ("failed_since", "failed_before"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"DeadLetterFilter.{name} must be epoch seconds or None")
        since, before = self.failed_since, self.failed_before
        if since is not None and before is not None and since >= before:
            raise ValueError("failed_since must be earlier than failed_before")

    def cancelled(self) -> DeadLetterFilter:
        """This filter for the cancelled messages only (errcode ``"cancelled"``)."""
        return dataclasses.replace(self, errcode=CANCELLED)

    def matches(self, message: OutboxMessage | _Settled) -> bool:
        """Whether ``message`` is a dead letter this filter takes.

        A failed message's ``updated_at`` is when it failed: nothing changes it until a retry.
        """
        return (
            message.status is Status.FAILED
            and (self.target is None or message.target == self.target)
            and (self.errcode is None or _same_errcode(message.last_errcode, self.errcode))
            and (self.errcode == CANCELLED or not _same_errcode(message.last_errcode, CANCELLED))
            and (self.error is None or self.error in (message.last_error or ""))
            and (self.failed_since is None or message.updated_at >= self.failed_since)
            and (self.failed_before is None or message.updated_at < self.failed_before)
        )


class _Settled(typing.Protocol):
    """What a filter reads of a message (a record, or a store's own row)."""

    status: Status
    target: str
    last_errcode: ErrCode
    last_error: str | None
    updated_at: float


def _same_errcode(stored: ErrCode, wanted: ErrCode) -> bool:
    return type(stored) is type(wanted) and stored == wanted


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStats:
    """What the outbox holds for one target."""

    target: str
    queued: int = 0
    sending: int = 0
    failed: int = 0
    oldest_due: float | None = None  #: the earliest due time among its queued messages
    delivered_recent: int = 0  #: messages delivered within the stats window
    last_error: str | None = None
    last_errcode: ErrCode = None
    last_error_at: float | None = None

    @property
    def backlog(self) -> int:
        """Messages not yet settled: queued plus sending."""
        return self.queued + self.sending


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """Per-target figures and totals, as of ``at``."""

    at: float
    window: float  #: seconds covered by ``delivered_recent``
    targets: Mapping[str, TargetStats]

    @property
    def queue_depth(self) -> int:
        """Messages waiting or in flight, over all targets."""
        return sum(t.backlog for t in self.targets.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.targets.values())


class OutboxStore(typing.Protocol):
    """The durable outbox the relay is built on. Every method is safe to call concurrently.

    Writes are durable when they return. A store that cannot commit raises ``StoreUnavailable``
    (a transient condition: the relay answers 503); an unknown id raises ``MessageNotFound``.
    """

    async def open(self) -> None:
        """Open (and, for files, create or migrate) the store; ``async with`` calls it."""

    async def aclose(self) -> None:
        """Finish pending writes and release the store's resources (idempotent)."""

    async def __aenter__(self) -> typing.Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def ping(self) -> None:
        """Check the store is open and its write path alive; raise ``StoreUnavailable`` if not.

        It writes nothing, so it cannot see what only a commit meets: use :meth:`probe`.
        """

    async def probe(self) -> None:
        """Prove that a write can commit now; raise ``StoreUnavailable`` naming why not.

        Write something real and commit it (a row of a scratch table, removed in the same
        transaction or the next), through the path every other write takes, so that whatever
        blocks a commit fails it: a full disk or quota, an I/O error, a read-only or immutable
        file, a lock held beyond the lock timeout, a lost connection, a closed store. Leave
        nothing a reader can see and wake no dispatcher. The relay calls it before it starts
        serving (a store that cannot commit stops start-up) and for ``/readyz``, at most
        once every few seconds.
        """

    async def enqueue(self, message: NewMessage) -> Enqueued:
        """Store one message as ``queued``; a known idempotency key returns the first id."""

    async def enqueue_many(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        """Store several messages atomically (all or none), answers in the given order."""

    async def claim(self, limit: int, *, lease: float, target: str | None = None) -> list[Claim]:
        """Move up to ``limit`` due ``queued`` messages to ``sending``, oldest due first.

        Only ``target``'s messages when given, otherwise across targets. No message is held by
        two live claims: a claimed message comes back only through settle, release or lease
        expiry (``requeue_expired``).
        """

    async def mark_delivered(
        self, claim: Claim, *, reply: Mapping[str, typing.Any] | None = None
    ) -> OutboxMessage:
        """Record that DingTalk accepted the message (``reply`` keeps its answer's details).

        A delivery is a fact: it is recorded even when the claim's lease was lost, unless the
        message has since been merged into a digest (``LeaseLost``). Repeating it is harmless.
        """

    async def schedule_retry(
        self, claim: Claim, *, retry_at: float, error: str, errcode: ErrCode = None
    ) -> OutboxMessage:
        """Put the claimed message back in the queue, due at ``retry_at``, counting the attempt."""

    async def fail(self, claim: Claim, *, error: str, errcode: ErrCode = None) -> OutboxMessage:
        """Make the claimed message a dead letter (``failed``), counting the attempt."""

    async def release(self, claims: Iterable[Claim]) -> int:
        """Return claimed messages to the queue untried (shutdown); lost leases are skipped.

        Returns how many were released.
        """

    async def requeue_expired(self) -> list[str]:
        """Requeue ``sending`` messages whose lease has run out, counting an attempt for each."""

    async def retry(self, message_id: str, *, due_at: float | None = None) -> OutboxMessage:
        """Queue a ``failed`` message again with a fresh attempt count (its history is kept)."""

    async def retry_many(
        self,
        match: DeadLetterFilter,
        *,
        limit: int = 1000,
        due_at: float | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Queue again, atomically, up to ``limit`` dead letters ``match`` takes; their ids.

        Oldest first (the order they were enqueued in), each as :meth:`retry` does it: status
        ``queued``, due at ``due_at`` (now when None), attempts 0, history kept. With
        ``dry_run`` nothing changes and the answer lists the ids that would be retried.
        """

    async def cancel(self, message_id: str, *, reason: str) -> OutboxMessage:
        """Take a ``queued`` message out of the queue before it is sent: it becomes ``failed``.

        Its ``last_error`` is ``reason`` and its ``last_errcode`` :data:`CANCELLED`; no attempt
        is counted. A cancelled message is a dead letter an operator may still retry. Any
        other status raises ``InvalidTransition`` (a message being sent cannot be held back).
        """

    async def note_recall(self, message_id: str, recall: Mapping[str, typing.Any]) -> OutboxMessage:
        """Record on a ``delivered`` message that it was recalled: ``reply["recall"]``.

        ``recall`` (JSON-serialisable: when, by whom, the keys recalled and those DingTalk
        refused) replaces an earlier record; the rest of the reply is kept. Any other status
        raises ``InvalidTransition``.
        """

    async def digest(self, originals: Sequence[str], message: NewMessage) -> OutboxMessage:
        """Atomically store ``message`` as a digest and mark its ``originals`` ``digested``.

        Every original must be ``queued`` and belong to the digest's target, otherwise nothing
        changes and ``InvalidTransition`` says which one is not.
        """

    async def digest_originals(self, digest_id: str) -> list[OutboxMessage]:
        """The originals a digest carries, oldest first (empty for a message that is no digest)."""

    async def get(self, message_id: str) -> OutboxMessage:
        """The message with this id."""

    async def attempts(self, message_id: str) -> list[Attempt]:
        """The message's delivery attempts, first to last."""

    async def list_messages(
        self,
        *,
        status: Status | None = None,
        target: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[OutboxMessage]:
        """Messages newest first, filtered by status and target, a page at a time."""

    async def list_queued(
        self, target: str, *, kinds: Collection[str] | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """A target's ``queued`` messages in delivery order (the coalescer's view)."""

    async def next_due(self, *, target: str | None = None) -> float | None:
        """The earliest due time of a ``queued`` message, or None when nothing is queued."""

    async def stats(self, *, window: float = 60.0) -> OutboxStats:
        """Per-target backlog, oldest due, deliveries in the last ``window`` seconds, last error."""

    async def prune(self, *, before: float) -> int:
        """Delete messages delivered before ``before`` with the originals their digests carried.

        Failed messages are kept. Returns how many messages were deleted. An idempotency key is
        remembered as long as its message is kept.
        """

    async def wait_for_work(self, timeout: float) -> bool:
        """Wait until a message may have become claimable, or ``timeout`` seconds pass.

        Returns True when woken by an enqueue, retry, release or requeue (through this store
        object), False on timeout. Wake-ups are hints: callers still claim to see what is due.
        """


class BaseStore:
    """What every backend does the same way around its own operations.

    ``async with`` opens and closes the store, ``enqueue`` is a batch of one, and
    ``wait_for_work`` waits on the :class:`WorkSignal` the backend notifies after each write
    that may have made a message claimable.
    """

    def __init__(self) -> None:
        self._signal = WorkSignal()

    async def open(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> typing.Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def enqueue(self, message: NewMessage) -> Enqueued:
        (answer,) = await self.enqueue_many([message])
        return answer

    async def enqueue_many(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        raise NotImplementedError

    async def wait_for_work(self, timeout: float) -> bool:
        return await self._signal.wait(timeout)


# -- rules every backend shares ---------------------------------------------------------------


def new_message_id() -> str:
    """A fresh message id; DingTalk takes it as ``msgUuid``."""
    return str(uuid.uuid4())


def new_lease_token() -> str:
    return uuid.uuid4().hex


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, not {value!r}")


def check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}")


def check_errcode(errcode: ErrCode) -> None:
    if errcode is not None and (isinstance(errcode, bool) or not isinstance(errcode, int | str)):
        raise ValueError(f"errcode must be an int, a str or None, not {errcode!r}")


def encode_reply(reply: Mapping[str, typing.Any] | None) -> str | None:
    """The reply details as JSON text; refuse what JSON cannot hold before anything is written."""
    if reply is None:
        return None
    try:
        return json.dumps(dict(reply), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reply must be JSON-serialisable: {exc}") from exc


def decode_reply(text: str | None) -> Mapping[str, typing.Any] | None:
    return None if text is None else typing.cast(dict[str, typing.Any], json.loads(text))


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor points after; a cursor not made by ``encode_cursor`` is refused."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "seq" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"invalid cursor {cursor!r}: pass back the next_cursor of the previous page"
        ) from exc


def check_listing(
    status: Status | None, limit: int, cursor: str | None
) -> tuple[Status | None, int | None]:
    """``list_messages``' arguments checked: the status wanted, and the position to list below."""
    check_limit(limit)
    below = None if cursor is None else decode_cursor(cursor)
    return (None if status is None else Status(status)), below


def check_digest_request(originals: Sequence[str], message: NewMessage) -> list[str]:
    """Validate a digest's arguments; returns the originals without duplicates, in order."""
    ids = list(dict.fromkeys(originals))
    if not ids:
        raise ValueError("a digest must carry at least one original message")
    if message.idempotency_key is not None:
        raise ValueError("a digest is made by the relay and takes no idempotency key")
    return ids


def check_digestible(original: OutboxMessage, target: str) -> None:
    """Refuse to digest a message that is not waiting in the digest's target's queue."""
    if original.status is not Status.QUEUED:
        raise InvalidTransition(
            f"message {original.id!r} is {original.status}, not queued: only queued messages "
            "can be merged into a digest (read the backlog again and rebuild the digest)",
            message_id=original.id,
            status=original.status,
        )
    if original.target != target:
        raise InvalidTransition(
            f"message {original.id!r} goes to target {original.target!r}, not to the "
            f"digest's target {target!r}",
            message_id=original.id,
            status=original.status,
        )


def check_lease(message_id: str, status: Status, token: str | None, claim: Claim) -> None:
    """Refuse to settle a message this claim no longer holds."""
    if status is not Status.SENDING or token != claim.token:
        raise LeaseLost(message_id, status)


def delivery_is_new(message_id: str, status: Status) -> bool:
    """Whether a delivery changes anything: a repeat does not; a digested original is lost."""
    if status is Status.DELIVERED:
        return False
    if status is Status.DIGESTED:
        raise LeaseLost(message_id, status)
    return True


#: The ``last_errcode`` of a message cancelled before it was sent (:meth:`OutboxStore.cancel`).
CANCELLED = "cancelled"


def check_cancellable(message: OutboxMessage) -> None:
    if message.status is not Status.QUEUED:
        raise InvalidTransition(
            f"message {message.id!r} is {message.status}: only a queued message can be cancelled",
            message_id=message.id,
            status=message.status,
        )


def check_recallable(message: OutboxMessage) -> None:
    if message.status is not Status.DELIVERED:
        raise InvalidTransition(
            f"message {message.id!r} is {message.status}: only a delivered message can be recalled",
            message_id=message.id,
            status=message.status,
        )


def with_recall(reply: Mapping[str, typing.Any] | None, recall: Mapping[str, typing.Any]) -> str:
    """The reply's JSON text with ``recall`` recorded under ``"recall"``."""
    text = encode_reply({**(reply or {}), "recall": dict(recall)})
    assert text is not None
    return text


def check_retryable(message: OutboxMessage) -> None:
    if message.status is not Status.FAILED:
        raise InvalidTransition(
            f"message {message.id!r} is {message.status}: only failed messages can be retried",
            message_id=message.id,
            status=message.status,
        )


def dedupe_claims(claims: Iterable[Claim]) -> list[Claim]:
    return list({claim.id: claim for claim in claims}.values())


LEASE_EXPIRED_ERROR = (
    "lease expired before the message was settled: the process that claimed it stopped or stalled"
)


class WorkSignal:
    """Wakes tasks waiting for work, from any thread and any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def notify(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._lock:
            self._waiters.add(waiter)
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await waiter[1]
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
