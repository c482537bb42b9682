"""What ``dingpush emulator`` prints once it listens: where to look, and how to point at it."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ._apps import AppConfig
from ._config import RobotConfig

__all__ = ["client_hints"]


def client_hints(
    url: str, robots: Sequence[RobotConfig], apps: Sequence[AppConfig] = ()
) -> list[str]:
    """The banner's closing lines: the chat view, and the environment that points dingpush
    (or anything reading the same variables) at this emulator.

    The webhook URL carries the robot's token on purpose: it is this local emulator's own
    credential and the user needs it to send. A signing secret is never printed.
    """
    lines = [f"  chat view: {url}/  (every conversation, live, and the refused requests)"]
    if robots:
        robot = robots[0]
        webhook = f"DINGPUSH_WEBHOOK={shlex.quote(robot.webhook_url(url))}"
        secret = " DINGPUSH_SECRET='<its SEC… secret>'" if robot.secret else ""
        lines.append(f"  send to {robot.name}: export {webhook}{secret}")
    if apps:
        lines.append(f"  point apps at it: export DINGPUSH_API_BASE={url} DINGPUSH_OAPI_BASE={url}")
    lines.append(f"  control API: {url}/_emulator/messages, /_emulator/requests, /_emulator/robots")
    return lines
