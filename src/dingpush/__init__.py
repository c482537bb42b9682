"""dingpush: push messages into DingTalk groups and to DingTalk users.

``import dingpush`` loads the library alone (its one dependency is httpx); the CLI, the relay
and the emulator live behind extras.
"""

from __future__ import annotations

from .__version__ import __description__, __title__, __version__
from ._app import *
from ._app_messages import *
from ._app_results import *
from ._async_app import *
from ._channels import msg_param_bytes, notice_msg_bytes
from ._clock import *
from ._errors import *
from ._filelimiter import FileRateLimiter
from ._limiter import MemoryRateLimiter, Rate, RateLimiter, Reservation, default_limiter
from ._markdown_check import MarkdownFinding, check_markdown
from ._masking import mask
from ._messages import *
from ._pglimiter import LimiterUnavailable, PostgresRateLimiter
from ._pgtokens import PostgresTokenCache
from ._pool import AsyncRobotPool, RobotPool
from ._retry import RetryPolicy
from ._robot import *
from ._signing import sign
from ._split import Splitter
from ._targets import WebhookTarget, parse_robot_target
from ._tokens import AccessToken, FileTokenCache, TokenCache, default_token_cache_path

# A plain sort (tests/test_exports.py), not ruff's isort-style one that puts OA first.
__all__ = [  # noqa: RUF022
    "APIError",
    "AccessToken",
    "ActionCard",
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
    "BadCredentials",
    "Button",
    "Clock",
    "ConfigError",
    "ContentRejected",
    "DingPushError",
    "FeedCard",
    "FeedItem",
    "File",
    "FileRateLimiter",
    "FileTokenCache",
    "GroupSendResult",
    "Image",
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
    "Rate",
    "RateLimited",
    "RateLimiter",
    "Reservation",
    "RetryPolicy",
    "Robot",
    "RobotPool",
    "RobotUnavailable",
    "SecurityRejected",
    "SendResult",
    "ServerBusy",
    "Splitter",
    "SystemClock",
    "Text",
    "Timeout",
    "TokenCache",
    "TokenNotFound",
    "TransportError",
    "UnsupportedMessage",
    "UnsupportedMessageType",
    "UsersSendResult",
    "WebhookTarget",
    "WorkNotice",
    "__description__",
    "__title__",
    "__version__",
    "check_markdown",
    "default_limiter",
    "default_token_cache_path",
    "error_from_reply",
    "mask",
    "msg_param_bytes",
    "notice_msg_bytes",
    "parse_message",
    "parse_robot_target",
    "sign",
]

# Show the public names as dingpush.X in reprs, tracebacks and docs (httpx does the same).
for _name in __all__:
    if not _name.startswith("__"):
        _obj = globals()[_name]
        if getattr(_obj, "__module__", "").startswith("dingpush."):
            _obj.__module__ = "dingpush"
del _name, _obj
