"""dingpush: push messages into DingTalk groups and to DingTalk users.

``import dingpush`` loads the library alone (its one dependency is httpx); the CLI, the relay
and the emulator live behind extras. The names below load on first use (PEP 562): ``from
dingpush import ConfigError`` imports the errors, not the clients. ``dingpush.lowlevel`` holds
the building blocks under the clients (request planning, limits, channel mappings, the
redactor) and ``dingpush.markdown`` DingTalk's markdown parser, for tools built on dingpush.
"""

from __future__ import annotations

import typing

from .__version__ import __description__, __title__, __version__
from ._lazy import lazy_names

if typing.TYPE_CHECKING:  # what mypy and editors read; at run time _MODULES says the same
    from ._apps._async_client import AsyncApp, AsyncAppGroup, AsyncAppUsers, AsyncWorkNotice
    from ._apps._client import App, AppGroup, AppUsers, WorkNotice
    from ._apps._tokens import AccessToken, FileTokenCache, TokenCache, default_token_cache_path
    from ._engine._clock import Clock, SystemClock
    from ._engine._filelimiter import FileRateLimiter
    from ._engine._limiter import MemoryRateLimiter, RateLimiter, Reservation, default_limiter
    from ._engine._retry import Decision, RetryPolicy
    from ._engine._split import Splitter
    from ._engine._units import Rate, parse_duration, parse_size
    from ._errors import (
        Advice,
        APIError,
        BadCredentials,
        CallbackRejected,
        ConfigError,
        ContentRejected,
        DingPushError,
        DingQuotaExhausted,
        InvalidAccessToken,
        InvalidMessage,
        InvalidRequest,
        LimiterUnavailable,
        MessageTooLarge,
        PartialDelivery,
        PermissionDenied,
        PlatformThrottled,
        PoolExhausted,
        ProtocolError,
        QueryKeyExpired,
        RateLimited,
        RobotUnavailable,
        SecurityRejected,
        ServerBusy,
        Timeout,
        TokenNotFound,
        TransportError,
        UnsupportedMessage,
        UnsupportedMessageType,
        error_from_reply,
    )
    from ._markdown._check import MarkdownFinding, check_markdown
    from ._masking import mask
    from ._messages._app_models import OA, File, Image, OAField
    from ._messages._channels import msg_param_bytes, notice_msg_bytes, webhook_body_bytes
    from ._messages._fields import UnknownField
    from ._messages._models import (
        ActionCard,
        At,
        Button,
        FeedCard,
        FeedItem,
        Link,
        Markdown,
        Message,
        Text,
        parse_message,
    )
    from ._postgres._limiter import PostgresRateLimiter
    from ._postgres._tokens import PostgresTokenCache
    from ._receive._client import StreamClient
    from ._receive._incoming import IncomingMessage, callback_sign, parse_incoming, verify_callback
    from ._receive._stream import BOT_TOPIC, Backoff
    from ._results import (
        DingReadStatus,
        DingResult,
        GroupReadStatus,
        GroupSendResult,
        NoticeDelivery,
        NoticeForbidden,
        NoticeProgress,
        NoticeSendResult,
        RecallResult,
        RemindType,
        SendResult,
        UserReadStatus,
        UsersReadStatus,
        UsersSendResult,
    )
    from ._robot._client import AsyncRobot, Robot
    from ._robot._pool import AsyncRobotPool, RobotPool
    from ._robot._signing import sign
    from ._robot._target import WebhookTarget, parse_robot_target

# A plain sort (tests/test_exports.py), not ruff's isort-style one that puts OA first.
__all__ = [  # noqa: RUF022
    "APIError",
    "AccessToken",
    "ActionCard",
    "Advice",
    "App",
    "AppGroup",
    "AppUsers",
    "AsyncApp",
    "AsyncAppGroup",
    "AsyncAppUsers",
    "AsyncRobot",
    "AsyncRobotPool",
    "AsyncWorkNotice",
    "At",
    "BOT_TOPIC",
    "Backoff",
    "BadCredentials",
    "Button",
    "CallbackRejected",
    "Clock",
    "ConfigError",
    "ContentRejected",
    "Decision",
    "DingPushError",
    "DingQuotaExhausted",
    "DingReadStatus",
    "DingResult",
    "FeedCard",
    "FeedItem",
    "File",
    "FileRateLimiter",
    "FileTokenCache",
    "GroupReadStatus",
    "GroupSendResult",
    "Image",
    "IncomingMessage",
    "InvalidAccessToken",
    "InvalidMessage",
    "InvalidRequest",
    "LimiterUnavailable",
    "Link",
    "Markdown",
    "MarkdownFinding",
    "MemoryRateLimiter",
    "Message",
    "MessageTooLarge",
    "NoticeDelivery",
    "NoticeForbidden",
    "NoticeProgress",
    "NoticeSendResult",
    "OA",
    "OAField",
    "PartialDelivery",
    "PermissionDenied",
    "PlatformThrottled",
    "PoolExhausted",
    "PostgresRateLimiter",
    "PostgresTokenCache",
    "ProtocolError",
    "QueryKeyExpired",
    "Rate",
    "RateLimited",
    "RateLimiter",
    "RecallResult",
    "RemindType",
    "Reservation",
    "RetryPolicy",
    "Robot",
    "RobotPool",
    "RobotUnavailable",
    "SecurityRejected",
    "SendResult",
    "ServerBusy",
    "Splitter",
    "StreamClient",
    "SystemClock",
    "Text",
    "Timeout",
    "TokenCache",
    "TokenNotFound",
    "TransportError",
    "UnknownField",
    "UnsupportedMessage",
    "UnsupportedMessageType",
    "UserReadStatus",
    "UsersReadStatus",
    "UsersSendResult",
    "WebhookTarget",
    "WorkNotice",
    "__description__",
    "__title__",
    "__version__",
    "callback_sign",
    "check_markdown",
    "default_limiter",
    "default_token_cache_path",
    "error_from_reply",
    "mask",
    "msg_param_bytes",
    "notice_msg_bytes",
    "parse_duration",
    "parse_incoming",
    "parse_message",
    "parse_robot_target",
    "parse_size",
    "sign",
    "verify_callback",
    "webhook_body_bytes",
]

#: Where each public name lives; a name's module is imported when the name is first used.
_MODULES: dict[str, tuple[str, ...]] = {
    "._apps._async_client": ("AsyncApp", "AsyncAppGroup", "AsyncAppUsers", "AsyncWorkNotice"),
    "._apps._client": ("App", "AppGroup", "AppUsers", "WorkNotice"),
    "._apps._tokens": ("AccessToken", "FileTokenCache", "TokenCache", "default_token_cache_path"),
    "._engine._clock": ("Clock", "SystemClock"),
    "._engine._filelimiter": ("FileRateLimiter",),
    "._engine._limiter": (
        "MemoryRateLimiter",
        "RateLimiter",
        "Reservation",
        "default_limiter",
    ),
    "._engine._retry": ("Decision", "RetryPolicy"),
    "._engine._split": ("Splitter",),
    "._engine._units": ("Rate", "parse_duration", "parse_size"),
    "._errors": (
        "APIError",
        "Advice",
        "BadCredentials",
        "CallbackRejected",
        "ConfigError",
        "ContentRejected",
        "DingPushError",
        "DingQuotaExhausted",
        "InvalidAccessToken",
        "InvalidMessage",
        "InvalidRequest",
        "LimiterUnavailable",
        "MessageTooLarge",
        "PartialDelivery",
        "PermissionDenied",
        "PlatformThrottled",
        "PoolExhausted",
        "ProtocolError",
        "QueryKeyExpired",
        "RateLimited",
        "RobotUnavailable",
        "SecurityRejected",
        "ServerBusy",
        "Timeout",
        "TokenNotFound",
        "TransportError",
        "UnsupportedMessage",
        "UnsupportedMessageType",
        "error_from_reply",
    ),
    "._markdown._check": ("MarkdownFinding", "check_markdown"),
    "._masking": ("mask",),
    "._messages._app_models": ("OA", "File", "Image", "OAField"),
    "._messages._channels": ("msg_param_bytes", "notice_msg_bytes", "webhook_body_bytes"),
    "._messages._fields": ("UnknownField",),
    "._messages._models": (
        "ActionCard",
        "At",
        "Button",
        "FeedCard",
        "FeedItem",
        "Link",
        "Markdown",
        "Message",
        "Text",
        "parse_message",
    ),
    "._results": (
        "DingReadStatus",
        "DingResult",
        "GroupReadStatus",
        "GroupSendResult",
        "NoticeDelivery",
        "NoticeForbidden",
        "NoticeProgress",
        "NoticeSendResult",
        "RecallResult",
        "RemindType",
        "SendResult",
        "UserReadStatus",
        "UsersReadStatus",
        "UsersSendResult",
    ),
    "._postgres._limiter": ("PostgresRateLimiter",),
    "._receive._client": ("StreamClient",),
    "._receive._incoming": (
        "IncomingMessage",
        "callback_sign",
        "parse_incoming",
        "verify_callback",
    ),
    "._receive._stream": ("BOT_TOPIC", "Backoff"),
    "._postgres._tokens": ("PostgresTokenCache",),
    "._robot._client": ("AsyncRobot", "Robot"),
    "._robot._pool": ("AsyncRobotPool", "RobotPool"),
    "._robot._signing": ("sign",),
    "._robot._target": ("WebhookTarget", "parse_robot_target"),
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
