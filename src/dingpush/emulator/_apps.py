"""Enterprise apps as the emulator knows them (protocol §2–§5): credentials, people, groups.

An :class:`AppConfig` is one internal app of the emulated organisation: its AppKey/AppSecret,
AgentId and robot code, the users and departments it can reach, the groups its robot is in,
and its permissions. Records of what the apps did (uploaded media, work-notification tasks)
live here too.
"""

from __future__ import annotations

import secrets
import types
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any

from dingpush import mask

from ._config import json_tuples
from ._records import conversation_id

__all__ = [
    "ROBOT_PERMISSION",
    "AppConfig",
    "MediaRecord",
    "NoticeTask",
    "app_from_dict",
    "app_from_patch",
    "parse_app_spec",
]

#: 企业内机器人发送消息权限, required by the app-robot send APIs (protocol §3).
ROBOT_PERMISSION = "qyapi_robot_sendmsg"
#: §14: sending and recalling DINGs (企业机器人发送撤回DING消息).
DING_PERMISSION = "Premium.Ding.Write"
#: Channel names of app messages in :class:`~dingpush.emulator.Message` records.
APP_ROBOT_CHANNEL = "app-robot"
WORK_NOTICE_CHANNEL = "work-notice"


def _groups(value: Iterable[str] | Mapping[str, str]) -> Mapping[str, str]:
    """``{openConversationId: title}``; bare titles get an id derived like a webhook group's."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        raise ValueError("groups must be a list of group titles or a {id: title} mapping")
    else:
        pairs = [(conversation_id("group", str(t)), str(t)) for t in value]
    return types.MappingProxyType(dict(pairs))


def _departments(value: Mapping[Any, Iterable[str]]) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError("departments must map a department id to its members' userIds")
    result: dict[str, tuple[str, ...]] = {}
    for dept, members in value.items():
        if isinstance(members, str):
            raise ValueError(f"department {dept!r}: members must be a list of userIds")
        result[str(dept)] = tuple(str(m) for m in members)
    return types.MappingProxyType(result)


def _default_agent_id(app_key: str) -> int:
    # A stable, realistic-looking AgentId (DingTalk's are 9-10 digit numbers).
    return 1_000_000_000 + zlib.crc32(app_key.encode()) % 1_000_000_000


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One enterprise internal app (protocol §2–§5).

    Args:
        name: how tests and the control API refer to the app.
        app_key: its AppKey (Client ID); ``robot_code`` defaults to it (§3).
        app_secret: its AppSecret (Client Secret); never shown by the control API.
        agent_id: its AgentId for work notifications (derived from the key by default).
        users: userIds in the organisation the app can reach.
        departments: ``{dept_id: [userId, …]}``; their members are users too.
        groups: the groups its robot is in: titles (ids derived as for webhook robots, so a
            webhook robot of the same group title posts into the same conversation) or
            ``{openConversationId: title}``.
        permissions: granted API permissions; without ``qyapi_robot_sendmsg`` the robot send,
            recall and read-status APIs answer 403 (§3.4, §11), without ``Premium.Ding.Write``
            the DING APIs (§14).
        callback_url: the app robot's receiving mode: empty for Stream mode (§13, the
            default), or the URL of HTTP mode, which gets signed callbacks (§12).
        paid_ding: whether the organisation bought the SMS/phone DING quota (§14); without
            it ``remindType`` 2 and 3 answer 400 ``ding.serverquota.insufficient``.
        token_lifetime: seconds an access token lives (7200 on DingTalk, §2.4).
        flow_controlled_users: userIds that batchSend always reports as flow-controlled (§3.2).
        notice_daily_cap: work notifications a user may get from the app a day (500, §4.1).
        api_qps: calls a second each API of the app may take (20 for a standard-edition
            organisation, §7); more are refused with oapi 90018 or v1.0 HTTP 403
            ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`` until the second has passed.
            The token endpoints are not counted. 0: no limit.
        oto_user_limit: one-to-one messages a user may get from the app's robot in
            ``oto_user_window`` seconds; more are answered in ``flowControlledStaffIdList``
            and not delivered (§3.2; DingTalk does not document the threshold). 0: no limit.
        oto_user_window: the window of ``oto_user_limit``, in seconds.
        notice_recipients_per_minute: work-notification recipients the app may reach in any
            60 seconds (5,000, §4.1); the excess is dropped silently and ``getsendresult``
            lists it as forbidden with code 143103.
    """

    name: str
    app_key: str
    app_secret: str = field(repr=False)
    _: KW_ONLY
    agent_id: int = 0
    robot_code: str = ""
    users: tuple[str, ...] = ()
    departments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)
    permissions: tuple[str, ...] = (ROBOT_PERMISSION, DING_PERMISSION)
    paid_ding: bool = True
    callback_url: str = ""
    token_lifetime: float = 7200.0
    flow_controlled_users: tuple[str, ...] = ()
    notice_daily_cap: int = 500
    api_qps: int = 20
    oto_user_limit: int = 0
    oto_user_window: float = 60.0
    notice_recipients_per_minute: int = 5000

    def __post_init__(self) -> None:
        for key in ("name", "app_key", "app_secret"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"app {self.name!r}: {key} must be a non-empty string")
        if isinstance(self.users, str) or isinstance(self.flow_controlled_users, str):
            raise ValueError(f"app {self.name!r}: users must be a list of userIds")
        object.__setattr__(self, "users", tuple(str(u) for u in self.users))
        object.__setattr__(self, "flow_controlled_users", tuple(self.flow_controlled_users))
        object.__setattr__(self, "permissions", tuple(self.permissions))
        object.__setattr__(self, "departments", _departments(self.departments))
        object.__setattr__(self, "groups", _groups(self.groups))
        if not self.robot_code:
            object.__setattr__(self, "robot_code", self.app_key)
        if not self.agent_id:
            object.__setattr__(self, "agent_id", _default_agent_id(self.app_key))
        if not isinstance(self.agent_id, int) or self.agent_id < 1:
            raise ValueError(f"app {self.name!r}: agent_id must be a positive integer")
        if not self.token_lifetime > 0:
            raise ValueError(f"app {self.name!r}: token_lifetime must be > 0 seconds")
        for key in (
            "notice_daily_cap",
            "api_qps",
            "oto_user_limit",
            "notice_recipients_per_minute",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"app {self.name!r}: {key} must be an integer >= 0")
        if not self.oto_user_window > 0:
            raise ValueError(f"app {self.name!r}: oto_user_window must be > 0 seconds")

    def __repr__(self) -> str:
        return (
            f"AppConfig(name={self.name!r}, app_key={self.app_key!r}, agent_id={self.agent_id}, "
            f"users={len(self.known_users())}, groups={len(self.groups)})"
        )

    def known_users(self) -> tuple[str, ...]:
        """Every userId the app can reach: ``users`` and the departments' members."""
        members = (m for dept in self.departments.values() for m in dept)
        return tuple(dict.fromkeys((*self.users, *members)))

    @property
    def can_send_as_robot(self) -> bool:
        return ROBOT_PERMISSION in self.permissions

    def to_dict(self) -> dict[str, Any]:
        """The control API's JSON: the AppKey shown, the AppSecret never."""
        return {
            "name": self.name,
            "app_key": self.app_key,
            "app_secret": mask(self.app_secret),
            "agent_id": self.agent_id,
            "robot_code": self.robot_code,
            "users": list(self.users),
            "departments": {k: list(v) for k, v in self.departments.items()},
            "groups": dict(self.groups),
            "permissions": list(self.permissions),
            "paid_ding": self.paid_ding,
            "callback_url": self.callback_url,
            "token_lifetime": self.token_lifetime,
            "flow_controlled_users": list(self.flow_controlled_users),
            "notice_daily_cap": self.notice_daily_cap,
            "api_qps": self.api_qps,
            "oto_user_limit": self.oto_user_limit,
            "oto_user_window": self.oto_user_window,
            "notice_recipients_per_minute": self.notice_recipients_per_minute,
        }


#: The fields JSON gives as lists and an :class:`AppConfig` holds as tuples.
_LIST_FIELDS = ("users", "permissions", "flow_controlled_users")


def app_from_dict(data: Mapping[str, Any]) -> AppConfig:
    """Build an :class:`AppConfig` from JSON, naming an unknown or missing key."""
    known = {f.name for f in fields(AppConfig)} - {"_"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown app field(s): {', '.join(unknown)}")
    for key in ("name", "app_key", "app_secret"):
        if key not in data:
            raise ValueError(f"app field {key!r} is required")
    try:
        return AppConfig(**json_tuples(dict(data), _LIST_FIELDS))
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def app_from_patch(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a PATCH body's field names (the name cannot change) and list types."""
    allowed = {f.name for f in fields(AppConfig)} - {"name"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown or unchangeable app field(s): {', '.join(unknown)}")
    return json_tuples(dict(data), _LIST_FIELDS)


def parse_app_spec(spec: str, **settings: Any) -> AppConfig:
    """Parse ``NAME[:APPKEY[:APPSECRET]]``; missing credentials are generated like real ones."""
    name, _, rest = spec.partition(":")
    app_key, _, app_secret = rest.partition(":")
    return AppConfig(
        name,
        app_key or "ding" + secrets.token_hex(8),
        app_secret or secrets.token_urlsafe(48),
        **settings,
    )


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """A file uploaded through ``media/upload`` (§5), kept so views can show it."""

    media_id: str
    app: str
    type: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        """Metadata for the control API (``GET /_emulator/media/{id}`` serves the bytes)."""
        return {
            "media_id": self.media_id,
            "app": self.app,
            "type": self.type,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class NoticeTask:
    """One ``asyncsend_v2`` task and who it reached (§4.1, §4.3)."""

    task_id: int
    app: str
    agent_id: int
    time: float
    msgtype: str
    invalid_user_ids: tuple[str, ...] = ()
    invalid_dept_ids: tuple[str, ...] = ()
    delivered: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    #: ``(userid, code)``: 143105 daily cap, 143106 same content today.
    forbidden: tuple[tuple[str, str], ...] = ()

    def send_result(self) -> dict[str, Any]:
        """The ``send_result`` object of ``getsendresult`` (§4.3)."""
        forbidden_users = tuple(dict.fromkeys(user for user, _ in self.forbidden))
        return {
            "invalid_user_id_list": list(self.invalid_user_ids),
            "forbidden_user_id_list": list(forbidden_users),
            "failed_user_id_list": [],
            "read_user_id_list": [u for u in self.delivered if u in self.read],
            "unread_user_id_list": [u for u in self.delivered if u not in self.read],
            "invalid_dept_id_list": list(self.invalid_dept_ids),
            "forbidden_list": [
                {"code": code, "count": 1, "userid": user} for user, code in self.forbidden
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "app": self.app,
            "agent_id": self.agent_id,
            "time": self.time,
            "msgtype": self.msgtype,
            "send_result": self.send_result(),
        }
