"""What ``--to`` accepts: a target name, a webhook URL, a ``dingtalk://`` URL or an app target.

App targets as strings (``NAME`` is an ``[apps.NAME]`` table)::

    app:NAME/group/OPEN_CONVERSATION_ID             a group, through the app's robot
    app:NAME/users/USER_ID[,USER_ID…]               one-to-one chats, through the app's robot
    app:NAME/notice/AGENT_ID?users=U1,U2&departments=D1&everyone=true   a work notification

``app:NAME`` alone names the app itself (for ``dingpush token`` and ``dingpush upload``).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping

from dingpush import ConfigError, parse_robot_target
from dingpush.lowlevel import redact_url

from ._model import (
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    Config,
    RobotTarget,
    Target,
    WorkNoticeTarget,
)
from ._problems import ConfigFileError, did_you_mean

__all__ = ["APP_PREFIX", "named_target", "resolve_app", "resolve_target"]

APP_PREFIX = "app:"
_APP_FORMS = (
    "app:NAME/group/OPEN_CONVERSATION_ID, app:NAME/users/USER_ID,… or "
    "app:NAME/notice/AGENT_ID?users=…"
)
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no", "")


def _where(config: Config) -> str:
    if config.path is not None:
        return str(config.path)
    return "the environment (no configuration file found)"


def named_target(config: Config, name: str) -> Target:
    """Return the configured target ``name`` or raise the error that says what to do."""
    found = config.targets.get(name)
    if found is not None:
        return found
    unresolved = config.unresolved.get(f"targets.{name}")
    if unresolved is not None:
        raise ConfigFileError(unresolved.problems)
    known = config.target_names
    if not known:
        raise ConfigError(
            f"no target named {name!r}: no targets are configured. Create dingpush.toml with a "
            "[targets.NAME] table, or set DINGPUSH_WEBHOOK (and DINGPUSH_SECRET)"
        )
    raise ConfigError(
        f"no target named {name!r} in {_where(config)}{did_you_mean(name, known)} "
        f"(targets: {', '.join(known)}); give a target name, a webhook URL, a dingtalk:// URL "
        f"or {_APP_FORMS}"
    )


def default_target(config: Config) -> Target:
    """The target used without ``--to``: ``default``, else the only target there is."""
    if config.default is not None:
        return named_target(config, config.default)
    names = config.target_names
    if len(names) == 1:
        return named_target(config, names[0])
    if not names:
        raise ConfigError(
            "no target to send to: give --to with a webhook URL or a target name, set "
            "DINGPUSH_WEBHOOK (and DINGPUSH_SECRET), or create dingpush.toml with a "
            "[targets.NAME] table (see `dingpush config show` for where dingpush looked)"
        )
    raise ConfigError(
        f"several targets are configured ({', '.join(names)}) and none is the default: give "
        f'--to NAME, or add default = "{names[0]}" at the top of {_where(config)}'
    )


def resolve_target(
    config: Config, spec: str | None, *, env: Mapping[str, str] | None = None
) -> Target:
    """Resolve a ``--to`` value (``None`` for the default) against ``config``."""
    env = os.environ if env is None else env
    if spec is None:
        return default_target(config)
    spec = spec.strip()
    if spec in config.targets or f"targets.{spec}" in config.unresolved:
        return named_target(config, spec)
    if spec.startswith(APP_PREFIX):
        return _app_target(config, spec)
    if spec.startswith("dingtalk://"):
        webhook = parse_robot_target(spec, base_url=env.get("DINGPUSH_OAPI_BASE"))
        return RobotTarget(redact_url(spec), webhook, keyword=env.get("DINGPUSH_KEYWORD") or None)
    if spec.startswith(("https://", "http://")):
        # The secret of a URL typed on the command line comes from the environment, so that it
        # never shows in the process list or the shell history.
        secret = env.get("DINGPUSH_SECRET") or None
        if secret is not None and not secret.startswith("SEC"):
            raise ConfigError(
                "$DINGPUSH_SECRET (the signing secret for a webhook URL given with --to) does not "
                "start with SEC: set it to the whole secret shown under 加签, or unset it"
            )
        webhook = parse_robot_target(spec, secret=secret)
        return RobotTarget(webhook.display, webhook, keyword=env.get("DINGPUSH_KEYWORD") or None)
    if "://" in spec:  # a URL, not a name: say which schemes a robot target takes
        parse_robot_target(spec)
    return named_target(config, spec)


def resolve_app(config: Config, spec: str) -> AppSettings:
    """Return the app of ``NAME``, ``app:NAME`` or of an app target named ``spec``."""
    spec = spec.strip()
    if spec.startswith(APP_PREFIX):
        name = spec[len(APP_PREFIX) :].split("/", 1)[0]
        return _app(config, name)
    if spec in config.apps or f"apps.{spec}" in config.unresolved:
        return _app(config, spec)
    target = config.targets.get(spec)
    if target is None and f"targets.{spec}" in config.unresolved:
        raise ConfigFileError(config.unresolved[f"targets.{spec}"].problems)
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        return target.app
    if target is not None:
        raise ConfigError(
            f"{spec!r} is a {target.kind} target, which has no app credentials; give an app "
            "name, app:NAME, or an app-group/app-users/work-notice target"
        )
    known = sorted(config.apps)
    raise ConfigError(
        f"no app named {spec!r}{did_you_mean(spec, known)}: "
        + (f"configured apps: {', '.join(known)}" if known else "no [apps.NAME] is configured")
        + "; add [apps.NAME] with app_key and app_secret to the configuration, or set "
        "DINGPUSH_APP_KEY and DINGPUSH_APP_SECRET"
    )


def _app(config: Config, name: str) -> AppSettings:
    app = config.apps.get(name)
    if app is not None:
        return app
    unresolved = config.unresolved.get(f"apps.{name}")
    if unresolved is not None:
        raise ConfigFileError(unresolved.problems)
    known = sorted(config.apps)
    raise ConfigError(
        f"no app named {name!r}{did_you_mean(name, known)}: "
        + (f"configured apps: {', '.join(known)}" if known else "no [apps.NAME] is configured")
        + "; add [apps.NAME] with app_key and app_secret, or set DINGPUSH_APP_KEY and "
        "DINGPUSH_APP_SECRET (they define the app named 'default')"
    )


def _app_target(config: Config, spec: str) -> Target:
    rest = spec[len(APP_PREFIX) :]
    name, _, tail = rest.partition("/")
    form, _, value = tail.partition("/")
    if not name or not form:
        raise ConfigError(f"{spec!r} names an app but no destination: write {_APP_FORMS}")
    app = _app(config, name)
    if form == "group":
        if not value:
            raise ConfigError(f"{spec!r}: give the group's openConversationId after group/")
        return AppGroupTarget(spec, app, value)
    if form == "users":
        users = tuple(u.strip() for u in value.split(",") if u.strip())
        if not users:
            raise ConfigError(f"{spec!r}: give user ids after users/, separated by commas")
        return AppUsersTarget(spec, app, users)
    if form == "notice":
        return _notice(spec, app, value)
    raise ConfigError(
        f"{spec!r}: {form!r} is not an app destination"
        f"{did_you_mean(form, ('group', 'users', 'notice'))}; write {_APP_FORMS}"
    )


def _notice(spec: str, app: AppSettings, value: str) -> WorkNoticeTarget:
    agent, _, query = value.partition("?")
    if not agent.strip().isdigit():
        raise ConfigError(
            f"{spec!r}: the agent id {agent!r} is not a number; write "
            "app:NAME/notice/AGENT_ID?users=… with the AgentId from the app's page"
        )
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - {"users", "departments", "everyone"})
    if unknown:
        raise ConfigError(
            f"{spec!r}: unknown parameter {unknown[0]!r}; a work notification takes users=, "
            "departments= and everyone="
        )

    def listed(key: str) -> tuple[str, ...]:
        return tuple(v.strip() for raw in params.get(key, []) for v in raw.split(",") if v.strip())

    everyone_text = (params.get("everyone") or ["false"])[-1].lower()
    if everyone_text not in _TRUE + _FALSE:
        raise ConfigError(f"{spec!r}: everyone= takes true or false, not {everyone_text!r}")
    notice = WorkNoticeTarget(
        spec,
        app,
        int(agent),
        listed("users"),
        listed("departments"),
        everyone_text in _TRUE,
    )
    if not (notice.users or notice.departments or notice.everyone):
        raise ConfigError(
            f"{spec!r}: a work notification needs recipients: add ?users=ID,… , "
            "?departments=ID,… or ?everyone=true"
        )
    return notice
