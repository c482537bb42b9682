"""The relay's configuration: the targets of the shared TOML file plus its ``[relay]`` table.

[targets.ops]                      # the CLI's targets, shared
kind = "robot"
webhook = "https://oapi.dingtalk.com/robot/send?access_token=${OPS_TOKEN}"
secret = "${OPS_SECRET}"

[relay]
host = "0.0.0.0"
port = 8080
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
import os
import pathlib
import re
import tomllib
import typing
from collections.abc import Mapping

from dingpush._errors import ConfigError
from dingpush._limiter import DEFAULT_COOLDOWN, DEFAULT_RATE, Rate

from ._relay import Relay
from ._settings import RELAY_RETRY, RelaySettings, parse_duration, parse_size
from ._targets import PoolTarget, RelayTarget, RobotTarget, TargetOptions
from .stores import MemoryStore, OutboxStore, SQLiteStore

__all__ = ["RELAY_KEYS", "TARGET_KEYS", "build_relay", "load_relay"]

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

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RelayConfigError(ConfigError):
    """The relay's configuration is wrong; the message names the file, the key and the fix."""


def _problem(where: str, key: str, text: str) -> RelayConfigError:
    return RelayConfigError(f"{where}: [relay] {key}: {text}")


def _expand(value: typing.Any, where: str, key: str) -> typing.Any:
    if isinstance(value, str):

        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise _problem(where, key, f"${{{name}}} is not set: export {name}=… first")
            return os.environ[name]

        return _VAR.sub(variable, value)
    if isinstance(value, list):
        return [_expand(v, where, key) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, where, f"{key}.{k}") for k, v in value.items()}
    return value


def _unknown(
    table: Mapping[str, typing.Any], allowed: tuple[str, ...], where: str, key: str
) -> None:
    for name in table:
        if name not in allowed:
            raise _problem(
                where, f"{key}{name}", f"unknown setting; the settings are {', '.join(allowed)}"
            )


def settings_from(table: Mapping[str, typing.Any], where: str) -> RelaySettings:
    """``[relay]`` → :class:`RelaySettings` (defaults for what is not set)."""
    _unknown(table, RELAY_KEYS, where, "")
    values: dict[str, typing.Any] = {}
    try:
        if "host" in table:
            values["host"] = str(table["host"])
        if "port" in table:
            port = table["port"]
            if not isinstance(port, int) or isinstance(port, bool):
                raise _problem(where, "port", f"{port!r} is not a port number")
            values["port"] = port
        if "api_tokens" in table:
            tokens = table["api_tokens"]
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise _problem(where, "api_tokens", 'write a list of strings: ["…", "…"]')
            values["api_tokens"] = tuple(tokens)
        for key in ("coalesce_after", "lease", "shutdown_deadline", "retention"):
            if key in table:
                values[key] = parse_duration(table[key], key)
        if "max_body" in table:
            values["max_body"] = parse_size(table["max_body"], "max_body")
        if "retry" in table:
            values["retry"] = _retry(table["retry"], where)
        return RelaySettings(**values)
    except RelayConfigError:
        raise
    except ConfigError as exc:
        raise RelayConfigError(f"{where}: [relay] {exc}") from None


def _retry(table: typing.Any, where: str) -> typing.Any:
    if not isinstance(table, dict):
        raise _problem(where, "retry", 'write a table: { max_attempts = 12, base_delay = "1s" }')
    _unknown(table, RETRY_KEYS, where, "retry.")
    changes: dict[str, typing.Any] = {}
    if "max_attempts" in table:
        changes["max_attempts"] = table["max_attempts"]
    if "retry_ambiguous" in table:
        if not isinstance(table["retry_ambiguous"], bool):
            raise _problem(where, "retry.retry_ambiguous", "write true or false")
        changes["retry_ambiguous"] = table["retry_ambiguous"]
    for key in ("base_delay", "max_delay"):
        if key in table:
            changes[key] = parse_duration(table[key], f"retry.{key}")
    try:
        return dataclasses.replace(RELAY_RETRY, **changes)
    except (TypeError, ValueError) as exc:
        raise _problem(where, "retry", str(exc)) from None


def options_from(table: Mapping[str, typing.Any], name: str, where: str) -> dict[str, typing.Any]:
    """``[relay.targets.NAME]`` → the target's relay options and pace overrides."""
    key = f"targets.{name}."
    _unknown(table, TARGET_KEYS, where, key)
    options: dict[str, typing.Any] = {}
    extra: dict[str, typing.Any] = {}
    try:
        for field in ("ingress_token", "ingress_secret"):
            if field in table:
                options[field] = str(table[field])
        if "coalesce" in table:
            if not isinstance(table["coalesce"], bool):
                raise _problem(where, key + "coalesce", "write true or false")
            options["coalesce"] = table["coalesce"]
        if "coalesce_after" in table:
            options["coalesce_after"] = parse_duration(table["coalesce_after"], "coalesce_after")
        if "concurrency" in table:
            options["concurrency"] = table["concurrency"]
        if "rate" in table:
            extra["rate"] = Rate.parse(str(table["rate"]))
        if "cooldown" in table:
            extra["cooldown"] = parse_duration(table["cooldown"], "cooldown")
        extra["options"] = TargetOptions(**options)
    except RelayConfigError:
        raise
    except (ConfigError, ValueError) as exc:
        raise RelayConfigError(f"{where}: [relay.targets.{name}] {exc}") from None
    return extra


def store_from(value: typing.Any, base: pathlib.Path, where: str) -> OutboxStore:
    if value is None:
        return SQLiteStore(base / "dingpush-outbox.sqlite")
    if value == "memory":
        return MemoryStore()
    if not isinstance(value, str) or not value:
        raise _problem(where, "store", 'write a file path, or "memory"')
    path = pathlib.Path(value.removeprefix("sqlite:")).expanduser()
    return SQLiteStore(path if path.is_absolute() else base / path)


def _robot(name: str, entry: Mapping[str, typing.Any], extra: dict[str, typing.Any]) -> RobotTarget:
    return RobotTarget(
        name,
        str(entry["webhook"]),
        secret=entry.get("secret"),
        keyword=entry.get("keyword"),
        rate=extra.get("rate") or Rate.parse(str(entry.get("rate", DEFAULT_RATE))),
        cooldown=extra.get("cooldown", float(entry.get("cooldown", DEFAULT_COOLDOWN))),
        options=extra["options"],
        description=str(entry.get("description", "")),
    )


def build_relay(
    data: Mapping[str, typing.Any], *, path: pathlib.Path, host: str | None, port: int | None
) -> Relay:
    """A relay from a parsed configuration file (targets of kind robot and pool)."""
    where = str(path)
    relay_table = _expand(dict(data.get("relay") or {}), where, "relay")
    per_target = relay_table.get("targets") or {}
    settings = settings_from(relay_table, where)
    if host is not None or port is not None:
        settings = dataclasses.replace(
            settings,
            host=settings.host if host is None else host,
            port=settings.port if port is None else port,
        )
    entries = _expand(dict(data.get("targets") or {}), where, "targets")
    for name in per_target:
        if name not in entries:
            raise _problem(where, f"targets.{name}", f"there is no [targets.{name}] to relay to")
    targets: list[RelayTarget] = []
    for name, entry in entries.items():
        extra = options_from(per_target.get(name) or {}, name, where)
        kind = entry.get("kind", "robot")
        if kind == "robot":
            targets.append(_robot(name, entry, extra))
        elif kind == "pool":
            members = [entries[m] for m in entry.get("members", [])]
            targets.append(
                PoolTarget(
                    name,
                    [str(m["webhook"]) for m in members],
                    rate=extra.get("rate", DEFAULT_RATE),
                    options=extra["options"],
                )
            )
    if not targets:
        raise RelayConfigError(f"{where}: no [targets.NAME] to relay to: add at least one")
    return Relay(
        targets, store=store_from(relay_table.get("store"), path.parent, where), settings=settings
    )


def load_relay(
    config: str | None, *, host: str | None = None, port: int | None = None
) -> tuple[Relay, str] | None:
    """The relay of the configuration file, or None when there is none (embedded default)."""
    candidate = config or os.environ.get("DINGPUSH_CONFIG")
    if candidate is None and pathlib.Path("dingpush.toml").is_file():
        candidate = "dingpush.toml"
    if candidate is None:
        return None
    path = pathlib.Path(candidate).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RelayConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RelayConfigError(f"{path}: not valid TOML: {exc}") from None
    return build_relay(data, path=path, host=host, port=port), str(path)
