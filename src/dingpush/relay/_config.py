"""The relay's configuration: the shared TOML file's targets plus its ``[relay]`` table.

The targets, apps and their ``${VAR}`` references are read and checked by
:mod:`dingpush.config`, as for the CLI; this module reads ``[relay]`` and
``[relay.targets.NAME]`` (which the CLI keeps as written) and reports every problem at once,
each with the file, the line and the fix::

    [relay]
    host = "0.0.0.0"
    api_tokens = ["${RELAY_API_TOKEN}"]
    store = "/var/lib/dingpush/outbox.sqlite"      # or "memory"
    coalesce_after = "60s"

    [relay.targets.ops]                # per target, all optional
    ingress_token = "${OPS_RELAY_TOKEN}"
    ingress_secret = "SEC…"
    rate = "20/60s"
    coalesce = true
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import typing
from collections.abc import Callable, Mapping

from dingpush._engine._limiter import DEFAULT_COOLDOWN, Rate
from dingpush._errors import ConfigError
from dingpush.config import (
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    BadReference,
    Config,
    ConfigFileError,
    MissingVariable,
    Problem,
    WorkNoticeTarget,
    find_config,
    interpolate,
    parse_config,
)
from dingpush.config import PoolTarget as ConfigPool
from dingpush.config import RobotTarget as ConfigRobot

from ._relay import Relay
from ._settings import RELAY_RETRY, RelaySettings, parse_duration, parse_size
from ._targets import AppTarget, PoolTarget, RelayTarget, RobotTarget, TargetOptions
from .stores import MemoryStore, OutboxStore, SQLiteStore

if typing.TYPE_CHECKING:
    from dingpush import AsyncApp
    from dingpush.config import ConfigSource

__all__ = ["RELAY_KEYS", "TARGET_KEYS", "load_relay", "relay_from_config"]

Path = tuple[str, ...]

RELAY_KEYS = (
    "host",
    "port",
    "api_tokens",
    "store",
    "coalesce_after",
    "max_body",
    "lease",
    "shutdown_deadline",
    "retention",
    "retry",
    "targets",
    "allowed_hosts",
    "public_url",
)
TARGET_KEYS = (
    "ingress_token",
    "ingress_secret",
    "coalesce",
    "coalesce_after",
    "concurrency",
    "rate",
    "cooldown",
)
RETRY_KEYS = ("max_attempts", "base_delay", "max_delay", "retry_ambiguous")
DURATIONS = ("coalesce_after", "lease", "shutdown_deadline", "retention")


class _Reader:
    """Reads ``[relay]``; every problem is collected with its line, then raised together."""

    def __init__(self, source: ConfigSource, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[Problem] = []

    def problem(self, path: Path, message: str, fix: str = "") -> None:
        full = ("relay", *path)
        self.problems.append(
            Problem(self.source.path, self.source.line_of(full), ".".join(full), message, fix)
        )

    def expand(self, value: typing.Any, path: Path) -> typing.Any:
        """``${VAR}`` in strings (and lists and tables of them); None and a problem if unset."""
        if isinstance(value, str):
            try:
                return interpolate(value, self.env)[0]
            except MissingVariable as exc:
                self.problem(path, f"${{{exc.name}}} is not set", f"export {exc.name}=… first")
            except BadReference as exc:
                self.problem(path, str(exc))
            return None
        if isinstance(value, list):
            return [self.expand(v, path) for v in value]
        if isinstance(value, dict):
            return {k: self.expand(v, (*path, k)) for k, v in value.items()}
        return value

    def known(self, table: Mapping[str, typing.Any], allowed: tuple[str, ...], path: Path) -> None:
        from dingpush.config._problems import did_you_mean

        for name in table:
            if name not in allowed:
                self.problem(
                    (*path, name),
                    "unknown setting" + did_you_mean(name, allowed),
                    "the settings here are " + ", ".join(allowed),
                )

    def read(self, path: Path, parse: Callable[[], typing.Any], fix: str = "") -> typing.Any:
        """Run ``parse``; a ``ConfigError``/``ValueError`` becomes a problem on ``path``."""
        try:
            return parse()
        except (ConfigError, ValueError, TypeError) as exc:
            self.problem(path, str(exc), fix)
            return None

    def table(self, data: Mapping[str, typing.Any], key: str, path: Path) -> dict[str, typing.Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(
                (*path, key), "must be a table", f"write [{'.'.join(('relay', *path, key))}]"
            )
            return {}
        return value


def _settings(reader: _Reader, table: Mapping[str, typing.Any]) -> RelaySettings:
    reader.known(table, RELAY_KEYS, ())
    values: dict[str, typing.Any] = {}
    if "host" in table:
        values["host"] = str(table["host"])
    if "port" in table:
        port = table["port"]
        if isinstance(port, int) and not isinstance(port, bool) and 0 <= port <= 65535:
            values["port"] = port
        else:
            reader.problem(("port",), f"{port!r} is not a port number", "write e.g. port = 8080")
    if "api_tokens" in table:
        tokens = table["api_tokens"]
        if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            short = [t for t in tokens if len(t) < 16]
            if short:
                reader.problem(
                    ("api_tokens",),
                    "every API token must be at least 16 characters",
                    "generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
            else:
                values["api_tokens"] = tuple(tokens)
        elif tokens is not None:
            reader.problem(("api_tokens",), "must be a list of strings", 'write ["…", "…"]')
    for key in DURATIONS:
        if key in table and table[key] is not None:
            values[key] = reader.read(
                (key,), functools.partial(parse_duration, table[key], key), 'e.g. "60s"'
            )
    if "max_body" in table:
        values["max_body"] = reader.read(
            ("max_body",), lambda: parse_size(table["max_body"], "max_body"), 'e.g. "1MiB"'
        )
    if "retry" in table:
        values["retry"] = _retry(reader, table["retry"])
    hosts = table.get("allowed_hosts")
    if isinstance(hosts, list) and all(isinstance(h, str) for h in hosts):
        values["allowed_hosts"] = tuple(hosts)
    elif hosts is not None:
        reader.problem(("allowed_hosts",), "must be a list of host names", 'write ["relay.lan"]')
    if isinstance(table.get("public_url"), str):
        values["public_url"] = table["public_url"]
    elif table.get("public_url") is not None:
        reader.problem(("public_url",), "must be a URL", 'write "https://relay.example.com"')
    values = {k: v for k, v in values.items() if v is not None}
    return reader.read((), lambda: RelaySettings(**values)) or RelaySettings()


def _retry(reader: _Reader, table: typing.Any) -> typing.Any:
    if not isinstance(table, dict):
        reader.problem(("retry",), "must be a table", "write retry = { max_attempts = 12 }")
        return None
    reader.known(table, RETRY_KEYS, ("retry",))
    changes: dict[str, typing.Any] = {}
    if "max_attempts" in table:
        changes["max_attempts"] = table["max_attempts"]
    if "retry_ambiguous" in table:
        changes["retry_ambiguous"] = table["retry_ambiguous"] is True
    for key in ("base_delay", "max_delay"):
        if key in table:
            changes[key] = reader.read(
                ("retry", key), functools.partial(parse_duration, table[key], f"retry.{key}")
            )
    return reader.read(("retry",), lambda: dataclasses.replace(RELAY_RETRY, **changes))


def _options(
    reader: _Reader, name: str, table: Mapping[str, typing.Any]
) -> dict[str, typing.Any] | None:
    """``[relay.targets.NAME]`` → ``options``, plus ``rate``/``cooldown`` overrides."""
    path = ("targets", name)
    reader.known(table, TARGET_KEYS, path)
    before = len(reader.problems)
    options: dict[str, typing.Any] = {}
    extra: dict[str, typing.Any] = {}
    for key in ("ingress_token", "ingress_secret"):
        if table.get(key) is not None:
            options[key] = str(table[key])
    if "coalesce" in table:
        if isinstance(table["coalesce"], bool):
            options["coalesce"] = table["coalesce"]
        else:
            reader.problem((*path, "coalesce"), "must be true or false")
    if "coalesce_after" in table:
        options["coalesce_after"] = reader.read(
            (*path, "coalesce_after"),
            lambda: parse_duration(table["coalesce_after"], "coalesce_after"),
        )
    if "concurrency" in table:
        options["concurrency"] = table["concurrency"]
    if "rate" in table:
        extra["rate"] = reader.read((*path, "rate"), lambda: Rate.parse(str(table["rate"])))
    if "cooldown" in table:
        extra["cooldown"] = reader.read(
            (*path, "cooldown"), lambda: parse_duration(table["cooldown"], "cooldown")
        )
    extra["options"] = reader.read(path, lambda: TargetOptions(**options))
    return None if len(reader.problems) > before else extra


def _store(reader: _Reader, value: typing.Any, base: pathlib.Path) -> OutboxStore:
    if value is None:
        return SQLiteStore(base / "dingpush-outbox.sqlite")
    if value == "memory":
        return MemoryStore()
    if not isinstance(value, str) or not value:
        reader.problem(
            ("store",), 'must be a file path or "memory"', 'write store = "outbox.sqlite"'
        )
        return MemoryStore()
    path = pathlib.Path(value.removeprefix("sqlite:")).expanduser()
    return SQLiteStore(path if path.is_absolute() else base / path)


def _rate(value: Rate | str | None) -> Rate | None:
    return None if value is None else Rate.coerce(value)


class _Apps:
    """One ``AsyncApp`` per ``[apps.NAME]``, shared by the targets that use it."""

    def __init__(self) -> None:
        self._apps: dict[str, AsyncApp] = {}

    def get(self, settings: AppSettings) -> tuple[AsyncApp, bool]:
        from dingpush import AsyncApp

        if settings.name in self._apps:
            return self._apps[settings.name], False
        cache: typing.Any = settings.token_cache
        app = AsyncApp(
            settings.app_key,
            settings.app_secret,
            api_base=settings.api_base,
            oapi_base=settings.oapi_base,
            token_cache=None if cache is False else (True if cache is True else str(cache)),
        )
        self._apps[settings.name] = app
        return app, True  # the first target owns (closes) the shared client


def _target(
    name: str, target: typing.Any, extra: dict[str, typing.Any], apps: _Apps
) -> RelayTarget:
    options = extra["options"]
    if isinstance(target, ConfigRobot):
        return RobotTarget(
            name,
            target.webhook,
            keyword=target.keyword,
            rate=extra.get("rate") or _rate(target.rate) or "20/60s",
            cooldown=extra.get("cooldown") or target.cooldown or DEFAULT_COOLDOWN,
            options=options,
            description=target.description,
        )
    if isinstance(target, ConfigPool):
        first = target.members[0]
        return PoolTarget(
            name,
            [m.webhook for m in target.members],
            keyword=first.keyword,
            rate=extra.get("rate") or _rate(first.rate) or "20/60s",
            cooldown=extra.get("cooldown") or first.cooldown or DEFAULT_COOLDOWN,
            options=options,
            description=target.description,
        )
    app, owns = apps.get(target.app)
    common: dict[str, typing.Any] = {
        "rate": extra.get("rate"),
        "options": options,
        "description": target.description,
        "owns_app": owns,
    }
    if isinstance(target, AppGroupTarget):
        return AppTarget(
            name,
            app,
            "app-group",
            open_conversation_id=target.open_conversation_id,
            robot_code=target.robot_code,
            **common,
        )
    if isinstance(target, AppUsersTarget):
        return AppTarget(
            name, app, "app-users", users=target.user_ids, robot_code=target.robot_code, **common
        )
    assert isinstance(target, WorkNoticeTarget)
    return AppTarget(
        name,
        app,
        "work-notice",
        agent_id=target.agent_id,
        users=target.users,
        departments=target.departments,
        everyone=target.everyone,
        **common,
    )


def relay_from_config(
    config: Config,
    source: ConfigSource,
    *,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Relay:
    """Build the relay of a loaded configuration; every problem is raised at once."""
    env = os.environ if env is None else env
    reader = _Reader(source, env)
    for key, error in sorted(config.unresolved.items()):
        if key.startswith("targets."):
            reader.problems.extend(error.problems)  # the relay needs every target it lists
    table = reader.expand(dict(config.relay), ())
    per_target = reader.table(table, "targets", ())
    settings = _settings(reader, table)
    if host is not None or port is not None:
        settings = dataclasses.replace(
            settings,
            host=settings.host if host is None else host,
            port=settings.port if port is None else port,
        )
    for name in per_target:
        if name not in config.targets and f"targets.{name}" not in config.unresolved:
            reader.problem(
                ("targets", name),
                f"there is no [targets.{name}] to relay to",
                "define the target, or remove this table",
            )
    apps = _Apps()
    targets: list[RelayTarget] = []
    for name, target in config.targets.items():
        extra = _options(reader, name, per_target.get(name) or {})
        if extra is not None:
            built = reader.read(
                ("targets", name), functools.partial(_target, name, target, extra, apps)
            )
            if built is not None:
                targets.append(built)
    if not config.targets and not config.unresolved:
        reader.problems.append(
            Problem(source.path, None, "targets", "no [targets.NAME] to relay to", "add one")
        )
    store = _store(reader, table.get("store"), source.path.parent)
    if reader.problems:
        raise ConfigFileError(reader.problems)
    return Relay(targets, store=store, settings=settings)


def load_relay(
    config: str | None, *, host: str | None = None, port: int | None = None
) -> tuple[Relay, str] | None:
    """The relay of the configuration file (looked up like the CLI's), or None without one."""
    from dingpush.config import ConfigSource

    found, _ = find_config(config)
    if found is None:
        return None
    source = ConfigSource.read(found)
    loaded = parse_config(source)
    return relay_from_config(loaded, source, host=host, port=port), str(found)
