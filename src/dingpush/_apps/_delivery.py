"""An app's sends through the delivery engine: one ``AppChannel`` per API, one flow per target.

The robots' engine (``_delivery.py``) waits for slots, retries and cools down; here it does the
same for an enterprise app, whose budgets are DingTalk's platform limits rather than a robot's
20 a minute (protocol §4.1, §7):

* every API of an app takes at most 20 calls a second (``rate``, keyed by app and API path);
* work notifications reach at most 5,000 recipients a minute (``notice_rate``, a call to 100
  users takes 100 of them) and the whole organisation three times a day; DingTalk drops the
  excess *silently*, so dingpush waits (or raises) instead.

DingTalk de-duplicates none of the app APIs, so their channels are not ``idempotent``: a
failure after which DingTalk may have acted is not retried unless the policy says so
(``RetryPolicy.retry_ambiguous``). Users that ``oToMessages/batchSend`` reports as
flow-controlled get the message again, alone, after a back-off (:func:`users_flow`).
Everything here is sans-I/O; ``App``/``AsyncApp`` post the requests.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from dingpush._engine._clock import Clock
from dingpush._engine._delivery import Flow, SendDefaults, SendOptions, Sleep, deliver, send_parts
from dingpush._engine._limiter import (
    DEFAULT_MAX_WAIT,
    Rate,
    RateLimiter,
    Reservation,
    default_limiter,
)
from dingpush._engine._retry import RetryTypes
from dingpush._engine._split import Splitter
from dingpush._errors import DingPushError, PlatformThrottled, RateLimited
from dingpush._messages._models import Message
from dingpush._results import GroupSendResult, NoticeSendResult, UsersSendResult

from ._core import (
    NOTICE_USERS_PER_CALL,
    OTO_USERS_PER_CALL,
    AppCore,
    GroupSpec,
    HttpRequest,
    NoticeSpec,
    Prepared,
    UsersSpec,
    _chunks,
    _coerce,
)

__all__ = [
    "DEFAULT_APP_COOLDOWN",
    "DEFAULT_APP_RATE",
    "DEFAULT_NOTICE_RATE",
    "EVERYONE_RATE",
    "AppCall",
    "AppChannel",
    "AppDelivery",
    "Part",
    "call_flow",
    "group_flow",
    "notice_flow",
    "prepare_parts",
    "users_flow",
]

logger = logging.getLogger("dingpush")

R = typing.TypeVar("R")

#: Each app may call each API at most 20 times a second (protocol §7, standard edition).
DEFAULT_APP_RATE = Rate(20, 1.0)
#: Work notifications reach at most 5,000 recipients a minute (protocol §4.1).
DEFAULT_NOTICE_RATE = Rate(5000, 60.0)
#: ``to_all_user`` at most three times a day (§4.1); a sliding 24 hours is never looser than
#: DingTalk's calendar day.
EVERYONE_RATE = Rate(3, 86_400.0)
#: Seconds an app API rests after ``send.too.fast``: DingTalk does not say how long it lasts.
DEFAULT_APP_COOLDOWN = 60.0

GROUP_PATH = "/v1.0/robot/groupMessages/send"
OTO_PATH = "/v1.0/robot/oToMessages/batchSend"
NOTICE_PATH = "/topapi/message/corpconversation/asyncsend_v2"
UPLOAD_PATH = "/media/upload"
TASK_PATH = "/topapi/message/corpconversation/"

#: §7: the per-app QPS penalty lasts a second, the per-minute one a minute; the global
#: per-API ban (90002) is backed off from a second, doubling (the retry policy's advice).
_PER_MINUTE = frozenset({"Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"})

_PARTS_ADVICE = (
    "DingTalk's app APIs do not de-duplicate, so sending the whole message again would repeat "
    "the parts already delivered: send exc.remaining (the parts not delivered) instead"
)
_LIMIT_ADVICE = "or queue them through the relay"

#: A rate budget a request takes besides its API's own: ``(key, rate, weight)``.
Budget = tuple[str, Rate, int]


@dataclass(frozen=True, slots=True)
class AppCall:
    """One request of an app, ready to go once the shell has an access token."""

    build: Callable[[str], HttpRequest] = field(repr=False)
    msg_uuid: str
    #: Budgets this request takes besides its API's calls a second (work-notification
    #: recipients, the whole organisation's three a day).
    budgets: tuple[Budget, ...] = ()
    timeout: typing.Any = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """An app API's accepted answer and the requests it took."""

    body: dict[str, typing.Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Part:
    """A message (or one part of a split one) as checked, and as sent (media uploaded)."""

    prepared: Prepared
    message: Message


class _Reservations:
    """Several budgets taken together: stamped together when the answer is back."""

    __slots__ = ("_taken",)

    def __init__(self, taken: Sequence[Reservation]) -> None:
        self._taken = tuple(taken)

    def complete(self, extra: float = 0.0) -> None:
        for reservation in self._taken:
            reservation.complete(extra)


class AppChannel:
    """One API of one app as the delivery engine sees it: its budgets, cool-down, answers."""

    def __init__(
        self, delivery: AppDelivery, path: str, what: str, *, idempotent: bool = False
    ) -> None:
        self.delivery = delivery
        self.clock: Clock = delivery.clock
        self.limiter = delivery.limiter
        self.rate = delivery.rate
        self.path = path
        self.what = what
        self.key = delivery.key(path)
        #: Uploads and queries may be repeated harmlessly; sends may not (no msgUuid here).
        self.idempotent = idempotent

    def __repr__(self) -> str:
        return f"<AppChannel {self.display} {self.rate}>"

    @property
    def display(self) -> str:
        return f"app {self.delivery.app_key} ({self.what})"

    def budgets(self, call: AppCall) -> tuple[Budget, ...]:
        return ((self.key, self.rate, 1), *call.budgets)

    def reserve(self, call: AppCall) -> Reservation | float:
        """Take every budget the call needs, or none of them (the seconds until all may be)."""
        budgets = self.budgets(call)
        if len(budgets) == 1:
            return self.limiter.reserve(self.key, self.rate)
        wait = max(self.limiter.delay(key, rate, weight) for key, rate, weight in budgets)
        if wait > 0:
            return wait
        taken: list[Reservation] = []
        for key, rate, weight in budgets:
            got = self.limiter.reserve(key, rate, weight)
            if isinstance(got, int | float):
                # Another sender took a slot since delay() looked: the ones taken count as
                # used (they are the short-lived ones; the daily budget is taken last).
                for reservation in taken:
                    reservation.complete()
                return got
            taken.append(got)
        return _Reservations(taken)

    def settle(self, call: AppCall, reply: dict[str, typing.Any], attempts: int) -> Answer:
        """The shell already checked the answer (and refreshed the token if need be)."""
        return Answer(reply, attempts)

    def throttled(self, error: RateLimited) -> None:
        """DingTalk said ``send.too.fast``: every sender of this app's API rests a while."""
        cooldown = self.delivery.cooldown
        self.limiter.cool_down(self.key, cooldown)
        error.retry_at = self.clock.time() + cooldown
        logger.warning(
            "DingTalk throttled %s (%s): no call to it for %.0f s",
            self.display,
            error.errcode,
            cooldown,
        )

    def penalised(self, error: PlatformThrottled) -> None:
        """A platform QPS penalty holds every sender of this app's API for its length (§7)."""
        seconds = 60.0 if error.errcode in _PER_MINUTE else 1.0
        self.limiter.cool_down(self.key, seconds)

    def no_slot(self, wait: float, call: AppCall) -> RateLimited:
        """The error for a call that found no slot in time, naming the budget that is full."""
        return RateLimited.local(
            target=self.display,
            retry_at=self.clock.time() + wait,
            wait=wait,
            reason=self._reason(call),
            advice=_LIMIT_ADVICE,
        )

    def _reason(self, call: AppCall) -> str:
        if self.limiter.cooldown_left(self.key) > 0:
            return "the app is cooling down after DingTalk throttled it"
        slowest = max(self.budgets(call), key=lambda b: self.limiter.delay(*b))
        key, rate, _ = slowest
        if key == self.key:
            return f"the app is at its limit of {rate} {self.what} calls (protocol §7)"
        if rate == EVERYONE_RATE:
            return (
                "the app already notified everyone 3 times in 24 hours; DingTalk silently "
                "drops more (protocol §4.1)"
            )
        return (
            f"the app is at its limit of {rate} work-notification recipients; DingTalk "
            "silently drops the excess (protocol §4.1)"
        )


class AppDelivery(SendDefaults):
    """An app's delivery settings and its channels, shared by all its targets.

    Args:
        core: The app's sans-I/O core (credentials, hosts, clock).
        rate: Calls a second per API (DingTalk's 20, protocol §7).
        notice_rate: Work-notification recipients a minute (DingTalk's 5,000, §4.1).
        cooldown: Seconds an API rests after DingTalk answered ``send.too.fast``.
        limiter: Where the budgets live (``default_limiter()`` by default).
        retry: The default retry policy of the app's sends.
        max_wait: Default seconds a send may wait for its slots.
    """

    def __init__(
        self,
        core: AppCore,
        *,
        rate: Rate | str = DEFAULT_APP_RATE,
        notice_rate: Rate | str = DEFAULT_NOTICE_RATE,
        cooldown: float = DEFAULT_APP_COOLDOWN,
        limiter: RateLimiter | None = None,
        retry: RetryTypes = True,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self.core = core
        self.app_key = core.app_key
        self.clock: Clock = core.clock
        self.rate = _rate("rate", rate, DEFAULT_APP_RATE)
        self.notice_rate = _rate("notice_rate", notice_rate, DEFAULT_NOTICE_RATE)
        if self.notice_rate.limit < NOTICE_USERS_PER_CALL:
            raise ValueError(
                f"notice_rate={self.notice_rate} cannot hold one call to "
                f"{NOTICE_USERS_PER_CALL} users; DingTalk's limit is {DEFAULT_NOTICE_RATE}"
            )
        if not cooldown >= 0:
            raise ValueError("cooldown= must be >= 0 seconds")
        self.cooldown = float(cooldown)
        self.limiter: RateLimiter = limiter if limiter is not None else default_limiter(core.clock)
        super().__init__(retry=retry, max_wait=max_wait)
        self._channels: dict[str, AppChannel] = {}

    def key(self, path: str) -> str:
        """The limiter key of one of the app's budgets: AppKey, host and API path."""
        base = self.core.api_base if path.startswith("/v1.0/") else self.core.oapi_base
        return f"app:{self.app_key}@{base}{path}"

    def channel(self, path: str, what: str, *, idempotent: bool = False) -> AppChannel:
        channel = self._channels.get(path)
        if channel is None:
            channel = self._channels[path] = AppChannel(self, path, what, idempotent=idempotent)
        return channel

    def defaults(self) -> SendOptions:
        return self.options(True, None, None)

    def notice_budgets(self, spec: NoticeSpec, users: Sequence[str]) -> tuple[Budget, ...]:
        """What one ``asyncsend_v2`` call takes besides the API's calls a second.

        Only named users can be counted: the members of departments (and of the whole
        organisation) are unknown to the client.
        """
        budgets: list[Budget] = []
        if users:
            key = self.key(NOTICE_PATH) + "#recipients"
            budgets.append((key, self.notice_rate, len(users)))
        if spec.everyone:
            key = self.key(NOTICE_PATH) + f"#to_all_user:{spec.agent_id}"
            budgets.append((key, EVERYONE_RATE, 1))
        return tuple(budgets)


def _rate(name: str, value: Rate | str, default: Rate) -> Rate:
    try:
        return Rate.coerce(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a rate of the form N/1s or N/60s (DingTalk's limit "
            f"here is {default})"
        ) from None


Spec = GroupSpec | UsersSpec | NoticeSpec


def prepare_parts(
    spec: Spec, message: Message | str, msg_uuid: str | None, split: bool | Splitter
) -> tuple[str, list[Prepared]]:
    """Check a message for the channel and cut it into parts when asked; nothing is sent.

    Returns the send's ``msg_uuid`` and the prepared parts (one when it fits or is not split);
    part ``i`` carries ``{msg_uuid}-{i}``, as on a robot.
    """
    message = _coerce(message)
    base = msg_uuid or str(uuid.uuid4())
    parts: tuple[Message, ...] = (message,)
    if split is not False:
        splitter = split if isinstance(split, Splitter) else Splitter()
        parts = splitter.split(message, limit=spec.limit, measure=spec.measure)
    if len(parts) == 1:
        return base, [spec.prepare(parts[0], base)]
    return base, [spec.prepare(part, f"{base}-{i}") for i, part in enumerate(parts, 1)]


def call_flow(
    channel: AppChannel, call: AppCall, options: SendOptions
) -> Flow[dict[str, typing.Any]]:
    """One request (an upload, a query) through the engine; its answer's body."""
    answer = yield from deliver(channel, call, options)
    return answer.body


def _in_parts(
    parts: Sequence[Part],
    base: str,
    one: Callable[[Part], Flow[R]],
    combine: Callable[[list[R]], R],
) -> Flow[R]:
    """One part alone, or every part in order with ``PartialDelivery`` on a failure."""
    if len(parts) == 1:
        return (yield from one(parts[0]))
    by_uuid = {part.prepared.msg_uuid: part for part in parts}
    return (
        yield from send_parts(
            [part.message for part in parts],
            base,
            lambda _message, part_uuid: one(by_uuid[part_uuid]),
            combine,
            advice=_PARTS_ADVICE,
        )
    )


# -- groups (§3.1) -------------------------------------------------------------------------


def group_flow(
    delivery: AppDelivery,
    spec: GroupSpec,
    parts: Sequence[Part],
    base: str,
    options: SendOptions,
) -> Flow[GroupSendResult]:
    """Post a message (its parts in order) into a group as the app's robot."""
    channel = delivery.channel(GROUP_PATH, "groupMessages/send")

    def one(part: Part) -> Flow[GroupSendResult]:
        call = AppCall(partial(spec.request, part.message), part.prepared.msg_uuid)
        answer = yield from deliver(channel, call, options)
        result = spec.result(answer.body, part.prepared)
        return dataclasses.replace(result, attempts=answer.attempts)

    def combine(sent: list[GroupSendResult]) -> GroupSendResult:
        return dataclasses.replace(
            sent[0], msg_uuid=base, attempts=sum(r.attempts for r in sent), parts=tuple(sent)
        )

    return (yield from _in_parts(parts, base, one, combine))


# -- one-to-one (§3.2) ------------------------------------------------------------------------

_DELIVERED, _INVALID, _FLOW, _FILTERED = "delivered", "invalid", "flow", "filtered"


def _mark(status: dict[str, str], chunk: Sequence[str], body: dict[str, typing.Any]) -> None:
    """Record what ``batchSend`` answered for each user of ``chunk``."""
    lists = {
        _INVALID: body.get("invalidStaffIdList"),
        _FLOW: body.get("flowControlledStaffIdList"),
        _FILTERED: body.get("filteredStaffIdList"),
    }
    named = {
        str(user): verdict
        for verdict, users in lists.items()
        if isinstance(users, list)
        for user in users
    }
    for user in chunk:
        status[user] = named.get(user, _DELIVERED)


def _users_result(
    asked: Sequence[str],
    status: dict[str, str],
    keys: Sequence[str],
    prepared: Prepared,
    attempts: int,
) -> UsersSendResult:
    def having(verdict: str) -> tuple[str, ...]:
        return tuple(u for u in asked if status.get(u) == verdict)

    return UsersSendResult(
        process_query_keys=tuple(keys),
        user_ids=tuple(u for u in asked if u in status),
        invalid_user_ids=having(_INVALID),
        flow_controlled_user_ids=having(_FLOW),
        filtered_user_ids=having(_FILTERED),
        msg_key=prepared.kind,
        msg_uuid=prepared.msg_uuid,
        attempts=attempts,
    )


def _users_part(
    channel: AppChannel,
    spec: UsersSpec,
    part: Part,
    users: Sequence[str],
    options: SendOptions,
) -> Flow[UsersSendResult]:
    """One message to ``users``, 20 a call; flow-controlled users get it again, alone, later.

    DingTalk does not say how long a user stays flow-controlled; the pause before resend
    ``n`` is the policy's back-off, at least 2^(n-1) seconds (§7's advice for throttles), and
    a user gets at most ``max_attempts`` sends.
    """
    status: dict[str, str] = {}
    keys: list[str] = []
    attempts, resend, elapsed = 0, 1, 0.0
    todo = list(users)
    while True:
        for chunk in _chunks(todo, OTO_USERS_PER_CALL):
            call = AppCall(partial(spec.request, part.message, chunk), part.prepared.msg_uuid)
            try:
                answer = yield from deliver(channel, call, options)
            except DingPushError as exc:
                if status:
                    exc.partial = _users_result(users, status, keys, part.prepared, attempts)
                raise
            attempts += answer.attempts
            keys.append(str(answer.body.get("processQueryKey", "")))
            _mark(status, chunk, answer.body)
        todo = [user for user in todo if status.get(user) == _FLOW]
        if not todo:
            break
        delay = options.retry.backoff(resend, elapsed, floor=2.0 ** (resend - 1))
        if delay is None:
            break
        logger.info(
            "DingTalk flow-controlled %d user(s) of %s for msgUuid %s; resending to them in %.1f s",
            len(todo),
            channel.display,
            part.prepared.msg_uuid,
            delay,
        )
        yield Sleep(delay)
        elapsed += delay
        resend += 1
    return _users_result(users, status, keys, part.prepared, attempts)


def _merge(lists: Iterable[Iterable[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(user for users in lists for user in users))


def users_flow(
    delivery: AppDelivery,
    spec: UsersSpec,
    parts: Sequence[Part],
    base: str,
    options: SendOptions,
) -> Flow[UsersSendResult]:
    """Send a message (its parts in order) to users one-to-one as the app's robot.

    A user who misses a part (invalid, filtered, still flow-controlled) gets none of the
    later ones, so nobody reads part 3 without part 2.
    """
    channel = delivery.channel(OTO_PATH, "oToMessages/batchSend")
    missed: dict[str, None] = {}

    def one(part: Part) -> Flow[UsersSendResult]:
        users = [user for user in spec.user_ids if user not in missed]
        result = yield from _users_part(channel, spec, part, users, options)
        reached = set(result.delivered_user_ids)
        missed.update(dict.fromkeys(u for u in result.user_ids if u not in reached))
        return result

    def combine(sent: list[UsersSendResult]) -> UsersSendResult:
        return UsersSendResult(
            process_query_keys=tuple(k for r in sent for k in r.process_query_keys),
            user_ids=sent[0].user_ids,
            invalid_user_ids=_merge(r.invalid_user_ids for r in sent),
            flow_controlled_user_ids=_merge(r.flow_controlled_user_ids for r in sent),
            filtered_user_ids=_merge(r.filtered_user_ids for r in sent),
            msg_key=sent[0].msg_key,
            msg_uuid=base,
            attempts=sum(r.attempts for r in sent),
            parts=tuple(sent),
        )

    return (yield from _in_parts(parts, base, one, combine))


# -- work notifications (§4.1) ------------------------------------------------------------------


def notice_flow(
    delivery: AppDelivery,
    spec: NoticeSpec,
    parts: Sequence[Part],
    base: str,
    options: SendOptions,
) -> Flow[NoticeSendResult]:
    """Queue a work notification (its parts in order), within the recipients budgets."""
    channel = delivery.channel(NOTICE_PATH, "asyncsend_v2")

    def one(part: Part) -> Flow[NoticeSendResult]:
        bodies: list[dict[str, typing.Any]] = []
        attempts = 0
        for users, departments in spec.calls:
            call = AppCall(
                partial(spec.request, part.message, (users, departments)),
                part.prepared.msg_uuid,
                delivery.notice_budgets(spec, users),
            )
            try:
                answer = yield from deliver(channel, call, options)
            except DingPushError as exc:
                if bodies:
                    partial_result = spec.result(bodies, part.prepared)
                    exc.partial = dataclasses.replace(partial_result, attempts=attempts)
                raise
            bodies.append(answer.body)
            attempts += answer.attempts
        return dataclasses.replace(spec.result(bodies, part.prepared), attempts=attempts)

    def combine(sent: list[NoticeSendResult]) -> NoticeSendResult:
        return dataclasses.replace(
            sent[0],
            task_ids=tuple(t for r in sent for t in r.task_ids),
            msg_uuid=base,
            attempts=sum(r.attempts for r in sent),
            parts=tuple(sent),
        )

    return (yield from _in_parts(parts, base, one, combine))
