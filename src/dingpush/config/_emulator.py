"""``[emulator]``: what ``dingpush emulator`` serves, from the configuration file.

Both emulator entry points look the file up like the CLI (``--config``, ``$DINGPUSH_CONFIG``,
``./dingpush.toml``, the user's) and read only this table, through the settings reader::

    [emulator]
    port = 8765
    rate = "20/60s"                  # every robot's, unless its own table says otherwise
    keywords = ["ALERT"]             # every robot requires these

    [emulator.robots.ops]
    token = "ops-token"              # default: NAME-token
    secret = "${OPS_SECRET}"         # turns on 加签
    keywords = ["告警"]              # this robot's own custom keywords
    ip_allowlist = ["10.0.0.0/8"]

    [emulator.apps.corp]
    app_key = "dingcorpkey"          # missing credentials are generated
    users = ["alice"]
    groups = ["Ops"]

An option given on the command line wins over the table; ``--robot``, ``--keyword``, ``--ip``
and ``--app`` add to it.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping

from ._reader import DURATION, INTEGER, NONEMPTY, PORT, RATE, STRINGS, Field, Reader, Table

if typing.TYPE_CHECKING:
    from ._source import ConfigSource

__all__ = ["EMULATOR", "EMULATOR_APP", "EMULATOR_ROBOT", "emulator_settings", "emulator_values"]


def _throttle_errcode(errcode: int) -> str | None:
    return None if errcode in (130101, 410100) else f"{errcode} is not a throttle errcode"


_SHARED = (
    Field("keywords", STRINGS, help="custom keywords every robot requires"),
    Field("ip_allowlist", STRINGS, help="IPv4 addresses or CIDR ranges every robot accepts"),
)
#: ``[emulator]``: the command's options (by their file names), and its robots and apps.
EMULATOR = Table(
    "[emulator]",
    (
        Field("host", NONEMPTY),
        Field("port", PORT),
        Field("rate", RATE, help="every robot's rate"),
        Field("lockout", DURATION, help="how long a throttled robot stays locked"),
        Field(
            "rate_errcode",
            INTEGER,
            rule=_throttle_errcode,
            fix="write rate_errcode = 130101 (observed) or 410100 (documented)",
            example="130101",
        ),
        *_SHARED,
    ),
    extra=("robots", "apps"),
    unknown="unknown setting",
)
EMULATOR_ROBOT = Table(
    "[emulator.robots.NAME]",
    (
        Field("token", NONEMPTY, help="default: NAME-token"),
        Field("secret", NONEMPTY, help="turns on 加签"),
        Field("keywords", STRINGS, default=(), help="this robot's own custom keywords"),
        Field("ip_allowlist", STRINGS, default=()),
        Field("rate", RATE),
        Field("lockout", DURATION),
    ),
    unknown="unknown setting",
)
EMULATOR_APP = Table(
    "[emulator.apps.NAME]",
    (
        Field("app_key", NONEMPTY, help="generated when missing"),
        Field("app_secret", NONEMPTY, help="generated when missing"),
        Field("users", STRINGS, default=()),
        Field("groups", STRINGS, default=(), help="group titles"),
    ),
    unknown="unknown setting",
)
#: The option ``dest`` of each ``[emulator]`` key whose name differs.
_DEST = {"ip_allowlist": "ips"}


def emulator_settings(
    config: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> dict[str, typing.Any]:
    """The ``[emulator]`` table of the configuration file, by option ``dest``; ``{}`` without.

    ``robot_tables`` and ``app_tables`` list the robots and apps it declares (name first).

    Raises:
        ConfigFileError: every problem of the table, with its line and fix.
    """
    from ._load import find_config

    env = os.environ if env is None else env
    found, _ = find_config(config, env=env)
    if found is None:
        return {}
    from ._source import ConfigSource

    source = ConfigSource.read(found)
    if "emulator" not in source.data:
        return {}
    return read_emulator(source, env)


def emulator_values(
    parsed: Mapping[str, typing.Any],
    config: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> dict[str, typing.Any]:
    """What both emulator commands serve: their options (``parsed``) over ``[emulator]``."""
    from ._commands import EMULATOR_OPTIONS, option_values

    settings = emulator_settings(config, env=env)
    values = option_values(parsed, EMULATOR_OPTIONS, settings)
    values["robot_tables"] = settings.get("robot_tables", ())
    values["app_tables"] = settings.get("app_tables", ())
    return values


def read_emulator(source: ConfigSource, env: Mapping[str, str]) -> dict[str, typing.Any]:
    """Read ``[emulator]`` of ``source`` (an unset ``${VAR}`` is a problem here)."""
    reader = Reader(source, env, unset="problem")
    table = reader.table(source.data, ("emulator",))
    settings = {
        _DEST.get(k, k): v for k, v in reader.fields(table, ("emulator",), EMULATOR).items()
    }
    for key, spec in (("robots", EMULATOR_ROBOT), ("apps", EMULATOR_APP)):
        tables = reader.table(table, ("emulator", key))
        read: list[dict[str, typing.Any]] = []
        for name in tables:
            entry = reader.table(tables, ("emulator", key, name))
            read.append({"name": name, **reader.fields(entry, ("emulator", key, name), spec)})
        settings[f"{key[:-1]}_tables"] = tuple(read)
    reader.finish()
    return settings
