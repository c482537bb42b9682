"""Group commit for PostgreSQL enqueues: concurrent callers share one INSERT and one commit.

Each commit waits for PostgreSQL to flush its WAL to disk, and each statement costs a round
trip and a plan; under a burst of alerts both add up per message. ``EnqueueBatcher`` takes the
enqueues waiting when a writer is free, inserts all their messages in one statement (one
transaction, so one flush), and answers each caller with its part. A few writers run at once,
so while one batch is being flushed the next gathers; a lone enqueue is written at once, with no
timer. Callers are answered only after the commit.

A batch fails as a whole when the database does (``StoreUnavailable`` for everyone in it: none
of it was stored). When one caller's messages are refused for what they hold (a ``ValueError``),
the batch is written again caller by caller, so only that caller gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ._base import Enqueued, NewMessage
from ._errors import StoreError

__all__ = ["BatchStats", "EnqueueBatcher"]

Insert = Callable[[Sequence[NewMessage]], Awaitable[list[Enqueued]]]


@dataclass(frozen=True, slots=True)
class BatchStats:
    """How enqueues were grouped: ``requests`` written in ``statements`` INSERTs."""

    statements: int
    requests: int
    largest_batch: int

    @property
    def mean_batch(self) -> float:
        return self.requests / self.statements if self.statements else 0.0


@dataclass(slots=True)
class _Request:
    messages: Sequence[NewMessage]
    answer: asyncio.Future[list[Enqueued]]


class EnqueueBatcher:
    """Writes waiting enqueues together, with at most ``writers`` statements in flight.

    Args:
        insert: Stores messages in one transaction and answers for each, in order.
        writers: Statements in flight at once (each holds a pooled connection).
        max_messages: The most messages one statement takes.
    """

    def __init__(self, insert: Insert, *, writers: int, max_messages: int = 1000) -> None:
        self._insert = insert
        self._writers = writers
        self._max = max_messages
        self._waiting: list[_Request] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._statements = self._requests = self._largest = 0

    def stats(self) -> BatchStats:
        return BatchStats(self._statements, self._requests, self._largest)

    async def enqueue(self, messages: Sequence[NewMessage]) -> list[Enqueued]:
        request = _Request(messages, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._running < self._writers:
            self._running += 1
            task = asyncio.create_task(self._write())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(request.answer)
        except asyncio.CancelledError:
            # Not taken by a writer yet: it is never written. Taken: it commits or fails whole,
            # like any write whose caller went away mid-commit.
            with contextlib.suppress(ValueError):
                self._waiting.remove(request)
            # Nobody reads the answer now: retrieve it, so asyncio does not report it unread.
            request.answer.add_done_callback(_forget)
            raise

    async def aclose(self) -> None:
        """Let the batches in flight finish (their callers are waiting for them)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                await self._commit(batch)
        finally:
            self._running -= 1

    def _take(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0].messages) <= self._max):
            request = self._waiting.pop(0)
            batch.append(request)
            size += len(request.messages)
        return batch

    async def _commit(self, batch: list[_Request]) -> None:
        self._statements += 1
        self._requests += len(batch)
        self._largest = max(self._largest, len(batch))
        combined = [message for request in batch for message in request.messages]
        try:
            answers = await self._insert(combined)
        except (StoreError, asyncio.CancelledError) as exc:
            for request in batch:
                _settle(request, exc=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc=exc)
                return
            # One caller's messages were refused: write each caller's alone to find whose.
            for request in batch:
                await self._commit([request])
            return
        start = 0
        for request in batch:
            end = start + len(request.messages)
            _settle(request, answers=answers[start:end])
            start = end


def _forget(answer: asyncio.Future[list[Enqueued]]) -> None:
    if not answer.cancelled():
        answer.exception()


def _settle(
    request: _Request,
    *,
    answers: list[Enqueued] | None = None,
    exc: BaseException | None = None,
) -> None:
    if request.answer.done():
        return
    if exc is None:
        request.answer.set_result(typing.cast(list[Enqueued], answers))
    elif isinstance(exc, asyncio.CancelledError):
        request.answer.cancel()
    else:
        request.answer.set_exception(exc)
