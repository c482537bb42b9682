"""dingpush: push messages into DingTalk groups and to DingTalk users.

``import dingpush`` loads the library alone (its one dependency is httpx); the CLI, the relay
and the emulator live behind extras.
"""

from __future__ import annotations

from .__version__ import __description__, __title__, __version__
from ._clock import *
from ._errors import *
from ._markdown_check import MarkdownFinding, check_markdown
from ._masking import mask
from ._messages import *
from ._robot import *
from ._signing import sign
from ._targets import WebhookTarget, parse_robot_target

__all__ = [
    "APIError",
    "ActionCard",
    "AsyncRobot",
    "At",
    "BadCredentials",
    "Button",
    "Clock",
    "ConfigError",
    "ContentRejected",
    "DingPushError",
    "FeedCard",
    "FeedItem",
    "InvalidAccessToken",
    "InvalidMessage",
    "InvalidRequest",
    "Link",
    "Markdown",
    "MarkdownFinding",
    "Message",
    "MessageTooLarge",
    "PermissionDenied",
    "PlatformThrottled",
    "ProtocolError",
    "RateLimited",
    "Robot",
    "RobotUnavailable",
    "SecurityRejected",
    "SendResult",
    "ServerBusy",
    "SystemClock",
    "Text",
    "Timeout",
    "TokenNotFound",
    "TransportError",
    "UnsupportedMessage",
    "UnsupportedMessageType",
    "WebhookTarget",
    "__description__",
    "__title__",
    "__version__",
    "check_markdown",
    "error_from_reply",
    "mask",
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
