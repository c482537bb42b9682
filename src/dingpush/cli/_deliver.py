"""Sending (through the library's clients, the one delivery path) and describing a dry run."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field

from dingpush import DingPushError, Message
from dingpush.config import (
    AppGroupTarget,
    AppUsersTarget,
    PoolTarget,
    RobotTarget,
    WorkNoticeTarget,
)

if typing.TYPE_CHECKING:
    from dingpush import UsersSendResult
    from dingpush.config import Sender, Target
    from dingpush.lowlevel import PlannedRequest

    from ._state import State


@dataclass(frozen=True, slots=True)
class DryRunRequest:
    """One request a send would make, as ``--dry-run`` shows it: credentials masked in ``url``
    and ``headers``.

    ``body`` is the exact JSON body; an upload's multipart body is described by ``summary``.
    """

    method: str
    url: str
    headers: typing.Mapping[str, str]
    body: bytes | None
    note: str = ""
    summary: str = ""

    @classmethod
    def shown(cls, planned: PlannedRequest, notes: typing.Iterable[str] = ()) -> DryRunRequest:
        """``planned`` with its webhook token and signature, or access token, masked; ``notes``
        (and the part it is, for a split message) in order."""
        from dingpush.lowlevel import ACCESS_TOKEN_PLACEHOLDER

        # A plan carries the ACCESS_TOKEN placeholder, shown as in the URL; anything else in
        # the token header would be a real token, and is masked.
        headers = {
            name: (
                "****"
                if name.lower() == "x-acs-dingtalk-access-token"
                and value != ACCESS_TOKEN_PLACEHOLDER
                else value
            )
            for name, value in planned.headers.items()
        }
        if planned.summary:
            headers = {"Content-Type": "multipart/form-data; boundary=…"}
        body = None if planned.summary else planned.content
        note = "; ".join(filter(None, notes))
        return cls(planned.method, masked_url(planned.url), headers, body, note, planned.summary)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
        }
        if self.body is not None:
            data.update(body=json.loads(self.body), bytes=len(self.body))
        if self.summary:
            data["summary"] = self.summary
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send achieved, for the CLI's line or ``--json``."""

    target: str
    kind: str
    msgtype: str
    msg_uuid: str | None
    errcode: int | str = 0
    errmsg: str = "ok"
    extra: typing.Mapping[str, object] = field(default_factory=dict)

    def line(self) -> str:
        """The one line ``send`` prints on success."""
        extra = self.extra
        parts = typing.cast(list[dict[str, typing.Any]], extra.get("parts") or [])
        if parts:
            key, name = (
                ("process_query_key", "processQueryKey")
                if "process_query_key" in parts[0]
                else ("task_id", "task")
                if "task_id" in parts[0]
                else ("msg_uuid", "msgUuid")
            )
            keys = ", ".join(str(part.get(key)) for part in parts)
            return f"sent {self.msgtype} to {self.target} in {len(parts)} parts ({name} {keys})"
        if "task_ids" in extra:
            tasks = ", ".join(str(t) for t in typing.cast(list[int], extra["task_ids"]))
            detail = (
                f"queued as task {tasks}; DingTalk delivers work notifications in the background"
            )
        elif "user_ids" in extra:
            count = len(typing.cast(list[str], extra["user_ids"]))
            detail = f"{count} users, processQueryKey {extra['process_query_keys'][0]}"  # type: ignore[index]
        elif "process_query_key" in extra:
            detail = f"processQueryKey {extra['process_query_key']}"
        else:
            detail = f"msgUuid {self.msg_uuid}"
        return f"sent {self.msgtype} to {self.target} ({detail})"

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "target": self.target,
            "kind": self.kind,
            "msgtype": self.msgtype,
            "msg_uuid": self.msg_uuid,
            "errcode": self.errcode,
            "errmsg": self.errmsg,
            **self.extra,
        }


def masked_url(url: str) -> str:
    """A request URL as a dry run shows it: tokens masked, the signature hidden."""
    from dingpush.lowlevel import redact_url

    return re.sub(r"([?&]sign=)[^&]*", r"\1****", redact_url(url))


def plan(
    target: Target, message: Message, msg_uuid: str | None, *, split: bool = False
) -> list[DryRunRequest]:
    """The requests a send would make, planned by the library's code that sends (no I/O)."""
    if isinstance(target, RobotTarget | PoolTarget):
        return plan_robot(target, message, msg_uuid, split=split)
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        return plan_app(target, message, msg_uuid, split=split)
    from dingpush import ConfigError

    raise ConfigError(f"a dry run of {target.kind} targets is not supported by this version")


def plan_robot(
    target: RobotTarget | PoolTarget, message: Message, msg_uuid: str | None, *, split: bool
) -> list[DryRunRequest]:
    """A robot's request, or one per part of a split message (part i has ``{msgUuid}-{i}``)."""
    from dingpush.lowlevel import plan_robot_send

    robot = target.members[0] if isinstance(target, PoolTarget) else target
    planned = plan_robot_send(
        robot.webhook, message, keyword=robot.keyword, msg_uuid=msg_uuid, split=split
    )
    note = ""
    if isinstance(target, PoolTarget):
        note = (
            f"the pool sends through whichever of its {len(target.members)} robots has a free "
            f"slot; shown for {robot.name}"
        )
    return [
        DryRunRequest.shown(request, [request.note, note if index == 0 else ""])
        for index, request in enumerate(planned)
    ]


def plan_app(
    target: AppGroupTarget | AppUsersTarget | WorkNoticeTarget,
    message: Message,
    msg_uuid: str | None,
    *,
    split: bool = False,
) -> list[DryRunRequest]:
    """An app's requests: the upload of a local image or file, then one send per call (and
    per part of a split message)."""
    from dingpush.lowlevel import plan_app_send

    settings = target.app
    destination: dict[str, typing.Any]
    if isinstance(target, WorkNoticeTarget):
        destination = {
            "agent_id": target.agent_id,
            "users": target.users,
            "departments": target.departments,
            "everyone": target.everyone,
        }
    elif isinstance(target, AppGroupTarget):
        destination = {"open_conversation_id": target.open_conversation_id}
    else:
        destination = {"user_ids": target.user_ids}
    if not isinstance(target, WorkNoticeTarget):
        destination["robot_code"] = target.robot_code or settings.robot_code
    planned = plan_app_send(
        settings.app_key,
        settings.app_secret,
        message,
        api_base=settings.api_base,
        oapi_base=settings.oapi_base,
        msg_uuid=msg_uuid,
        split=split,
        **destination,
    )
    first = "the access token comes from POST /v1.0/oauth2/accessToken (or the token cache) first"
    return [
        DryRunRequest.shown(request, [first if index == 0 else "", request.note])
        for index, request in enumerate(planned)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """How ``send`` delivers: ``--split``, ``--no-wait``, ``--max-wait``, ``--retries``,
    ``--timeout``. Robots and apps share their rate budgets across processes through the
    file-backed limiter (``~/.cache/dingpush/ratelimit.sqlite3``)."""

    split: bool = False
    wait: bool = True
    max_wait: float | None = None
    retries: int | None = None
    timeout: float | None = None
    quiet: bool = False

    def open(self, state: State, target: Target) -> Sender:
        """The library client for ``target``, with the CLI's shared limiter for robots."""
        from dingpush.config import open_sender

        return open_sender(
            target,
            limiter=state.limiter(),
            retry=None if self.retries is None else self.retries + 1,
            max_wait=self.max_wait,
            timeout=self.timeout,
        )

    def send(
        self, sender: Sender, target: Target, message: Message, msg_uuid: str | None
    ) -> object:
        """One send, with the waiting and splitting options (robots, pools and apps alike)."""
        options: dict[str, typing.Any] = {"split": self.split, "wait": self.wait}
        if self.max_wait is not None:
            options["max_wait"] = self.max_wait
        return typing.cast(typing.Any, sender).send(message, msg_uuid=msg_uuid, **options)


@dataclass(frozen=True, slots=True)
class Wait:
    """What the next send to a robot (or pool) will wait for, and why."""

    seconds: float
    #: Why: the robot's configured rate, or the cool-down after DingTalk throttled it.
    reason: str


def expected_wait(state: State, target: Target) -> Wait:
    """How long the next send to a robot (or pool) would wait for a free slot; 0 for apps."""
    from dingpush.lowlevel import DEFAULT_RATE

    members = (
        [target]
        if isinstance(target, RobotTarget)
        else list(target.members)
        if isinstance(target, PoolTarget)
        else []
    )
    if not members:
        return Wait(0.0, "")
    limiter = state.limiter()
    waits = []
    for member in members:
        rate = member.rate or DEFAULT_RATE
        if limiter.cooldown_left(member.webhook.key) > 0:
            reason = "DingTalk throttled the robot, and it rests until its cool-down is over"
        else:
            reason = f"its rate is {rate} messages"
        waits.append(Wait(limiter.delay(member.webhook.key, rate), reason))
    return min(waits, key=lambda wait: wait.seconds)


def send(
    state: State, target: Target, message: Message, *, msg_uuid: str | None, delivery: Delivery
) -> Outcome:
    """Deliver ``message`` to ``target`` through the library and describe the result."""
    from dingpush.lowlevel import DEFAULT_MAX_WAIT

    with delivery.open(state, target) as sender:
        state.detail(f"sending a {message.msgtype} message to {target.name} ({target.destination})")
        wait = expected_wait(state, target)
        limit = DEFAULT_MAX_WAIT if delivery.max_wait is None else delivery.max_wait
        # Only a wait that will happen is announced: past --max-wait the send fails at once,
        # and its error says when the next slot is.
        if 1 < wait.seconds <= limit and delivery.wait and not delivery.quiet:
            state.err(
                f"waiting {wait.seconds:.0f} s for a free slot of {target.name} ({wait.reason}; "
                "the budget is shared by every dingpush process here)"
            )
        result = delivery.send(sender, target, message, msg_uuid)
    return outcome(target, message, result)


def outcome(target: Target, message: Message, result: object) -> Outcome:
    """Describe a library result; users an app could not reach make it a failure."""
    from dingpush import SendResult, UsersSendResult

    extra: dict[str, object] = {}
    if isinstance(result, SendResult):
        if result.parts:  # a split message: say it went in parts, and which
            extra["parts"] = [{"msg_uuid": part.msg_uuid} for part in result.parts]
        return Outcome(
            target.name,
            target.kind,
            message.msgtype,
            result.msg_uuid,
            result.errcode,
            result.errmsg,
            extra,
        )
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        extra = dataclasses.asdict(result)
    done = Outcome(
        target.name, target.kind, message.msgtype, str(extra.get("msg_uuid")), extra=extra
    )
    if isinstance(result, UsersSendResult):
        check_users(result, done)
    return done


class UndeliveredUsers(DingPushError):
    """DingTalk accepted the request but did not deliver to some of the users."""

    def __init__(self, message: str, *, exit_code: int, outcome: Outcome) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]
        self.outcome = outcome


def check_users(result: UsersSendResult, done: Outcome) -> None:
    """Raise when users were not reached: never report a refused message as sent."""
    refused = [*result.invalid_user_ids, *result.filtered_user_ids]
    if refused:
        raise UndeliveredUsers(
            f"delivered to {len(result.delivered_user_ids)} of {len(result.user_ids)} users; "
            f"DingTalk refused {', '.join(refused)} (unknown or filtered user ids): check the "
            "user ids (userid, not mobile numbers or names)",
            exit_code=4,
            outcome=done,
        )
    if result.flow_controlled_user_ids:
        raise UndeliveredUsers(
            f"delivered to {len(result.delivered_user_ids)} of {len(result.user_ids)} users; "
            f"DingTalk's flow control held back {', '.join(result.flow_controlled_user_ids)}: "
            "send to them again later",
            exit_code=5,
            outcome=done,
        )
