"""Validation of a parsed configuration file into targets and apps, with a problem per mistake.

Every problem names the key and its line; all of them are reported at once. A value that
refers to an unset environment variable does not fail the file: the target (or app) that holds
it is set aside as *unresolved*, so one CI job's missing secret does not break another's target.
"""

from __future__ import annotations

import pathlib
import re
import typing
import urllib.parse
from collections.abc import Callable, Mapping

from dingpush import ConfigError, Rate, WebhookTarget, parse_robot_target

from ._interpolate import BadReference, MissingVariable, interpolate
from ._model import (
    KINDS,
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    Origin,
    PoolTarget,
    RobotTarget,
    Target,
    WorkNoticeTarget,
)
from ._problems import ConfigFileError, Problem, did_you_mean
from ._source import ConfigSource, KeyPath

__all__ = ["NAME_PATTERN", "Schema"]

#: Target and app names: they appear in ``--to`` and in ``app:NAME/…``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}

TOP_LEVEL = ("default", "targets", "apps", "relay")
ROBOT_KEYS = ("kind", "webhook", "secret", "keyword", "rate", "cooldown", "description")
POOL_KEYS = ("kind", "members", "description")
APP_GROUP_KEYS = ("kind", "app", "open_conversation_id", "robot_code", "description")
APP_USERS_KEYS = ("kind", "app", "users", "robot_code", "description")
WORK_NOTICE_KEYS = ("kind", "app", "agent_id", "users", "departments", "everyone", "description")
APP_KEYS = (
    "app_key",
    "app_secret",
    "api_base",
    "oapi_base",
    "token_cache",
    "robot_code",
    "description",
)
_KIND_KEYS = {
    "robot": ROBOT_KEYS,
    "pool": POOL_KEYS,
    "app-group": APP_GROUP_KEYS,
    "app-users": APP_USERS_KEYS,
    "work-notice": WORK_NOTICE_KEYS,
}
_SECRET_FIX = (
    "copy the whole secret shown under 加签 in the robot's security settings "
    "(it starts with SEC), or remove secret if signing is off"
)
_SKIP = object()


class _Unset(Exception):
    """Raised inside a reader when a value cannot be read; the problem is already recorded."""


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a table" if isinstance(value, dict) else "a list"
    )


class Schema:
    """Reads one parsed file; ``problems`` and ``unresolved`` collect what went wrong."""

    def __init__(self, source: ConfigSource, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[Problem] = []
        self.origins: dict[str, Origin] = {}
        self.unresolved: dict[str, ConfigFileError] = {}
        self._missing: list[Problem] = []

    # -- reporting -------------------------------------------------------------------------

    def problem(self, path: KeyPath, message: str, fix: str = "") -> None:
        self.problems.append(
            Problem(self.source.path, self.source.line_of(path), ".".join(path), message, fix)
        )

    def fail(self, path: KeyPath, message: str, fix: str = "") -> typing.NoReturn:
        self.problem(path, message, fix)
        raise _Unset

    def _origin(self, path: KeyPath, variables: tuple[str, ...] = ()) -> None:
        line = self.source.locator.exact(path) or self.source.line_of(path)
        self.origins[".".join(path)] = Origin("file", self.source.path, line, variables)

    # -- typed readers ---------------------------------------------------------------------

    def raw(self, table: Mapping[str, typing.Any], path: KeyPath, *, required: bool) -> typing.Any:
        value = table.get(path[-1])
        if value is None and required:
            self.fail(path, "missing", f"add {path[-1]} = … to [{'.'.join(path[:-1])}]")
        return value

    def text(
        self, table: Mapping[str, typing.Any], path: KeyPath, *, required: bool = False
    ) -> str | None:
        value = self.raw(table, path, required=required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(path, f"must be a string, not {_type_name(value)}", 'quote it: "…"')
        return self._interpolated(value, path)

    def nonempty(
        self, table: Mapping[str, typing.Any], path: KeyPath, *, required: bool
    ) -> str | None:
        value = self.text(table, path, required=required)
        if value is not None and not value.strip():
            self.fail(path, "is empty", f"give a value or remove {path[-1]}")
        return value

    def _interpolated(self, value: str, path: KeyPath) -> str:
        try:
            result, used = interpolate(value, self.env)
        except MissingVariable as missing:
            self._missing.append(
                Problem(
                    self.source.path,
                    self.source.line_of(path),
                    ".".join(path),
                    f"refers to ${{{missing.name}}}, which is not set",
                    f"export {missing.name}=… in the environment that runs dingpush, or write "
                    f"${{{missing.name}:-fallback}}",
                )
            )
            raise _Unset from None
        except BadReference as exc:
            self.fail(path, str(exc), "write ${NAME}, ${NAME:-fallback}, or $$ for a literal $")
        self._origin(path, used)
        return result

    def strings(
        self, table: Mapping[str, typing.Any], path: KeyPath, *, required: bool = False
    ) -> tuple[str, ...]:
        value = self.raw(table, path, required=required)
        if value is None:
            return ()
        example = f'{path[-1]} = ["a", "b"]'
        if not isinstance(value, list):
            self.fail(path, f"must be a list, not {_type_name(value)}", f"write {example}")
        items: list[str] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)  # department ids are often written as numbers
            if not isinstance(item, str):
                self.fail(path, f"must list strings, not {_type_name(item)}", f"write {example}")
            items.append(self._interpolated(item, path))
        if required and not any(i.strip() for i in items):
            self.fail(path, "is empty", f"write {example}")
        if any(not i.strip() for i in items):
            self.fail(path, "contains an empty entry", "remove the empty string")
        return tuple(items)

    def integer(
        self, table: Mapping[str, typing.Any], path: KeyPath, *, required: bool
    ) -> int | None:
        value = self.raw(table, path, required=required)
        if isinstance(value, str):  # "${AGENT_ID}" arrives as text
            value = self._interpolated(value, path).strip()
            if value.isdigit():
                return int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            self._origin(path)
            return value
        if value is None:
            return None
        self.fail(path, f"must be an integer, not {value!r}", f"write {path[-1]} = 123456")

    def boolean(self, table: Mapping[str, typing.Any], path: KeyPath) -> bool:
        value = self.raw(table, path, required=False)
        if value is None:
            return False
        if isinstance(value, str):
            text = self._interpolated(value, path).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no", ""):
                return False
        elif isinstance(value, bool):
            self._origin(path)
            return value
        self.fail(path, f"must be true or false, not {value!r}", f"write {path[-1]} = true")

    def keys(
        self, table: Mapping[str, typing.Any], path: KeyPath, allowed: tuple[str, ...], what: str
    ) -> None:
        for key in table:
            if key not in allowed:
                self.problem(
                    (*path, key),
                    f"unknown key for {what}{did_you_mean(key, allowed)}",
                    f"use one of {', '.join(allowed)}",
                )

    # -- the file ---------------------------------------------------------------------------

    def table(self, data: Mapping[str, typing.Any], path: KeyPath) -> dict[str, typing.Any]:
        value = data.get(path[-1], {})
        if not isinstance(value, dict):
            self.problem(
                path, f"must be a table, not {_type_name(value)}", f"write [{'.'.join(path)}]"
            )
            return {}
        return value

    def read(
        self,
    ) -> tuple[dict[str, Target], dict[str, AppSettings], str | None, dict[str, typing.Any]]:
        """Validate the whole file; raise :class:`ConfigFileError` listing every problem."""
        data = self.source.data
        for key in data:
            if key not in TOP_LEVEL:
                hint = did_you_mean(key, TOP_LEVEL)
                self.problem(
                    (key,),
                    f"unknown key{hint}",
                    "the top level takes default, [targets.NAME], [apps.NAME] and [relay]",
                )
        apps = self._each(self.table(data, ("apps",)), "apps", self._app)
        entries = self.table(data, ("targets",))
        robots = {n: e for n, e in entries.items() if self._kind(n, e) == "robot"}
        targets: dict[str, Target] = dict(self._each(robots, "targets", self._robot))
        rest = {n: e for n, e in entries.items() if n not in robots}
        targets.update(self._each(rest, "targets", lambda n, e: self._target(n, e, targets, apps)))
        default = self._default(data, targets)
        relay = self.table(data, ("relay",))
        for key in relay:  # kept as written for the relay, which validates it; lines for show
            self._origin(("relay", key))
        if self.problems:
            raise ConfigFileError(self.problems)
        return targets, apps, default, relay

    def _each(
        self,
        table: Mapping[str, typing.Any],
        section: str,
        build: Callable[[str, typing.Any], typing.Any],
    ) -> dict[str, typing.Any]:
        built: dict[str, typing.Any] = {}
        for name, entry in table.items():
            if not NAME_PATTERN.fullmatch(name):
                self.problem(
                    (section, name),
                    "is not a usable name",
                    "use letters, digits, '-', '_' and '.', starting with a letter or digit",
                )
                continue
            self._missing = []
            try:
                value = build(name, entry)
            except _Unset:
                value = _SKIP
            if self._missing:
                self.unresolved[f"{section}.{name}"] = ConfigFileError(self._missing)
            elif value is not _SKIP:
                built[name] = value
        return built

    def _kind(self, name: str, entry: typing.Any) -> str | None:
        if isinstance(entry, str):
            return "robot"
        if not isinstance(entry, dict):
            return None
        kind = entry.get("kind")
        if kind is None:
            return _infer_kind(entry)
        return kind if kind in KINDS else None

    def _target(
        self,
        name: str,
        entry: typing.Any,
        targets: Mapping[str, Target],
        apps: Mapping[str, AppSettings],
    ) -> Target:
        path = ("targets", name)
        if not isinstance(entry, dict):
            self.fail(
                path,
                f"must be a table or a webhook string, not {_type_name(entry)}",
                f'write [targets.{name}] with kind = "robot" and webhook = "https://…"',
            )
        kind = entry.get("kind")
        if kind is None:
            guess = _guess_kind(entry)
            self.fail(
                path,
                "has no kind" + (f"; it looks like a {guess} target" if guess else ""),
                f'add kind = "{guess or "robot"}" (one of {", ".join(KINDS)})',
            )
        if not isinstance(kind, str) or kind not in KINDS:
            self.fail(
                (*path, "kind"),
                f"{kind!r} is not a target kind{did_you_mean(str(kind), KINDS)}",
                f"use one of {', '.join(KINDS)}",
            )
        self.keys(entry, path, _KIND_KEYS[kind], f"a {kind} target")
        self._origin((*path, "kind"))
        description = self.text(entry, (*path, "description")) or ""
        if kind == "pool":
            return self._pool(name, entry, targets, description)
        app = self._app_of(name, entry, apps)
        if kind == "app-group":
            return self._app_group(name, entry, app, description)
        if kind == "app-users":
            robot_code = self.nonempty(entry, (*path, "robot_code"), required=False)
            users = self.strings(entry, (*path, "users"), required=True)
            return AppUsersTarget(name, app, users, robot_code, description)
        return self._work_notice(name, entry, app, description)

    # -- robots and pools ------------------------------------------------------------------

    def _robot(self, name: str, entry: typing.Any) -> RobotTarget:
        path = ("targets", name)
        if isinstance(entry, str):  # [targets] ops = "https://…" is a robot with only a webhook
            entry = {"webhook": entry}
        self.keys(entry, path, ROBOT_KEYS, "a robot target")
        secret = self.nonempty(entry, (*path, "secret"), required=False)
        if secret is not None and not secret.startswith("SEC"):
            self.problem((*path, "secret"), "does not start with SEC", _SECRET_FIX)
        webhook_key = (*path, "webhook")
        webhook = self._webhook(self.text(entry, webhook_key, required=True) or "", webhook_key)
        keyword = self.nonempty(entry, (*path, "keyword"), required=False)
        rate = self._rate(entry, (*path, "rate"))
        cooldown = self._duration(entry, (*path, "cooldown"))
        description = self.text(entry, (*path, "description")) or ""
        if webhook is None or (secret is not None and not secret.startswith("SEC")):
            raise _Unset
        if secret is not None:
            webhook = WebhookTarget(
                webhook.endpoint, webhook.token, secret, webhook.mentions, webhook.markdown
            )
        return RobotTarget(name, webhook, keyword, rate, cooldown, description)

    def _webhook(self, value: str, key: KeyPath) -> WebhookTarget | None:
        try:
            return parse_robot_target(value, base_url=self.env.get("DINGPUSH_OAPI_BASE"))
        except ConfigError as exc:
            text = str(exc)
            if "SEC" in text:  # the secret part of a dingtalk:// URL
                self.problem(
                    key, "the secret in the dingtalk:// URL does not start with SEC", _SECRET_FIX
                )
            else:
                self.problem(key, text, "copy the webhook URL from the group's robot settings")
            return None

    def _rate(self, entry: Mapping[str, typing.Any], path: KeyPath) -> Rate | None:
        text = self.text(entry, path)
        if text is None:
            return None
        try:
            return Rate.parse(text)
        except ValueError:
            self.fail(
                path, f"{text!r} is not a rate", 'write COUNT/PERIOD, e.g. "20/60s" or "20/1m"'
            )

    def _duration(self, entry: Mapping[str, typing.Any], path: KeyPath) -> float | None:
        value = self.raw(entry, path, required=False)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._origin(path)
            seconds: float | None = float(value)
        elif isinstance(value, str):
            seconds = _parse_duration(self._interpolated(value, path))
        else:
            seconds = None
        if seconds is None or seconds < 0:
            self.fail(path, f"{value!r} is not a duration", 'write seconds (600) or "10m"')
        return seconds

    def _pool(
        self,
        name: str,
        entry: Mapping[str, typing.Any],
        targets: Mapping[str, Target],
        description: str,
    ) -> PoolTarget:
        path = ("targets", name, "members")
        mark = len(self.problems)
        broken = False
        members: list[RobotTarget] = []
        for index, member in enumerate(self.strings(entry, path, required=True)):
            if "://" in member:
                parsed = self._webhook(member, path)
                if parsed is not None:
                    members.append(RobotTarget(f"{name}[{index}]", parsed))
                continue
            declared = self.source.data.get("targets", {})
            found = targets.get(member)
            if isinstance(found, RobotTarget):
                if found in members:
                    self.problem(path, f"lists {member!r} twice", "list each robot once")
                members.append(found)
            elif f"targets.{member}" in self.unresolved:
                self._missing.extend(self.unresolved[f"targets.{member}"].problems)
            elif member in declared:
                kind = self._kind(member, declared[member])
                if kind != "robot":
                    self.problem(
                        path,
                        f"{member!r} is not a robot target (its kind is {kind or 'unknown'})",
                        "pool members must be robot targets",
                    )
                broken = True  # a robot with problems of its own, reported on its lines
            else:
                known = sorted(n for n, t in targets.items() if isinstance(t, RobotTarget))
                self.problem(
                    path,
                    f"no robot target named {member!r}{did_you_mean(member, known)}",
                    f"define [targets.{member}] with a webhook, or list one of: "
                    + (", ".join(known) or "none yet"),
                )
        if broken or self._missing or len(self.problems) > mark:
            raise _Unset
        return PoolTarget(name, tuple(members), description)

    # -- apps ------------------------------------------------------------------------------

    def _app(self, name: str, entry: typing.Any) -> AppSettings:
        path = ("apps", name)
        if not isinstance(entry, dict):
            self.fail(
                path,
                f"must be a table, not {_type_name(entry)}",
                f"write [apps.{name}] with app_key and app_secret",
            )
        self.keys(entry, path, APP_KEYS, "an app")
        app_key = self.nonempty(entry, (*path, "app_key"), required=True)
        app_secret = self.nonempty(entry, (*path, "app_secret"), required=True)
        if app_secret is not None and app_secret.startswith("SEC"):
            self.fail(
                (*path, "app_secret"),
                "looks like a custom robot's signing secret (SEC…), not an AppSecret",
                "copy the AppSecret (Client Secret) from the app's 'Credentials and basic "
                "info' page in the developer console",
            )
        api_base = self._base(entry, (*path, "api_base"))
        oapi_base = self._base(entry, (*path, "oapi_base"))
        token_cache = self._token_cache(entry, (*path, "token_cache"))
        robot_code = self.nonempty(entry, (*path, "robot_code"), required=False)
        description = self.text(entry, (*path, "description")) or ""
        assert app_key is not None and app_secret is not None  # required=True raised otherwise
        return AppSettings(
            name, app_key, app_secret, api_base, oapi_base, token_cache, robot_code, description
        )

    def _base(self, entry: Mapping[str, typing.Any], path: KeyPath) -> str | None:
        value = self.text(entry, path)
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(
                path, f"{value!r} is not an http(s) URL", "write e.g. https://api.dingtalk.com"
            )
        return value.rstrip("/")

    def _token_cache(self, entry: Mapping[str, typing.Any], path: KeyPath) -> bool | pathlib.Path:
        value = self.raw(entry, path, required=False)
        if value is None:
            return True
        if isinstance(value, bool):
            self._origin(path)
            return value
        if isinstance(value, str) and value.strip():
            return pathlib.Path(self._interpolated(value, path)).expanduser()
        self.fail(
            path,
            f"must be true, false or a file path, not {value!r}",
            'write token_cache = false, or a path such as "~/.cache/dingpush/tokens.json"',
        )

    def _app_of(
        self, name: str, entry: Mapping[str, typing.Any], apps: Mapping[str, AppSettings]
    ) -> AppSettings:
        path = ("targets", name, "app")
        app_name = self.nonempty(entry, path, required=True) or ""
        app = apps.get(app_name)
        if app is not None:
            return app
        if f"apps.{app_name}" in self.unresolved:
            self._missing.extend(self.unresolved[f"apps.{app_name}"].problems)
            raise _Unset
        if app_name in self.source.data.get("apps", {}):
            raise _Unset  # the app itself has a problem, reported on its own lines
        self.fail(
            path,
            f"no [apps.{app_name}] in the file{did_you_mean(app_name, apps)}",
            f"add [apps.{app_name}] with app_key and app_secret"
            + (f", or use one of: {', '.join(sorted(apps))}" if apps else ""),
        )

    def _app_group(
        self, name: str, entry: Mapping[str, typing.Any], app: AppSettings, description: str
    ) -> AppGroupTarget:
        path = ("targets", name)
        cid = self.nonempty(entry, (*path, "open_conversation_id"), required=True) or ""
        if cid.startswith("chat"):
            self.fail(
                (*path, "open_conversation_id"),
                f"{cid!r} is a chatId, not an openConversationId (cid…)",
                "convert it with POST /v1.0/im/chat/{chatId}/convertToOpenConversationId, or take "
                "conversationId from a robot callback",
            )
        robot_code = self.nonempty(entry, (*path, "robot_code"), required=False)
        return AppGroupTarget(name, app, cid, robot_code, description)

    def _work_notice(
        self, name: str, entry: Mapping[str, typing.Any], app: AppSettings, description: str
    ) -> WorkNoticeTarget:
        path = ("targets", name)
        agent_id = self.integer(entry, (*path, "agent_id"), required=True)
        users = self.strings(entry, (*path, "users"))
        departments = self.strings(entry, (*path, "departments"))
        everyone = self.boolean(entry, (*path, "everyone"))
        if not (users or departments or everyone):
            self.fail(
                path,
                "names no recipients",
                'add users = ["userid"], departments = ["123"] or everyone = true',
            )
        assert agent_id is not None
        return WorkNoticeTarget(name, app, agent_id, users, departments, everyone, description)

    # -- default ---------------------------------------------------------------------------

    def _default(self, data: Mapping[str, typing.Any], targets: Mapping[str, Target]) -> str | None:
        path = ("default",)
        try:
            name = self.text(data, path)
        except _Unset:
            return None
        if name is None:
            return None
        declared = self.source.data.get("targets", {})
        if name not in declared:
            self.problem(
                path,
                f"no target named {name!r}{did_you_mean(name, declared)}",
                "set default to one of: "
                + (", ".join(sorted(declared)) or "(define a [targets.NAME] first)"),
            )
        return name


def _infer_kind(entry: Mapping[str, typing.Any]) -> str | None:
    """The kind a table without ``kind`` most likely means, for robots (the common case)."""
    if "members" in entry or "app" in entry or "agent_id" in entry:
        return None
    return "robot"


def _guess_kind(entry: Mapping[str, typing.Any]) -> str | None:
    if "members" in entry:
        return "pool"
    if "agent_id" in entry:
        return "work-notice"
    if "open_conversation_id" in entry:
        return "app-group"
    if "users" in entry:
        return "app-users"
    return None


def _parse_duration(text: str) -> float | None:
    match = _DURATION.fullmatch(text)
    if not match:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
