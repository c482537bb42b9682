"""The relay: ``dingpush serve``, a durable outbox in front of the library's clients.

Behind the ``relay`` extra. This ``__init__`` stays light on purpose: the outbox store layer
(:mod:`dingpush.relay.stores`) needs only the standard library, so the CLI and tests can use it
without the server's dependencies; the names below load Starlette and uvicorn on first use.
The library (``import dingpush``) never imports this package.

    from dingpush.relay import Relay, RobotTarget, create_app

    relay = Relay([RobotTarget("ops", "https://oapi.dingtalk.com/robot/send?access_token=…")])
    app = create_app(relay)  # serve it with uvicorn; POST /v1/messages {"target": "ops", …}
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from ._alerts import AlertReceivers
    from ._app import create_app
    from ._dashboard import dashboard_routes
    from ._oncall import OnCall, Override, Policy, Schedule, Step
    from ._receivers import ChatReceivers, ReceivingApp
    from ._relay import Relay
    from ._serve import RelayServer, serve
    from ._settings import RELAY_RETRY, RelaySettings
    from ._targets import AppTarget, PoolTarget, RelayTarget, RobotTarget, TargetOptions

__all__ = [
    "RELAY_RETRY",
    "AlertReceivers",
    "AppTarget",
    "ChatReceivers",
    "OnCall",
    "Override",
    "Policy",
    "PoolTarget",
    "ReceivingApp",
    "Relay",
    "RelayServer",
    "RelaySettings",
    "RelayTarget",
    "RobotTarget",
    "Schedule",
    "Step",
    "TargetOptions",
    "create_app",
    "dashboard_routes",
    "serve",
]

_WHERE = {
    "AlertReceivers": "._alerts",
    "create_app": "._app",
    "ChatReceivers": "._receivers",
    "ReceivingApp": "._receivers",
    "dashboard_routes": "._dashboard",
    "OnCall": "._oncall",
    "Override": "._oncall",
    "Policy": "._oncall",
    "Schedule": "._oncall",
    "Step": "._oncall",
    "Relay": "._relay",
    "serve": "._serve",
    "RelayServer": "._serve",
    "RELAY_RETRY": "._settings",
    "RelaySettings": "._settings",
    "AppTarget": "._targets",
    "PoolTarget": "._targets",
    "RelayTarget": "._targets",
    "RobotTarget": "._targets",
    "TargetOptions": "._targets",
}


def __getattr__(name: str) -> typing.Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if getattr(value, "__module__", "").startswith(__name__ + "._"):
        value.__module__ = __name__
    globals()[name] = value
    return value
