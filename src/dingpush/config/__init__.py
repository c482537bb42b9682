"""dingpush's TOML configuration: named targets, app credentials, and the environment default.

Shared by the CLI and the relay; stdlib only (``tomllib``), and not imported by ``import
dingpush``. Look-up order: ``--config``, ``$DINGPUSH_CONFIG``, ``./dingpush.toml``,
``~/.config/dingpush/config.toml``; with no file at all, ``DINGPUSH_WEBHOOK`` (and
``DINGPUSH_SECRET``) define a robot target named ``default``. See ``docs/cli.md``.

    config = load_config()
    target = config.resolve("ops")          # or None for the default, or a URL, or app:…
    with open_sender(target) as sender:
        sender.send(Text("deploy finished"))

``open_sender()`` builds the sync client of a target (the CLI's), ``open_async_sender()`` the
async one (the relay's), from the same arguments.
"""

from __future__ import annotations

import typing

from dingpush import Rate

from ._build import (
    AppSender,
    AsyncAppSender,
    AsyncSender,
    Sender,
    open_app,
    open_async_app,
    open_async_robot,
    open_async_sender,
    open_robot,
    open_sender,
)
from ._interpolate import BadReference, MissingVariable, interpolate
from ._load import (
    ENV_APP_KEY,
    ENV_APP_SECRET,
    ENV_CONFIG,
    ENV_KEYWORD,
    ENV_SECRET,
    ENV_WEBHOOK,
    find_config,
    from_environment,
    load_config,
    parse_config,
    user_config_path,
)
from ._model import (
    KINDS,
    AppGroupTarget,
    AppSettings,
    AppTarget,
    AppUsersTarget,
    Config,
    Origin,
    PoolTarget,
    RobotTarget,
    SearchStep,
    Target,
    WorkNoticeTarget,
)
from ._problems import ConfigFileError, Problem
from ._spec import APP_PREFIX

if typing.TYPE_CHECKING:
    from ._source import ConfigSource, KeyLocator

__all__ = [
    "APP_PREFIX",
    "ENV_APP_KEY",
    "ENV_APP_SECRET",
    "ENV_CONFIG",
    "ENV_KEYWORD",
    "ENV_SECRET",
    "ENV_WEBHOOK",
    "KINDS",
    "AppGroupTarget",
    "AppSender",
    "AppSettings",
    "AppTarget",
    "AppUsersTarget",
    "AsyncAppSender",
    "AsyncSender",
    "BadReference",
    "Config",
    "ConfigFileError",
    "ConfigSource",
    "KeyLocator",
    "MissingVariable",
    "Origin",
    "PoolTarget",
    "Problem",
    "Rate",
    "RobotTarget",
    "SearchStep",
    "Sender",
    "Target",
    "WorkNoticeTarget",
    "find_config",
    "from_environment",
    "interpolate",
    "load_config",
    "open_app",
    "open_async_app",
    "open_async_robot",
    "open_async_sender",
    "open_robot",
    "open_sender",
    "parse_config",
    "user_config_path",
]


def __getattr__(name: str) -> typing.Any:
    # The TOML scanner loads on first use: with no file (the CI case) it is never needed.
    if name in ("ConfigSource", "KeyLocator"):
        from . import _source

        return getattr(_source, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
