"""dingpush's TOML configuration: named targets, app credentials, and the environment default.

Shared by the CLI, the relay and the emulator commands; stdlib only (``tomllib``), and not
imported by ``import dingpush``. Every table is read by one settings reader (``Reader``, from
``Table`` declarations of ``Field`` objects), and the options of the commands with two entry
points are declared here once (``EMULATOR_OPTIONS``, ``SERVE_OPTIONS``). Look-up order:
``--config``, ``$DINGPUSH_CONFIG``, ``./dingpush.toml``, ``~/.config/dingpush/config.toml``;
with no file at all, ``DINGPUSH_WEBHOOK`` (and ``DINGPUSH_SECRET``) define a robot target named
``default``. See ``docs/cli.md`` and, for the reader, ``docs/architecture.md``.

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
    from ._commands import (
        CONFIG_OPTION,
        EMULATOR_OPTIONS,
        SERVE_OPTIONS,
        VERBOSE_OPTION,
        Option,
        add_arguments,
        option_values,
    )
    from ._emulator import emulator_values
    from ._reader import (
        BOOLEAN,
        DURATION,
        HTTP_URL,
        INTEGER,
        NO_DEFAULT,
        NONEMPTY,
        PORT,
        RATE,
        SIZE,
        STRINGS,
        TEXT,
        Field,
        Invalid,
        Kind,
        Reader,
        Table,
        Unusable,
        Values,
    )
    from ._source import ConfigSource, KeyLocator

__all__ = [
    "APP_PREFIX",
    "BOOLEAN",
    "CONFIG_OPTION",
    "DURATION",
    "EMULATOR_OPTIONS",
    "ENV_APP_KEY",
    "ENV_APP_SECRET",
    "ENV_CONFIG",
    "ENV_KEYWORD",
    "ENV_SECRET",
    "ENV_WEBHOOK",
    "HTTP_URL",
    "INTEGER",
    "KINDS",
    "NONEMPTY",
    "NO_DEFAULT",
    "PORT",
    "RATE",
    "SERVE_OPTIONS",
    "SIZE",
    "STRINGS",
    "TEXT",
    "VERBOSE_OPTION",
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
    "Field",
    "Invalid",
    "KeyLocator",
    "Kind",
    "MissingVariable",
    "Option",
    "Origin",
    "PoolTarget",
    "Problem",
    "Rate",
    "Reader",
    "RobotTarget",
    "SearchStep",
    "Sender",
    "Table",
    "Target",
    "Unusable",
    "Values",
    "WorkNoticeTarget",
    "add_arguments",
    "emulator_values",
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
    "option_values",
    "parse_config",
    "user_config_path",
]


#: Names loaded on first use: the TOML scanner (with no file, the CI case, it is never needed),
#: the reader and the commands' option declarations (``dingpush send`` does not need them).
_LAZY = {
    "ConfigSource": "._source",
    "KeyLocator": "._source",
    "emulator_values": "._emulator",
    **dict.fromkeys(
        (
            "CONFIG_OPTION",
            "EMULATOR_OPTIONS",
            "SERVE_OPTIONS",
            "VERBOSE_OPTION",
            "Option",
            "add_arguments",
            "option_values",
        ),
        "._commands",
    ),
    **dict.fromkeys(
        (
            "BOOLEAN",
            "DURATION",
            "HTTP_URL",
            "INTEGER",
            "NO_DEFAULT",
            "NONEMPTY",
            "PORT",
            "RATE",
            "SIZE",
            "STRINGS",
            "TEXT",
            "Field",
            "Invalid",
            "Kind",
            "Reader",
            "Table",
            "Unusable",
            "Values",
        ),
        "._reader",
    ),
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
