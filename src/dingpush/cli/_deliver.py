"""Sending (through the library's clients, the one delivery path) and describing a dry run."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from functools import partial

from dingpush._errors import DingPushError
from dingpush._messages._models import Message
from dingpush._wire import JSON_HEADERS
from dingpush.config import (
    AppGroupTarget,
    AppUsersTarget,
    PoolTarget,
    RobotTarget,
    WorkNoticeTarget,
)

if typing.TYPE_CHECKING:
    from dingpush import UsersSendResult
    from dingpush._apps._core import HttpRequest
    from dingpush.config import Sender, Target

    from ._state import State


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One HTTP request a send would make, with its credentials masked in ``url``.

    ``body`` is the exact JSON body; an upload's multipart body is described by ``summary``.
    """

    method: str
    url: str
    headers: typing.Mapping[str, str]
    body: bytes | None
    note: str = ""
    summary: str = ""

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
    """A signed webhook URL as a dry run shows it: token masked, the signature hidden."""
    from dingpush._masking import redact_url

    return re.sub(r"([?&]sign=)[^&]*", r"\1****", redact_url(url))


#: What a dry run shows in place of values it does not have: they exist only after a request.
ACCESS_TOKEN = "ACCESS_TOKEN"
MEDIA_ID = "MEDIA_ID_FROM_THE_UPLOAD"


def plan(
    target: Target, message: Message, msg_uuid: str | None, *, split: bool = False
) -> list[PlannedRequest]:
    """The requests a send would make, built by the same code that sends (no I/O)."""
    if isinstance(target, RobotTarget | PoolTarget):
        return plan_robot(target, message, msg_uuid, split=split)
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        return plan_app(target, message, msg_uuid, split=split)
    from dingpush._errors import ConfigError

    raise ConfigError(f"a dry run of {target.kind} targets is not supported by this version")


def plan_robot(
    target: RobotTarget | PoolTarget, message: Message, msg_uuid: str | None, *, split: bool
) -> list[PlannedRequest]:
    """A robot's request, or one per part of a split message (part i has ``{msgUuid}-{i}``)."""
    import uuid

    from dingpush._robot._core import RobotCore

    robot = target.members[0] if isinstance(target, PoolTarget) else target
    core = RobotCore(robot.webhook, keyword=robot.keyword)
    note = ""
    if isinstance(target, PoolTarget):
        note = (
            f"the pool sends through whichever of its {len(target.members)} robots has a free "
            f"slot; shown for {robot.name}"
        )
    parts = core.split(core.coerce(message), split)
    if len(parts) == 1:
        prepared = core.prepare(parts[0], msg_uuid)
        return [
            PlannedRequest("POST", masked_url(core.url()), JSON_HEADERS, prepared.content, note)
        ]
    base = msg_uuid or str(uuid.uuid4())
    planned = []
    for index, part in enumerate(parts, 1):
        prepared = core.prepare(part, f"{base}-{index}")
        part_note = f"part {index} of {len(parts)}" + (f"; {note}" if note and index == 1 else "")
        planned.append(
            PlannedRequest(
                "POST", masked_url(core.url()), JSON_HEADERS, prepared.content, part_note
            )
        )
    return planned


Build = typing.Callable[["Message"], "HttpRequest"]


def plan_app(
    target: AppGroupTarget | AppUsersTarget | WorkNoticeTarget,
    message: Message,
    msg_uuid: str | None,
    *,
    split: bool = False,
) -> list[PlannedRequest]:
    """An app's requests: the upload of a local image or file, then one send per call (and
    per part of a split message), built by the app's own sans-I/O core."""
    from dingpush._apps._core import AppCore, upload_source
    from dingpush._apps._delivery import prepare_parts
    from dingpush._masking import redact_url

    settings = target.app
    core = AppCore(
        settings.app_key,
        settings.app_secret,
        api_base=settings.api_base,
        oapi_base=settings.oapi_base,
        token_cache=None,
    )
    spec, builds = _app_calls(core, target)
    _, parts = prepare_parts(spec, message, msg_uuid, split)
    planned: list[PlannedRequest] = []
    for index, part in enumerate(parts, 1):
        resolved = part.message
        if getattr(resolved, "needs_upload", False):
            data, kind, filename, _ = upload_source(typing.cast(typing.Any, resolved))
            upload = core.upload_request(data, kind, filename, ACCESS_TOKEN)
            summary = f"multipart: type={kind}, media={filename} ({len(data):,} bytes)"
            content_type = {"Content-Type": "multipart/form-data; boundary=…"}
            url = redact_url(upload.url)
            planned.append(PlannedRequest(upload.method, url, content_type, None, "", summary))
            resolved = typing.cast(typing.Any, resolved).with_media_id(MEDIA_ID)
        note = f"part {index} of {len(parts)}" if len(parts) > 1 else ""
        for build in builds:
            request = build(resolved)
            # The token is the ACCESS_TOKEN placeholder, shown as such in the URL and header
            # alike (a template, which the redactor leaves; a real token it would mask).
            headers = dict(request.headers)
            url = redact_url(request.url)
            planned.append(PlannedRequest(request.method, url, headers, request.content, note))
    first = "the access token comes from POST /v1.0/oauth2/accessToken (or the token cache) first"
    planned[0] = dataclasses.replace(
        planned[0], note="; ".join(filter(None, [first, planned[0].note]))
    )
    return planned


def _app_calls(
    core: typing.Any, target: AppGroupTarget | AppUsersTarget | WorkNoticeTarget
) -> tuple[typing.Any, list[Build]]:
    """The channel's spec, and a request builder per call one message makes."""
    from dingpush._apps._core import GroupSpec, NoticeSpec, UsersSpec

    if isinstance(target, WorkNoticeTarget):
        notice = NoticeSpec(
            core, target.agent_id, target.users, target.departments, target.everyone
        )
        calls: list[Build] = [
            partial(notice.request, call=call, token=ACCESS_TOKEN) for call in notice.calls
        ]
        return notice, calls
    robot_code = target.robot_code or target.app.robot_code
    if isinstance(target, AppGroupTarget):
        group = GroupSpec(core, target.open_conversation_id, robot_code, None)
        return group, [partial(group.request, token=ACCESS_TOKEN)]
    users = UsersSpec(core, target.user_ids, robot_code)
    chunks: list[Build] = [
        partial(users.request, chunk=chunk, token=ACCESS_TOKEN) for chunk in users.chunks
    ]
    return users, chunks


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


def expected_wait(state: State, target: Target) -> float:
    """Seconds the next send to a robot (or pool) would wait for a free slot; 0 for apps."""
    from dingpush._engine._limiter import DEFAULT_RATE

    members = (
        [target]
        if isinstance(target, RobotTarget)
        else list(target.members)
        if isinstance(target, PoolTarget)
        else []
    )
    if not members:
        return 0.0
    limiter = state.limiter()
    return min(limiter.delay(m.webhook.key, m.rate or DEFAULT_RATE) for m in members)


def send(
    state: State, target: Target, message: Message, *, msg_uuid: str | None, delivery: Delivery
) -> Outcome:
    """Deliver ``message`` to ``target`` through the library and describe the result."""
    with delivery.open(state, target) as sender:
        state.detail(f"sending a {message.msgtype} message to {target.name} ({target.destination})")
        wait = expected_wait(state, target)
        if wait > 1 and delivery.wait and not delivery.quiet:
            state.err(
                f"waiting {wait:.0f} s for a free slot of {target.name} (DingTalk allows a robot "
                "20 messages a minute; the budget is shared by every dingpush process here)"
            )
        result = delivery.send(sender, target, message, msg_uuid)
    return outcome(target, message, result)


def outcome(target: Target, message: Message, result: object) -> Outcome:
    """Describe a library result; users an app could not reach make it a failure."""
    from dingpush import SendResult, UsersSendResult

    extra: dict[str, object] = {}
    if isinstance(result, SendResult):
        return Outcome(
            target.name,
            target.kind,
            message.msgtype,
            result.msg_uuid,
            result.errcode,
            result.errmsg,
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
