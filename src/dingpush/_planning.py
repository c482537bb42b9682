"""Planning a send without sending it: the requests a client's ``send`` would make.

httpx's ``build_request``, for dingpush: the clients' own sans-I/O cores build the requests —
the same shorthand, keyword, split, checks, signature and bodies as a ``send`` — and nothing is
sent, no HTTP client is made and httpx is not imported. ``dingpush send --dry-run`` prints them.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from dingpush._errors import ConfigError
from dingpush._robot._core import RobotCore
from dingpush._wire import JSON_HEADERS

if typing.TYPE_CHECKING:
    # The app family loads only for an app's plan: a robot's dry run stays light.
    from dingpush._apps._core import GroupSpec, HttpRequest, NoticeSpec, UsersSpec
    from dingpush._engine._clock import Clock
    from dingpush._engine._split import Splitter
    from dingpush._messages._models import Message
    from dingpush._robot._target import WebhookTarget

__all__ = [
    "ACCESS_TOKEN_PLACEHOLDER",
    "MEDIA_ID_PLACEHOLDER",
    "PlannedRequest",
    "plan_app_send",
    "plan_robot_send",
]

#: What a plan shows in place of an app's access token: it exists only after a request.
ACCESS_TOKEN_PLACEHOLDER = "ACCESS_TOKEN"
#: What a plan shows in place of the ``media_id`` of a local file, known after its upload.
MEDIA_ID_PLACEHOLDER = "MEDIA_ID_FROM_THE_UPLOAD"


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One HTTP request a ``send`` would make, exactly as it would go out.

    ``url`` and ``headers`` carry the credentials the request needs (a webhook's token and
    signature; an app's access token, or :data:`ACCESS_TOKEN_PLACEHOLDER`), so the repr leaves
    them out; mask them before showing them (``dingpush.lowlevel.redact_url``).
    """

    method: str
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    content: bytes = field(repr=False)
    #: The API called: ``robot/send``, ``groupMessages/send``, ``oToMessages/batchSend``,
    #: ``asyncsend_v2`` or ``media/upload``.
    endpoint: str
    #: ``part 2 of 3`` for a part of a split message, else empty.
    note: str = ""
    #: A body that is not JSON (an upload's multipart form), in words.
    summary: str = ""

    @property
    def size(self) -> int:
        """Bytes of the body."""
        return len(self.content)

    def json(self) -> typing.Any:
        """The JSON body, decoded; ``None`` for a multipart upload."""
        return None if self.summary else json.loads(self.content)


def _note(index: int, total: int) -> str:
    return f"part {index} of {total}" if total > 1 else ""


def plan_robot_send(
    target: str | WebhookTarget,
    message: Message | str,
    *,
    secret: str | None = None,
    keyword: str | None = None,
    base_url: str | None = None,
    clock: Clock | None = None,
    msg_uuid: str | None = None,
    split: bool | Splitter = False,
) -> list[PlannedRequest]:
    """The requests ``Robot(target, ...).send(message, ...)`` would make, in order.

    One request, or one per part of a split message (part *i* carries ``{msgUuid}-{i}``); the
    URL is signed with the clock's time, as a send signs it. Raises what the send would raise
    before any request (``UnsupportedMessage``, ``MessageTooLarge``, ``InvalidMessage``).
    """
    core = RobotCore(target, secret=secret, keyword=keyword, base_url=base_url, clock=clock)
    prepared = core.plan(message, msg_uuid, split)
    return [
        PlannedRequest(
            "POST",
            core.url(),
            dict(JSON_HEADERS),
            part.content,
            "robot/send",
            _note(index, len(prepared)),
        )
        for index, part in enumerate(prepared, 1)
    ]


Spec: typing.TypeAlias = "GroupSpec | UsersSpec | NoticeSpec"


def plan_app_send(
    app_key: str,
    app_secret: str,
    message: Message | str,
    *,
    open_conversation_id: str | None = None,
    user_ids: str | Iterable[str] | None = None,
    agent_id: int | str | None = None,
    users: str | Iterable[str] = (),
    departments: str | int | Iterable[str | int] = (),
    everyone: bool = False,
    robot_code: str | None = None,
    cool_app_code: str | None = None,
    api_base: str | None = None,
    oapi_base: str | None = None,
    access_token: str = ACCESS_TOKEN_PLACEHOLDER,
    msg_uuid: str | None = None,
    split: bool | Splitter = False,
) -> list[PlannedRequest]:
    """The requests an app's ``send`` would make after it has its access token, in order.

    Give one destination, as to ``App``: ``open_conversation_id`` (``app.group(...)``),
    ``user_ids`` (``app.users(...)``) or ``agent_id`` with ``users``/``departments``/
    ``everyone`` (``app.notify(...)``). A local image or file adds its ``media/upload`` first
    (the send then shows :data:`MEDIA_ID_PLACEHOLDER`); users and recipients are split into
    the calls DingTalk allows, and a split message makes those calls for each part.
    """
    from dingpush._apps._core import (
        AppCore,
        GroupSpec,
        NoticeSpec,
        UsersSpec,
        needs_upload,
        upload_source,
    )
    from dingpush._apps._delivery import prepare_parts

    core = AppCore(app_key, app_secret, api_base=api_base, oapi_base=oapi_base)
    chosen = [open_conversation_id is not None, user_ids is not None, agent_id is not None]
    if chosen.count(True) != 1:
        raise ConfigError(
            "give one destination: open_conversation_id= (a group), user_ids= (one-to-one "
            "chats) or agent_id= (a work notification)"
        )
    spec: Spec
    if open_conversation_id is not None:
        spec = GroupSpec(core, open_conversation_id, robot_code, cool_app_code)
    elif user_ids is not None:
        spec = UsersSpec(core, user_ids, robot_code)
    else:
        spec = NoticeSpec(core, typing.cast(int | str, agent_id), users, departments, everyone)
    _, parts = prepare_parts(spec, message, msg_uuid, split)
    planned: list[PlannedRequest] = []
    for index, part in enumerate(parts, 1):
        resolved = part.message
        if needs_upload(resolved):
            data, kind, filename, _ = upload_source(resolved)
            upload = core.upload_request(data, kind, filename, access_token)
            summary = f"multipart: type={kind}, media={filename} ({len(data):,} bytes)"
            planned.append(_planned(upload, "", summary))
            resolved = resolved.with_media_id(MEDIA_ID_PLACEHOLDER)
        for build in _calls(spec):
            request = build(resolved, access_token)
            planned.append(_planned(request, _note(index, len(parts))))
    return planned


def _planned(request: HttpRequest, note: str, summary: str = "") -> PlannedRequest:
    return PlannedRequest(
        request.method, request.url, request.headers, request.content, request.what, note, summary
    )


def _calls(spec: Spec) -> list[Callable[[Message, str], HttpRequest]]:
    """A request builder per call one message makes: a group one, a chunk of 20 users, or a
    notice call of up to 100 users and 20 departments."""
    from dingpush._apps._core import GroupSpec, UsersSpec

    if isinstance(spec, GroupSpec):
        return [spec.request]
    if isinstance(spec, UsersSpec):
        return [partial(_chunk, spec, chunk) for chunk in spec.chunks]
    return [partial(_notice_call, spec, call) for call in spec.calls]


def _chunk(spec: UsersSpec, chunk: tuple[str, ...], message: Message, token: str) -> HttpRequest:
    return spec.request(message, chunk, token)


def _notice_call(
    spec: NoticeSpec, call: tuple[tuple[str, ...], tuple[str, ...]], message: Message, token: str
) -> HttpRequest:
    return spec.request(message, call, token)
