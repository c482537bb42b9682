"""The delivery engine's sans-I/O core: slots, retries, cool-downs and parts, as generators.

A delivery is a generator that yields what it needs done — ``Sleep(seconds)`` or
``Post(core, prepared)`` — and receives the answer (or has the transport error thrown in). The
sync and async clients drive the same generator with :func:`run` and :func:`arun`, so waiting
for a slot, retrying and cooling down are written once (the pattern of httpx's
``Auth.auth_flow``).

The engine knows its destination only as a :class:`Channel`: a robot's webhook
(``RobotCore``) or one API of an enterprise app (``AppChannel``). The channel says which rate
budgets a send takes, how an answer becomes a result, and whether DingTalk de-duplicates a
retry; everything else is the same for both.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

from dingpush._errors import DingPushError, PartialDelivery, PlatformThrottled, RateLimited, Timeout
from dingpush._messages._models import Message
from dingpush._results import SendResult

from ._clock import Clock
from ._limiter import Reservation
from ._retry import RetryPolicy, RetryTypes, as_retry_policy

__all__ = [
    "Channel",
    "Post",
    "SendDefaults",
    "SendOptions",
    "Sleep",
    "arun",
    "check_max_wait",
    "deliver",
    "deliver_parts",
    "run",
    "send_parts",
]

logger = logging.getLogger("dingpush")

T = typing.TypeVar("T")
C = typing.TypeVar("C")
P = typing.TypeVar("P", bound="Identified")
R = typing.TypeVar("R")
P_contra = typing.TypeVar("P_contra", bound="Identified", contravariant=True)
R_co = typing.TypeVar("R_co", covariant=True)

#: Seconds added to the stamp of an attempt that timed out: DingTalk may still be working on
#: (and then count) a request the client gave up on, so its slot is held that much longer.
LATE_ARRIVAL_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds (through the client's clock) and resume."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Post(typing.Generic[C, T]):
    """Send ``prepared`` with the HTTP client of the shell that ``core`` belongs to."""

    core: C
    prepared: T


Reply = tuple[int, bytes]
Flow = Generator[Sleep | Post[typing.Any, typing.Any], typing.Any, T]


class Identified(typing.Protocol):
    """A prepared request: it carries the send's ``msg_uuid`` (for logs and results)."""

    @property
    def msg_uuid(self) -> str: ...


class Channel(typing.Protocol[P_contra, R_co]):
    """Where a delivery goes, as the engine sees it: a robot's webhook, or one app API."""

    @property
    def clock(self) -> Clock:
        """Where waiting and the limiter read the time."""

    @property
    def idempotent(self) -> bool:
        """Whether DingTalk drops a repeated request (a webhook's ``msgUuid``)."""

    @property
    def display(self) -> str:
        """The destination for logs, with secrets masked."""

    def reserve(self, prepared: P_contra) -> Reservation | float:
        """Take the rate slots this request needs, or return the seconds until they may be."""

    def settle(self, prepared: P_contra, reply: typing.Any, attempts: int) -> R_co:
        """Turn an answer into the result, or raise what DingTalk refused."""

    def throttled(self, error: RateLimited) -> None:
        """DingTalk said the sender is too fast: start its cool-down (sets ``retry_at``)."""

    def penalised(self, error: PlatformThrottled) -> None:
        """A platform call-rate throttle: hold back every sender of the same budget."""

    def no_slot(self, wait: float, prepared: P_contra) -> RateLimited:
        """The error for a request that found no slot in time (nothing was sent)."""


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The per-send settings, normalised once."""

    wait: bool
    max_wait: float
    retry: RetryPolicy


def check_max_wait(max_wait: float) -> float:
    if not (isinstance(max_wait, int | float) and max_wait >= 0):
        raise ValueError("max_wait= must be a number of seconds >= 0")
    return float(max_wait)


class SendDefaults:
    """A client's default retry policy and longest wait, which each send may override.

    Robots (``RobotCore``) and apps (``AppDelivery``) take the same per-call settings, so the
    rule that turns them into one send's :class:`SendOptions` is written here once.
    """

    def __init__(self, *, retry: RetryTypes, max_wait: float) -> None:
        self.retry = as_retry_policy(retry)
        self.max_wait = check_max_wait(max_wait)

    def options(self, wait: bool, max_wait: float | None, retry: RetryTypes | None) -> SendOptions:
        """This send's settings: the client's defaults, overridden per call."""
        return SendOptions(
            wait=bool(wait),
            max_wait=self.max_wait if max_wait is None else check_max_wait(max_wait),
            retry=self.retry if retry is None else as_retry_policy(retry),
        )


def run(
    flow: Flow[T], clock: Clock, post: Callable[[Post[typing.Any, typing.Any]], typing.Any]
) -> T:
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


async def arun(
    flow: Flow[T],
    clock: Clock,
    post: Callable[[Post[typing.Any, typing.Any]], Awaitable[typing.Any]],
) -> T:
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


def acquire(
    core: Channel[P, typing.Any], prepared: P, options: SendOptions, deadline: float
) -> Flow[Reservation]:
    """Take the slots ``prepared`` needs, waiting for them until ``deadline`` when allowed."""
    while True:
        got = core.reserve(prepared)
        if not isinstance(got, int | float):
            return got
        if not options.wait or core.clock.monotonic() + got > deadline:
            raise core.no_slot(got, prepared)
        yield Sleep(got)


def deliver(
    core: Channel[P, R],
    prepared: P,
    options: SendOptions,
    *,
    first: Reservation | None = None,
    resend_throttled: bool = True,
) -> Flow[R]:
    """Send one prepared request: slot, attempt, retries; a throttle cools the sender down.

    Every attempt holds a slot, from before sending until ``window`` seconds after its answer.
    After a DingTalk throttle the sender cools down and, when waiting is allowed, the same
    request goes again once the cool-down is over, within ``max_wait`` (a throttle is a
    refusal: nothing was delivered, so this is safe on every channel).
    """
    clock = core.clock
    deadline = clock.monotonic() + options.max_wait
    attempt = 0
    failing = 0.0  # seconds spent on failed attempts and back-off
    reservation = first
    while True:
        if reservation is None:
            reservation = yield from acquire(core, prepared, options, deadline)
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
                return core.settle(prepared, reply, attempt)
            except DingPushError as exc:
                error = exc
        reservation = None
        spent = clock.monotonic() - started
        decision = options.retry.decide(
            error, attempt=attempt, elapsed=failing + spent, idempotent=core.idempotent
        )
        if decision.kind == "cool_down":
            assert isinstance(error, RateLimited)
            core.throttled(error)
            if not (options.wait and resend_throttled):
                raise error
            continue
        if isinstance(error, PlatformThrottled):
            core.penalised(error)
        failing += spent
        if decision.kind == "give_up" or decision.delay is None:
            raise error
        delay = decision.delay
        logger.info(
            "attempt %d for msgUuid %s to %s failed (%s); retrying in %.2f s",
            attempt,
            prepared.msg_uuid,
            core.display,
            type(error).__name__,
            delay,
            # As data, for a front end that says it in its own words (the CLI on a terminal).
            extra={"dingpush_retry": (attempt, options.retry.max_attempts, error, delay)},
        )
        yield Sleep(delay)
        failing += delay


def deliver_parts(
    parts: Sequence[Message],
    msg_uuid: str,
    target: str,
    deliver_one: Callable[[Message, str], Flow[SendResult]],
) -> Flow[SendResult]:
    """Send the parts of a split message to a robot in order; see :func:`send_parts`."""

    def combine(sent: list[SendResult]) -> SendResult:
        return SendResult(
            msg_uuid=msg_uuid,
            target=target,
            attempts=sum(r.attempts for r in sent),
            parts=tuple(sent),
        )

    return (yield from send_parts(parts, msg_uuid, deliver_one, combine))


def send_parts(
    parts: Sequence[Message],
    msg_uuid: str,
    deliver_one: Callable[[Message, str], Flow[R]],
    combine: Callable[[list[R]], R],
    *,
    advice: str | None = None,
) -> Flow[R]:
    """Send the parts of a split message in order; part ``i`` carries ``{msg_uuid}-{i}``.

    A failure after some parts went out raises ``PartialDelivery`` listing them (``advice``
    says how to deliver the rest); a failure of the first part raises the error itself, since
    nothing was delivered.
    """
    sent: list[R] = []
    for index, part in enumerate(parts, 1):
        try:
            sent.append((yield from deliver_one(part, f"{msg_uuid}-{index}")))
        except DingPushError as exc:
            if not sent:
                raise
            raise PartialDelivery(
                sent=sent,
                total=len(parts),
                error=exc,
                msg_uuid=msg_uuid,
                remaining=parts[len(sent) :],
                advice=advice,
            ) from exc
    return combine(sent)
