"""A local DingTalk: the custom-robot webhook and the enterprise-app APIs (tokens, app robots,
work notifications, media), with their checks, limits and error codes, plus faults.

Serve :func:`create_app` with :func:`serve` (through :mod:`dingpush.serving`) or any ASGI
server, or call it in-process through ``httpx.ASGITransport``. The behaviour follows
``dingtalk-protocol.md``; where the protocol is uncertain, :class:`EmulatorOptions` makes the
choice explicit. Needs the ``[emulator]`` extra.
"""

from __future__ import annotations

import inspect

from ._app import create_app, serve
from ._apps import (
    DING_PERMISSION,
    ROBOT_PERMISSION,
    AppConfig,
    MediaRecord,
    NoticeTask,
    parse_app_spec,
)
from ._appstate import AppAnswer, AppCall
from ._command import EmulatorCommand
from ._config import (
    DEFAULT_KEYWORD_FIELDS,
    Clock,
    EmulatorOptions,
    RobotConfig,
    RobotStatus,
    parse_rate,
    parse_robot_spec,
    split_robot_spec,
)
from ._faults import Fault, FaultKind
from ._records import (
    AtTargets,
    Conversation,
    EmulatorStats,
    Message,
    RequestRecord,
    RobotStats,
)
from ._robot import ConnectionDropped
from ._samples import SAMPLE_PICTURES
from ._state import Emulator
from ._webhook import MSGTYPES, WebhookCall

__all__ = [
    "DEFAULT_KEYWORD_FIELDS",
    "DING_PERMISSION",
    "MSGTYPES",
    "ROBOT_PERMISSION",
    "SAMPLE_PICTURES",
    "AppAnswer",
    "AppCall",
    "AppConfig",
    "AtTargets",
    "Clock",
    "ConnectionDropped",
    "Conversation",
    "Emulator",
    "EmulatorCommand",
    "EmulatorOptions",
    "EmulatorStats",
    "Fault",
    "FaultKind",
    "MediaRecord",
    "Message",
    "NoticeTask",
    "RequestRecord",
    "RobotConfig",
    "RobotStats",
    "RobotStatus",
    "WebhookCall",
    "create_app",
    "parse_app_spec",
    "parse_rate",
    "parse_robot_spec",
    "serve",
    "split_robot_spec",
]

# Show `dingpush.emulator.Emulator` in reprs and docs, not the private module it lives in.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or inspect.isfunction(_obj):
        _obj.__module__ = __name__
del _name, _obj
