"""Robot and emulator configuration: what a robot is, and how the protocol's unknowns are settled.

Every option in :class:`EmulatorOptions` answers one of the open questions of
``dingtalk-protocol.md`` §9; the comment above each field cites the section it settles, so a
test can pin the behaviour it relies on instead of inheriting today's default.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, Literal, Protocol, get_args

from dingpush import Rate, mask
from dingpush.lowlevel import SIGNATURE_WINDOW_MS

__all__ = [
    "DEFAULT_KEYWORD_FIELDS",
    "Clock",
    "EmulatorOptions",
    "RobotConfig",
    "RobotStatus",
    "json_tuples",
    "parse_rate",
    "parse_robot_spec",
    "robot_from_dict",
    "split_robot_spec",
]

RobotStatus = Literal["active", "disabled", "not_in_group", "dissolved"]
RateWindowKind = Literal["sliding", "fixed"]
ErrmsgStyle = Literal["english", "description"]
MediaLimits = Literal["current", "legacy"]
WrongMethod = Literal["errcode", "http405"]

#: Every human-visible text of the documented message types (§1.3); ``[]`` walks a list.
DEFAULT_KEYWORD_FIELDS: tuple[str, ...] = (
    "text.content",
    "markdown.title",
    "markdown.text",
    "link.title",
    "link.text",
    "actionCard.title",
    "actionCard.text",
    "actionCard.singleTitle",
    "actionCard.btns[].title",
    "feedCard.links[].title",
)

_MAX_KEYWORDS = 10  # §1.2: "最多可以设置10个关键词"
_FIELD_PATH_RE = re.compile(r"[A-Za-z_]\w*(\[\])?(\.[A-Za-z_]\w*(\[\])?)*")
#: How ``--robot`` describes a robot.
ROBOT_SPEC = "NAME[:TOKEN[:SECRET[:KEYWORD,…]]]"


class Clock(Protocol):
    """Anything with a wall-clock ``time()`` in seconds, such as the ``time`` module."""

    def time(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RobotConfig:
    """One custom group robot as its group owner configured it (protocol §1.1, §1.2, §1.5).

    ``secret`` enables 加签, ``keywords`` and ``ip_allowlist`` the other two security settings.
    ``status`` other than ``"active"`` makes every send fail with 400102 (disabled), 400106
    (robot no longer in the group) or 400013 (group dissolved). ``accept_image`` lets the
    robot take the undocumented ``image`` msgtype (§1.3, §9.7: DingTalk's support matrix says
    custom robots cannot send images, so it is refused with 400105 by default).
    """

    name: str
    token: str = field(repr=False)
    _: KW_ONLY
    secret: str | None = field(default=None, repr=False)
    keywords: tuple[str, ...] = ()
    ip_allowlist: tuple[str, ...] = ()
    group: str = ""
    rate_limit: int = 20
    rate_window: float = 60.0
    lockout: float = 600.0
    status: RobotStatus = "active"
    accept_image: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("robot name must be a non-empty string")
        if not self.token or not isinstance(self.token, str):
            raise ValueError(f"robot {self.name!r}: token must be a non-empty string")
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise ValueError(f"robot {self.name!r}: secret must be a non-empty string or None")
        # Tuples are normalised here so JSON lists and generator arguments compare equal.
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "ip_allowlist", tuple(self.ip_allowlist))
        _check_keywords(self.name, self.keywords)
        for entry in self.ip_allowlist:
            _check_ip_entry(self.name, entry)
        if not self.group:
            object.__setattr__(self, "group", f"{self.name} group")
        if not isinstance(self.rate_limit, int) or self.rate_limit < 1:
            raise ValueError(f"robot {self.name!r}: rate_limit must be an integer >= 1")
        if not self.rate_window > 0:
            raise ValueError(f"robot {self.name!r}: rate_window must be > 0 seconds")
        if not self.lockout >= 0:
            raise ValueError(f"robot {self.name!r}: lockout must be >= 0 seconds")
        if self.status not in get_args(RobotStatus):
            raise ValueError(f"robot {self.name!r}: status must be one of {get_args(RobotStatus)}")
        if not isinstance(self.accept_image, bool):
            raise ValueError(f"robot {self.name!r}: accept_image must be true or false")

    def __repr__(self) -> str:
        return (
            f"RobotConfig(name={self.name!r}, token={mask(self.token)!r}, "
            f"signed={self.secret is not None}, keywords={self.keywords!r}, "
            f"ip_allowlist={self.ip_allowlist!r}, group={self.group!r}, "
            f"rate={self.rate_limit}/{self.rate_window:g}s, status={self.status!r})"
        )

    def webhook_url(self, base_url: str) -> str:
        """Return this robot's full webhook URL on an emulator served at ``base_url``."""
        token = urllib.parse.quote(self.token, safe="")
        return f"{base_url.rstrip('/')}/robot/send?access_token={token}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form shown by the control API: token masked, secret never shown."""
        return {
            "name": self.name,
            "token": mask(self.token),
            "signed": self.secret is not None,
            "keywords": list(self.keywords),
            "ip_allowlist": list(self.ip_allowlist),
            "group": self.group,
            "rate_limit": self.rate_limit,
            "rate_window": self.rate_window,
            "lockout": self.lockout,
            "status": self.status,
            "accept_image": self.accept_image,
        }


def _check_keywords(name: str, keywords: tuple[str, ...]) -> None:
    if len(keywords) > _MAX_KEYWORDS:
        raise ValueError(f"robot {name!r}: at most {_MAX_KEYWORDS} keywords, got {len(keywords)}")
    for keyword in keywords:
        if not isinstance(keyword, str) or not keyword.strip():
            raise ValueError(f"robot {name!r}: keywords must be non-empty strings")


def _check_ip_entry(name: str, entry: str) -> None:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"robot {name!r}: {entry!r} is not an IPv4 address or CIDR") from exc
    if network.version != 4:
        # §1.2: the robot security page accepts IPv4 addresses and ranges only.
        raise ValueError(f"robot {name!r}: {entry!r} is IPv6; DingTalk allow-lists are IPv4 only")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorOptions:
    """How the emulator settles the protocol's uncertain points (``dingtalk-protocol.md`` §9).

    The defaults follow what users observe on the live service; the alternatives follow the
    official documentation where the two disagree.
    """

    #: §1.6/§9.1: the docs list 410100 (发送速度太快而限流); users observe 130101
    #: ``send too fast, exceed 20 times per minute`` (nightingale#369, hippo4j#217).
    rate_limit_errcode: Literal[130101, 410100] = 130101
    #: §1.5/§9.1: the docs say "20 per minute" without saying whether the minute slides.
    rate_window_kind: RateWindowKind = "sliding"
    #: §1.6/§9.2: the docs list 400101 (access_token不存在); users observe 300001
    #: ``token is not exist`` (and 300005 for external groups, timonwong#226).
    unknown_token_errcode: Literal[300001, 300005, 400101] = 300001
    #: §1.5/§9.3: 20,000 bytes of request body, errcode 460101 (two user reports).
    body_limit: int = 20_000
    #: §1.2: the timestamp must be within one hour of DingTalk's clock.
    signature_window_ms: int = SIGNATURE_WINDOW_MS
    #: §9.5: whether a skew of exactly ``signature_window_ms`` still passes.
    signature_window_inclusive: bool = True
    #: §9.5: whether a timestamp ahead of the server clock (within the window) passes.
    accept_future_timestamps: bool = True
    #: §9.5: whether a raw ``+`` in ``sign``, which query decoding turns into a space, passes.
    plus_in_sign_as_space_ok: bool = False
    #: §9.5: whether ``timestamp``/``sign`` on a robot without 加签 are ignored (else 310000).
    ignore_sign_params_when_unsigned: bool = True
    #: §9.6: whether unknown top-level body keys (``agentid``, ``touser``…) are refused.
    reject_unknown_fields: bool = False
    #: §1.2/§1.6: older English errmsgs (``keywords not in content``) or the newer
    #: ``description:…;solution:…;`` texts. Clients must branch on errcode only.
    errmsg_style: ErrmsgStyle = "english"
    #: §9.4: the message fields searched for keywords, as dotted paths (``[]`` walks a list).
    keyword_fields: tuple[str, ...] = DEFAULT_KEYWORD_FIELDS
    #: Take the client IP from ``X-Forwarded-For`` (tests over ``httpx.ASGITransport``, or an
    #: emulator behind a proxy) instead of the socket peer.
    trust_forwarded_for: bool = False
    #: §3.2/§9.8: users per ``oToMessages/batchSend`` call: the page says 20, its own error
    #: table ``invalidParameter.userIds.overMax`` "超过最大限制100".
    oto_user_cap: int = 20
    #: §5/§9.9: media size limits: the current upload page (20 MB image/video/file, 2 MB
    #: voice) or the older global error table (1 MB image, 10 MB file, 2 MB voice).
    media_limits: MediaLimits = "current"
    #: §2.1/§9.10: the errcode of ``/gettoken`` for a bad appkey/appsecret; 40089
    #: (不合法的corpId或corpSecret) is observed with corp credentials only.
    gettoken_bad_credentials_errcode: int = 40089
    #: §3.1/§9.11: whether ``msgParam`` may be a JSON object rather than a JSON string (the
    #: docs type it as a string; whether DingTalk also takes an object is unconfirmed).
    msg_param_object_ok: bool = False
    #: §4.2/§9.12: seconds a work-notification task can still be queried: 24 hours (the same
    #: page also says 7 days).
    notice_query_window: float = 86_400.0
    #: §1.3 [C1]: a message @-mentions at most 50 people (atMobiles, atUserIds and the legacy
    #: atDingtalkIds together). What DingTalk does beyond is not documented, so the message is
    #: accepted with the first ``at_limit`` mentions and the request log records a finding.
    #: 0: no cap.
    at_limit: int = 50
    #: A request with another method than the endpoint's (GET on ``/robot/send``, POST on
    #: ``/gettoken``): ``"errcode"`` answers like every oapi error, HTTP 200 with the global
    #: error table's 43002 需要POST请求 / 43001 需要GET请求 (§1.6, and the table under Sources);
    #: ``"http405"`` a bare HTTP 405. The live answer is not observed [U].
    wrong_method: WrongMethod = "errcode"
    #: §11.2: seconds a one-to-one app-robot message can be recalled (24 h); §11.3/§11.4:
    #: read status is also asked within it ("assume 24 h").
    oto_recall_window: float = 86_400.0
    #: §11.1 [U]: DingTalk states no recall time limit for group messages; seconds, or None.
    group_recall_window: float | None = None
    #: §11 [U]: an unknown key in a recall is listed in ``failedResult`` as ``SYSTEM_ERROR``
    #: (True) or refused with 400 ``invalid.processQueryKey`` (False).
    unknown_key_as_failed: bool = False
    #: The chat view's people read every app-robot message and DING this many seconds after
    #: it was sent (None: only when told to, per user, in the chat view or the control API).
    auto_read_after: float | None = None
    #: §13.3: seconds after which an unacked Stream frame is sent again, same messageId
    #: ("about 60 s", Node SDK comment and a duplicate report).
    stream_redelivery_after: float = 60.0
    #: §13.1/§13.2: seconds between the gateway's SYSTEM ``ping`` frames [U: SDKs ping each 60 s].
    stream_ping_interval: float = 60.0
    #: §13.4 [U]: seconds a ``connections/open`` ticket can be used (once).
    stream_ticket_lifetime: float = 90.0
    #: §12.4: seconds a ``sessionWebhook`` lives: 90 minutes in all three official samples (one
    #: user claims about 30 s).
    session_webhook_lifetime: float = 5_400.0
    #: §12.3 [U]: seconds the emulator waits for an HTTP callback's answer (the event-push
    #: HTTP mode requires 2,500 ms).
    callback_timeout: float = 2.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyword_fields", tuple(self.keyword_fields))
        if self.rate_limit_errcode not in (130101, 410100):
            raise ValueError("rate_limit_errcode must be 130101 or 410100")
        if self.unknown_token_errcode not in (300001, 300005, 400101):
            raise ValueError("unknown_token_errcode must be 300001, 300005 or 400101")
        if self.rate_window_kind not in get_args(RateWindowKind):
            raise ValueError("rate_window_kind must be 'sliding' or 'fixed'")
        if self.errmsg_style not in get_args(ErrmsgStyle):
            raise ValueError("errmsg_style must be 'english' or 'description'")
        if not isinstance(self.body_limit, int) or self.body_limit < 1:
            raise ValueError("body_limit must be a positive number of bytes")
        if not isinstance(self.signature_window_ms, int) or self.signature_window_ms < 0:
            raise ValueError("signature_window_ms must be a non-negative integer")
        if not isinstance(self.oto_user_cap, int) or self.oto_user_cap < 1:
            raise ValueError("oto_user_cap must be a positive number of users")
        if self.media_limits not in get_args(MediaLimits):
            raise ValueError("media_limits must be 'current' or 'legacy'")
        if not self.notice_query_window > 0:
            raise ValueError("notice_query_window must be > 0 seconds")
        if (
            not isinstance(self.at_limit, int)
            or isinstance(self.at_limit, bool)
            or self.at_limit < 0
        ):
            raise ValueError("at_limit must be a number of people >= 0 (0: no cap)")
        if self.wrong_method not in get_args(WrongMethod):
            raise ValueError("wrong_method must be 'errcode' or 'http405'")
        for path in self.keyword_fields:
            if not isinstance(path, str) or not _FIELD_PATH_RE.fullmatch(path):
                raise ValueError(f"keyword field {path!r} is not a dotted path like 'link.title'")

    def to_dict(self) -> dict[str, Any]:
        """Return the options as JSON-ready data."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["keyword_fields"] = list(self.keyword_fields)
        return data


def robot_from_dict(data: Mapping[str, Any]) -> RobotConfig:
    """Build a :class:`RobotConfig` from JSON data, naming the offending key on error."""
    known = {f.name for f in fields(RobotConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown robot field(s): {', '.join(unknown)}")
    for key in ("name", "token"):
        if key not in data:
            raise ValueError(f"robot field {key!r} is required")
    values = dict(data)
    for key in ("keywords", "ip_allowlist"):
        if key in values:
            values[key] = _string_tuple(key, values[key])
    try:
        return RobotConfig(**values)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def options_from_dict(
    data: Mapping[str, Any], base: EmulatorOptions | None = None
) -> EmulatorOptions:
    """Return ``base`` (default options) with the JSON fields in ``data`` applied."""
    current = (base or EmulatorOptions()).to_dict()
    unknown = sorted(set(data) - set(current))
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(unknown)}")
    current.update(data)
    current["keyword_fields"] = _string_tuple("keyword_fields", current["keyword_fields"])
    return EmulatorOptions(**current)


def json_tuples(values: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """Turn the JSON lists under ``keys`` into the tuples a frozen config holds; refuse others."""
    for key in keys:
        if key in values:
            if not isinstance(values[key], list):
                raise ValueError(f"{key!r} must be a list of strings")
            values[key] = tuple(values[key])
    return values


def _string_tuple(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{key!r} must be a list of strings")
    items = tuple(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{key!r} must be a list of strings")
    return items


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``"20/60s"``, ``"20/min"`` or ``"3/1s"`` into ``(limit, window_seconds)``.

    The grammar is dingpush's one (``dingpush.Rate.parse``), so a rate the library, the
    configuration file and the relay accept is accepted here too.
    """
    rate = Rate.parse(text)
    return rate.limit, rate.window


def split_robot_spec(spec: str) -> tuple[str, str, str, tuple[str, ...]]:
    """Split ``NAME[:TOKEN[:SECRET[:KEYWORD,…]]]``; absent parts are empty.

    The keywords are the robot's own custom keywords (§1.2), separated by commas.
    """
    name, token, secret, keywords = [*spec.split(":", 3), "", "", ""][:4]
    if not name.strip():
        raise ValueError(f"robot {spec!r} has no name: write {ROBOT_SPEC}")
    return name, token, secret, tuple(k.strip() for k in keywords.split(",") if k.strip())


def parse_robot_spec(spec: str, **settings: Any) -> RobotConfig:
    """Parse ``NAME[:TOKEN[:SECRET[:KEYWORD,…]]]``; a missing token is generated (64 hex).

    The spec's keywords come before those in ``settings`` (which every robot shares).
    """
    name, token, secret, keywords = split_robot_spec(spec)
    shared = tuple(settings.pop("keywords", ()))
    return RobotConfig(
        name,
        token or secrets.token_hex(32),
        secret=secret or None,
        keywords=tuple(dict.fromkeys((*keywords, *shared))),
        **settings,
    )
