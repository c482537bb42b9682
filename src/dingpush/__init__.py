"""dingpush: push messages into DingTalk groups and to DingTalk users.

``import dingpush`` loads the library alone (its one dependency is httpx); the CLI, the relay
and the emulator live behind extras.
"""

from __future__ import annotations

from .__version__ import __description__, __title__, __version__
from ._apps._async_client import *
from ._apps._client import *
from ._apps._tokens import AccessToken, FileTokenCache, TokenCache, default_token_cache_path
from ._engine._clock import *
from ._engine._filelimiter import FileRateLimiter
from ._engine._limiter import MemoryRateLimiter, Rate, RateLimiter, Reservation, default_limiter
from ._engine._retry import Decision, RetryPolicy
from ._engine._split import Splitter
from ._errors import *
from ._markdown._check import MarkdownFinding, check_markdown
from ._masking import mask
from ._messages._app_models import *
from ._messages._channels import msg_param_bytes, notice_msg_bytes
from ._messages._models import *
from ._results import *
from ._robot._client import *
from ._robot._pool import AsyncRobotPool, RobotPool
from ._robot._signing import sign
from ._robot._target import WebhookTarget, parse_robot_target

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
    "Decision",
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
