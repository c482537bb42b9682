"""The delivery engine's sans-I/O core: slots, retries, cool-downs and parts, as generators.

A delivery is a generator that yields what it needs done — ``Sleep(seconds)`` or
``Post(core, prepared)`` — and receives the HTTP answer ``(status, body)`` (or has the
transport error thrown in). The sync and async clients drive the same generator with
:func:`run` and :func:`arun`, so waiting for a slot, retrying and cooling down are written
once (the pattern of httpx's ``Auth.auth_flow``).
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

from ._clock import Clock
from ._errors import DingPushError, PartialDelivery, RateLimited, Timeout
from ._limiter import Reservation
from ._messages import Message
from ._retry import RetryPolicy

if typing.TYPE_CHECKING:
    from ._robot import PreparedSend, RobotCore, SendResult

__all__ = ["Post", "SendOptions", "Sleep", "arun", "deliver", "deliver_parts", "run"]

logger = logging.getLogger("dingpush")

T = typing.TypeVar("T")

#: Seconds added to the stamp of an attempt that timed out: DingTalk may still be working on
#: (and then count) a request the client gave up on, so its slot is held that much longer.
LATE_ARRIVAL_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds (through the client's clock) and resume."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Post:
    """Send this prepared body with the HTTP client of the robot ``core`` belongs to."""

    core: RobotCore
    prepared: PreparedSend


Reply = tuple[int, bytes]
Flow = Generator[Sleep | Post, Reply | None, T]


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The per-send settings, normalised once."""

    wait: bool
    max_wait: float
    retry: RetryPolicy


def run(flow: Flow[T], clock: Clock, post: Callable[[Post], Reply]) -> T:
    """Drive a delivery in this thread: sleep with ``clock``, send with ``post``."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                clock.sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                reply = post(step)
            except DingPushError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return typing.cast(T, stop.value)
    finally:
        flow.close()  # an interrupted send still stamps the slot it holds


async def arun(flow: Flow[T], clock: Clock, post: Callable[[Post], Awaitable[Reply]]) -> T:
    """Drive a delivery in a task: ``await clock.asleep`` never blocks the event loop."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                await clock.asleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                reply = await post(step)
            except DingPushError as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        return typing.cast(T, stop.value)
    finally:
        flow.close()


def acquire(core: RobotCore, options: SendOptions, deadline: float) -> Flow[Reservation]:
    """Take a slot of ``core``'s robot, waiting for it until ``deadline`` when allowed."""
    while True:
        got = core.limiter.reserve(core.key, core.rate)
        if not isinstance(got, int | float):
            return got
        if not options.wait or core.clock.monotonic() + got > deadline:
            raise core.no_slot(got)
        yield Sleep(got)


def deliver(
    core: RobotCore,
    prepared: PreparedSend,
    options: SendOptions,
    *,
    first: Reservation | None = None,
    resend_throttled: bool = True,
) -> Flow[SendResult]:
    """Send one prepared body: slot, attempt, retries; a throttle cools the robot down.

    Every attempt holds a slot, from before sending until ``window`` seconds after its answer.
    After a DingTalk throttle the robot cools down and, when waiting is allowed, the same body
    (same msgUuid) goes again once the cool-down is over, within ``max_wait``.
    """
    clock = core.clock
    deadline = clock.monotonic() + options.max_wait
    attempt = 0
    failing = 0.0  # seconds spent on failed attempts and back-off
    reservation = first
    while True:
        if reservation is None:
            reservation = yield from acquire(core, options, deadline)
        attempt += 1
        started = clock.monotonic()
        error: DingPushError
        try:
            reply = yield Post(core, prepared)
        except DingPushError as exc:
            reservation.complete(LATE_ARRIVAL_GRACE if isinstance(exc, Timeout) else 0.0)
            error = exc
        except BaseException:
            reservation.complete()
            raise
        else:
            reservation.complete()
            assert reply is not None
            try:
                result = core.result(prepared, *reply)
            except DingPushError as exc:
                error = exc
            else:
                return dataclasses.replace(result, attempts=attempt)
        reservation = None
        if isinstance(error, RateLimited):
            core.throttled(error)
            if not (options.wait and resend_throttled):
                raise error
            continue
        failing += clock.monotonic() - started
        delay = options.retry.delay(attempt, error, failing)
        if delay is None:
            raise error
        logger.info(
            "attempt %d for msgUuid %s to %s failed (%s); retrying in %.2f s",
            attempt,
            prepared.msg_uuid,
            core.target.display,
            type(error).__name__,
            delay,
        )
        yield Sleep(delay)
        failing += delay


def deliver_parts(
    parts: Sequence[Message],
    msg_uuid: str,
    target: str,
    deliver_one: Callable[[Message, str], Flow[SendResult]],
) -> Flow[SendResult]:
    """Send the parts of a split message in order; part ``i`` carries ``{msg_uuid}-{i}``.

    A failure after some parts went out raises ``PartialDelivery`` listing them; a failure of
    the first part raises the error itself, since nothing was delivered.
    """
    from ._robot import SendResult

    sent: list[SendResult] = []
    for index, part in enumerate(parts, 1):
        try:
            sent.append((yield from deliver_one(part, f"{msg_uuid}-{index}")))
        except DingPushError as exc:
            if not sent:
                raise
            raise PartialDelivery(
                sent=sent, total=len(parts), error=exc, msg_uuid=msg_uuid
            ) from exc
    return SendResult(
        msg_uuid=msg_uuid,
        target=target,
        attempts=sum(r.attempts for r in sent),
        parts=tuple(sent),
    )
