"""Robot pools: several robots in one group act as one target with their rates added up.

Each send goes to the member with the earliest free slot (in turn when several are free). A
member that fails for good — its token unknown (removed robot), the robot disabled or out of
the group, a security setting refusing it — is taken out with a logged warning and the message
goes to the next member. A member DingTalk throttles cools down and the message goes to
another. Transient failures are retried on the *same* member: msgUuid de-duplication is per
robot, so only there is a retry safe from showing the message twice.
"""

from __future__ import annotations

import itertools
import logging
import threading
import typing
import uuid
from collections.abc import Iterable, Sequence

from dingpush._engine._clock import Clock
from dingpush._engine._delivery import (
    Flow,
    Post,
    Reply,
    SendOptions,
    Sleep,
    arun,
    deliver,
    deliver_parts,
    run,
)
from dingpush._engine._limiter import Reservation
from dingpush._engine._retry import RetryTypes
from dingpush._engine._split import Splitter
from dingpush._errors import (
    DingPushError,
    PoolExhausted,
    RateLimited,
    RobotUnavailable,
    SecurityRejected,
    TokenNotFound,
)
from dingpush._messages._models import Message
from dingpush._results import SendResult

from ._client import AsyncRobot, Robot
from ._core import PreparedSend, RobotCore
from ._target import WebhookTarget

__all__ = ["AsyncRobotPool", "RobotPool"]

logger = logging.getLogger("dingpush")

#: Failures that say a member will never send again as configured.
PERMANENT = (TokenNotFound, RobotUnavailable, SecurityRejected)

R = typing.TypeVar("R", Robot, AsyncRobot)


class _Members(typing.Generic[R]):
    """The live members and the sans-I/O choice between them, shared by both pools."""

    def __init__(self, robots: Sequence[R]) -> None:
        if not robots:
            raise ValueError("a RobotPool needs at least one robot")
        self.robots: list[R] = list(robots)
        self.by_core: dict[int, R] = {id(r._core): r for r in robots}
        self.removed: dict[str, DingPushError] = {}
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @property
    def cores(self) -> list[RobotCore]:
        with self._lock:
            return [r._core for r in self.robots]

    def remove(self, core: RobotCore, error: DingPushError) -> None:
        with self._lock:
            self.robots = [r for r in self.robots if r._core is not core]
            self.removed[core.target.display] = error
            left = len(self.robots)
        logger.warning(
            "robot %s taken out of the pool after %s: %s (%d left)",
            core.target.display,
            type(error).__name__,
            error,
            left,
        )

    def acquire(self, options: SendOptions, deadline: float) -> Flow[tuple[RobotCore, Reservation]]:
        """A slot of the member free first; in turn among those free now."""
        while True:
            cores = self.cores
            if not cores:
                raise PoolExhausted(self.removed)
            start = next(self._turn) % len(cores)
            best: tuple[float, RobotCore] | None = None
            for core in cores[start:] + cores[:start]:
                got = core.limiter.reserve(core.key, core.rate)
                if not isinstance(got, int | float):
                    return core, got
                if best is None or got < best[0]:
                    best = (got, core)
            assert best is not None
            wait, soonest = best
            if not options.wait or soonest.clock.monotonic() + wait > deadline:
                raise soonest.no_slot(wait)
            yield Sleep(wait)

    def deliver(self, message: Message, msg_uuid: str, options: SendOptions) -> Flow[SendResult]:
        """Send one message through the pool, moving to another member when one is done for."""
        clock = self.cores[0].clock if self.cores else None
        deadline = (clock.monotonic() if clock else 0.0) + options.max_wait
        while True:
            core, reservation = yield from self.acquire(options, deadline)
            try:
                prepared = core.prepare(message, msg_uuid)
            except BaseException:
                reservation.complete()
                raise
            try:
                return (
                    yield from deliver(
                        core, prepared, options, first=reservation, resend_throttled=False
                    )
                )
            except RateLimited:
                if not options.wait:
                    raise
                continue  # that member cools down; another one takes the message
            except PERMANENT as exc:
                self.remove(core, exc)

    def flow(
        self,
        message: Message | str,
        msg_uuid: str | None,
        options: SendOptions,
        split: bool | Splitter,
    ) -> Flow[SendResult]:
        cores = self.cores
        if not cores:
            raise PoolExhausted(self.removed)
        message = cores[0].coerce(message)
        base = msg_uuid or str(uuid.uuid4())
        parts: tuple[Message, ...] = (message,)
        if split is not False:
            splitter = split if isinstance(split, Splitter) else Splitter()
            # Members may differ (keywords): every part must fit the largest body of them.
            parts = splitter.split(
                message,
                limit=min(c.body_limit for c in cores),
                measure=lambda m: max(c.body_size(m) for c in cores),
            )
        if len(parts) == 1:
            return (yield from self.deliver(parts[0], base, options))
        return (
            yield from deliver_parts(
                parts, base, "pool", lambda part, uid: self.deliver(part, uid, options)
            )
        )


def _robots(
    members: Iterable[R | str | WebhookTarget],
    cls: type[R],
    options: dict[str, typing.Any],
) -> tuple[list[R], list[R]]:
    robots: list[R] = []
    owned: list[R] = []
    for member in members:
        if isinstance(member, cls):
            robots.append(member)
        elif isinstance(member, str | WebhookTarget):
            robot = cls(member, **options)
            robots.append(robot)
            owned.append(robot)
        else:
            raise TypeError(
                f"{cls.__name__}Pool members are {cls.__name__} objects, webhook URLs or "
                f"WebhookTargets, not {type(member).__name__}"
            )
    return robots, owned


class BasePool(typing.Generic[R]):
    """What ``RobotPool`` and ``AsyncRobotPool`` share: members, the start of a send, the repr.

    The subclasses add only I/O: running the send's flow and closing the robots they made.
    """

    _robot_class: type[R]

    def __init__(
        self, members: Iterable[R | str | WebhookTarget], **robot_options: typing.Any
    ) -> None:
        robots, owned = _robots(members, self._robot_class, robot_options)
        self._owned: list[R] = owned
        self._members: _Members[R] = _Members(robots)

    @property
    def members(self) -> list[R]:
        """The robots still in the pool."""
        return list(self._members.robots)

    def _flow(
        self,
        message: Message | str,
        msg_uuid: str | None,
        wait: bool,
        max_wait: float | None,
        split: bool | Splitter,
        retry: RetryTypes | None,
    ) -> tuple[Flow[SendResult], Clock]:
        """One send's flow, with the first member's settings and clock."""
        members = self._members.robots
        if not members:
            raise PoolExhausted(self._members.removed)
        first = members[0]._core
        options = first.options(wait, max_wait, retry)
        return self._members.flow(message, msg_uuid, options, split), first.clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}({[r.target.display for r in self._members.robots]!r})"


class RobotPool(BasePool[Robot]):
    """Several robots of one group used as one: each send takes the earliest free robot.

    Args:
        members: ``Robot`` objects, or targets (webhook URLs, ``dingtalk://SECRET@TOKEN``,
            ``WebhookTarget``) for which the pool creates robots with ``**robot_options``.
        **robot_options: ``Robot`` arguments (``keyword``, ``timeout``, ``rate``, ``limiter``…)
            for the members given as targets; the pool closes the robots it creates.
    """

    _robot_class = Robot

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> SendResult:
        """Send through the member with the earliest free slot; :meth:`Robot.send`'s arguments.

        Raises:
            PoolExhausted: every member failed for good.
        """
        flow, clock = self._flow(message, msg_uuid, wait, max_wait, split, retry)
        return run(flow, clock, self._request)

    def _request(self, step: Post[RobotCore, PreparedSend]) -> Reply:
        return self._members.by_core[id(step.core)]._request(step)

    def close(self) -> None:
        for robot in self._owned:
            robot.close()

    def __enter__(self) -> RobotPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRobotPool(BasePool[AsyncRobot]):
    """The asyncio twin of :class:`RobotPool`: ``AsyncRobot`` members, ``await pool.send()``."""

    _robot_class = AsyncRobot

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> SendResult:
        """Send through the member with the earliest free slot; :meth:`RobotPool.send`'s twin."""
        flow, clock = self._flow(message, msg_uuid, wait, max_wait, split, retry)
        return await arun(flow, clock, self._request)

    async def _request(self, step: Post[RobotCore, PreparedSend]) -> Reply:
        return await self._members.by_core[id(step.core)]._request(step)

    async def aclose(self) -> None:
        for robot in self._owned:
            await robot.aclose()

    async def __aenter__(self) -> AsyncRobotPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
