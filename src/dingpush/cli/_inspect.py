"""``dingpush targets`` and ``dingpush config show``: what is configured, masked, and from where."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import typing

import click

from ._common import common_options
from ._state import State, get_state

if typing.TYPE_CHECKING:
    from dingpush.config import AppSettings, Config, Target

_SENSITIVE_KEY = re.compile(r"(?i)token|secret|password|passwd|dsn|key|credential")

Row = tuple[str, object, str]


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _origin(config: Config, key: str, default: str = "default") -> str:
    origin = config.origins.get(key)
    return str(origin) if origin is not None else default


def target_rows(config: Config, target: Target) -> list[Row]:
    """The effective settings of a target as (key, value, origin), secrets masked."""
    from dingpush.config import (
        AppGroupTarget,
        AppUsersTarget,
        PoolTarget,
        RobotTarget,
        WorkNoticeTarget,
    )

    # What a robot target gets without rate/cooldown: the library's own defaults.
    from dingpush.lowlevel import DEFAULT_COOLDOWN, DEFAULT_RATE

    prefix = f"targets.{target.name}"

    def row(key: str, value: object, default: str = "default") -> Row:
        return key, value, _origin(config, f"{prefix}.{key}", default)

    rows = [row("kind", target.kind, "default (a table with a webhook is a robot)")]
    if isinstance(target, RobotTarget):
        webhook_origin = _origin(config, f"{prefix}.webhook")
        rows += [
            ("webhook", target.webhook.display, webhook_origin),
            row("secret", "****" if target.webhook.secret else "", "none: unsigned"),
            row("keyword", target.keyword or "", "none"),
            row(
                "rate",
                str(target.rate or DEFAULT_RATE),
                "default (DingTalk's limit)",
            ),
            row(
                "cooldown",
                target.cooldown if target.cooldown is not None else DEFAULT_COOLDOWN,
                "default (DingTalk's 10-minute lock-out)",
            ),
        ]
        if target.webhook.secret and "targets." + target.name + ".secret" not in config.origins:
            rows[2] = ("secret", "****", webhook_origin + " (in the dingtalk:// URL)")
    elif isinstance(target, PoolTarget):
        rows.append(row("members", tuple(m.name for m in target.members)))
    elif isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        rows.append(row("app", target.app.name))
        if isinstance(target, AppGroupTarget):
            rows.append(row("open_conversation_id", target.open_conversation_id))
        if isinstance(target, AppUsersTarget):
            rows.append(row("users", target.user_ids))
        if isinstance(target, AppGroupTarget | AppUsersTarget):
            code = target.robot_code or target.app.robot_code or target.app.app_key
            rows.append(row("robot_code", code, "default (the app's AppKey)"))
        if isinstance(target, WorkNoticeTarget):
            rows += [
                row("agent_id", target.agent_id),
                row("users", target.users),
                row("departments", target.departments),
                row("everyone", target.everyone),
            ]
    if target.description:
        rows.append(row("description", target.description))
    return rows


def app_rows(config: Config, app: AppSettings) -> list[Row]:
    from dingpush import mask

    prefix = f"apps.{app.name}"

    def row(key: str, value: object, default: str = "default") -> Row:
        return key, value, _origin(config, f"{prefix}.{key}", default)

    api_env, oapi_env = os.environ.get("DINGPUSH_API_BASE"), os.environ.get("DINGPUSH_OAPI_BASE")
    rows = [
        row("app_key", app.app_key),
        row("app_secret", mask(app.app_secret)),
        row(
            "api_base",
            app.api_base or api_env or "https://api.dingtalk.com",
            "$DINGPUSH_API_BASE" if api_env else "default",
        ),
        row(
            "oapi_base",
            app.oapi_base or oapi_env or "https://oapi.dingtalk.com",
            "$DINGPUSH_OAPI_BASE" if oapi_env else "default",
        ),
        row(
            "token_cache",
            str(app.token_cache) if not isinstance(app.token_cache, bool) else app.token_cache,
            "default (~/.cache/dingpush/tokens.json)",
        ),
    ]
    if app.robot_code:
        rows.append(row("robot_code", app.robot_code))
    if app.description:
        rows.append(row("description", app.description))
    return rows


def relay_rows(config: Config) -> list[Row]:
    rows: list[Row] = []
    for key, value in config.relay.items():
        shown: object = "****" if _SENSITIVE_KEY.search(key) and value else value
        if isinstance(value, dict):
            shown = "{…}"
        elif isinstance(shown, str):
            shown = _URL_PASSWORD.sub(r"\1****@", shown)  # store = "postgresql://u:pw@…"
        rows.append((key, shown, _origin(config, f"relay.{key}", "file")))
    return rows


#: The password of a URL (``scheme://user:password@host``), as a group to keep what precedes.
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the configuration as JSON.")
@common_options
def show(as_json: bool) -> None:
    """Print the effective configuration (secrets masked) and where each value came from."""
    state = get_state()
    config = state.config()
    if as_json:
        state.json(_config_json(config))
        return
    where = str(config.path) if config.path else "none found; using the environment"
    state.out(f"# configuration file: {where}")
    looked = ", ".join(
        f"{s.label} ({'found' if s.found else 'not set' if s.path is None else 'not found'})"
        for s in config.searched
    )
    if looked:
        state.out(f"# looked for: {looked}")
    for note in config.notes:
        state.out(f"# note: {note}")
    if config.default is not None:
        state.out()
        _print_rows(state, [("default", config.default, _origin(config, "default"))])
    for name in config.target_names:
        state.out(f"\n[targets.{_key(name)}]")
        unresolved = config.unresolved.get(f"targets.{name}")
        if unresolved is not None:
            for problem in unresolved.problems:
                state.out(f"# not usable now: {problem}")
            continue
        _print_rows(state, target_rows(config, config.targets[name]))
    for name in sorted(
        set(config.apps) | {k.split(".", 1)[1] for k in config.unresolved if k.startswith("apps.")}
    ):
        state.out(f"\n[apps.{_key(name)}]")
        if name not in config.apps:
            for problem in config.unresolved[f"apps.{name}"].problems:
                state.out(f"# not usable now: {problem}")
            continue
        _print_rows(state, app_rows(config, config.apps[name]))
    if config.relay:
        state.out("\n[relay]")
        _print_rows(state, relay_rows(config))
    if not config.target_names:
        state.out(
            "\n# no targets: create dingpush.toml with [targets.NAME], or set DINGPUSH_WEBHOOK"
        )


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _print_rows(state: State, rows: list[Row]) -> None:
    lines = [(f"{key} = {_value(value)}", origin) for key, value, origin in rows]
    width = min(max(len(text) for text, _ in lines), 72)
    for text, origin in lines:
        state.out(f"{text:<{width}}  # {origin}")


def _config_json(config: Config) -> dict[str, object]:
    def entries(rows: list[Row]) -> dict[str, object]:
        return {key: {"value": value, "origin": origin} for key, value, origin in rows}

    return {
        "path": str(config.path) if config.path else None,
        "searched": [
            {"label": s.label, "path": str(s.path) if s.path else None, "found": s.found}
            for s in config.searched
        ],
        "default": config.default,
        "targets": {n: entries(target_rows(config, t)) for n, t in config.targets.items()},
        "apps": {n: entries(app_rows(config, a)) for n, a in config.apps.items()},
        "relay": entries(relay_rows(config)),
        "unresolved": {k: [str(p) for p in e.problems] for k, e in config.unresolved.items()},
        "notes": list(config.notes),
    }


@click.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print the targets as JSON.")
@common_options
def targets(as_json: bool) -> None:
    """List the configured targets (secrets masked)."""
    state = get_state()
    config = state.config()
    rows: list[tuple[str, str, str, str]] = []
    for name in config.target_names:
        target = config.targets.get(name)
        default = "default" if name == config.default else ""
        if target is None:
            problem = config.unresolved[f"targets.{name}"].problems[0]
            rows.append((name, "?", f"not usable now: {problem.message}", default))
        else:
            note = ", ".join(filter(None, [default, target.description]))
            rows.append((name, target.kind, target.destination, note))
    if as_json:
        state.json(
            [dict(zip(("name", "kind", "destination", "note"), r, strict=True)) for r in rows]
        )
        return
    if not rows:
        state.out(
            "no targets configured: create dingpush.toml with [targets.NAME], "
            "or set DINGPUSH_WEBHOOK"
        )
        return
    state.out(_table(["NAME", "KIND", "DESTINATION", "NOTE"], rows), nl=False)


def _table(headers: list[str], rows: typing.Sequence[tuple[str, ...]]) -> str:
    """Render a table with Rich into text (so that the output is masked like the rest)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 160
    Console(file=buffer, width=width, no_color=True, highlight=False).print(table)
    return buffer.getvalue()
