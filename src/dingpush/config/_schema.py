"""``[targets.NAME]``, ``[apps.NAME]`` and ``default``: declared tables, read with every problem.

The tables are declarations of :mod:`._reader` fields; this module adds what a declaration
cannot say: which kind a target is, which app and which robots it uses, and how the values
become the frozen targets of :mod:`._model`. Every problem names the key and its line, all of
them are reported at once and in line order: a misspelt ``kind`` does not hide the rest of its
target, and neither does an unset ``${VAR}``. A value that refers to an unset variable does not
fail the file: the target (or app) that holds it is set aside as *unresolved*, so one CI job's
missing secret does not break another's target.
"""

from __future__ import annotations

import pathlib
import re
import typing
from collections.abc import Mapping

from dingpush import ConfigError, WebhookTarget, parse_robot_target

from ._model import (
    KINDS,
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    PoolTarget,
    RobotTarget,
    Target,
    WorkNoticeTarget,
)
from ._problems import ConfigFileError, closest, did_you_mean
from ._reader import (
    BOOLEAN,
    DURATION,
    HTTP_URL,
    INTEGER,
    NONEMPTY,
    RATE,
    STRINGS,
    TEXT,
    Field,
    Invalid,
    Kind,
    Reader,
    Table,
    Unusable,
    Values,
    type_name,
)

if typing.TYPE_CHECKING:
    from ._source import ConfigSource, KeyPath

__all__ = ["KEPT_TABLES", "NAME_PATTERN", "TABLES", "TOP_LEVEL", "Schema"]

#: Target and app names: they appear in ``--to`` and in ``app:NAME/…``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: Top-level tables that other parts of dingpush read (the relay reads ``[relay]``, the emulator
#: commands ``[emulator]``): the CLI keeps them as written, in ``Config.tables``. A new one is
#: added here and declared where it is read (see docs/architecture.md).
KEPT_TABLES = ("relay", "emulator", "routes", "templates", "people", "policies", "schedules")
TOP_LEVEL = ("default", "targets", "apps", *KEPT_TABLES)

_SECRET_FIX = (
    "copy the whole secret shown under 加签 in the robot's security settings "
    "(it starts with SEC), or remove secret if signing is off"
)


def _signing_secret(value: str) -> str | None:
    return None if value.startswith("SEC") else "does not start with SEC"


def _not_a_chat_id(value: str) -> str | None:
    if value.startswith("chat"):
        return f"{value!r} is a chatId, not an openConversationId (cid…)"
    return None


def _not_a_robot_secret(value: str) -> str | None:
    if value.startswith("SEC"):
        return "looks like a custom robot's signing secret (SEC…), not an AppSecret"
    return None


class _TokenCache(Kind["bool | pathlib.Path"]):
    noun = "true, false or a file path"

    def convert(
        self, value: object, field: Field[bool | pathlib.Path], from_env: bool
    ) -> bool | pathlib.Path:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false") and not from_env:
            raise Invalid(
                f"is the string {value!r}, not true or false",
                f"write token_cache = {value.strip().lower()}, without quotes",
            )
        if isinstance(value, str) and value.strip():
            return pathlib.Path(value).expanduser()
        raise Invalid(
            f"must be true, false or a file path, not {value!r}",
            'write token_cache = false, or a path such as "~/.cache/dingpush/tokens.json"',
        )


_KIND = Field("kind", TEXT, help="robot (the default), pool, app-group, app-users, work-notice")
_DESCRIPTION = Field("description", TEXT, default="", help="shown by dingpush targets")
_APP = Field("app", NONEMPTY, required=True, help="the [apps.NAME] that sends")
_ROBOT_CODE = Field("robot_code", NONEMPTY, help="the app robot's code (default: the app's)")

ROBOT = Table(
    "a robot target",
    (
        _KIND,
        Field("webhook", TEXT, required=True, help="the webhook URL, a token or dingtalk://…"),
        Field("secret", NONEMPTY, rule=_signing_secret, fix=_SECRET_FIX, help="SEC…, for 加签"),
        Field("keyword", NONEMPTY, help="a custom keyword the robot requires"),
        Field("rate", RATE, help='at most this many messages (default "20/60s")'),
        Field("cooldown", DURATION, help="rest after DingTalk throttles the robot (600)"),
        _DESCRIPTION,
    ),
)
POOL = Table(
    "a pool target",
    (
        _KIND,
        Field("members", STRINGS, required=True, help="robot target names or webhook URLs"),
        _DESCRIPTION,
    ),
)
APP_GROUP = Table(
    "an app-group target",
    (
        _KIND,
        _APP,
        Field(
            "open_conversation_id",
            NONEMPTY,
            required=True,
            rule=_not_a_chat_id,
            fix="convert it with POST /v1.0/im/chat/{chatId}/convertToOpenConversationId, or "
            "take conversationId from a robot callback",
        ),
        _ROBOT_CODE,
        _DESCRIPTION,
    ),
)
APP_USERS = Table(
    "an app-users target",
    (_KIND, _APP, Field("users", STRINGS, required=True), _ROBOT_CODE, _DESCRIPTION),
)
WORK_NOTICE = Table(
    "a work-notice target",
    (
        _KIND,
        _APP,
        Field("agent_id", INTEGER, required=True, example="123456"),
        Field("users", STRINGS, default=()),
        Field("departments", STRINGS, default=()),
        Field("everyone", BOOLEAN, default=False),
        _DESCRIPTION,
    ),
)
APP = Table(
    "an app",
    (
        Field("app_key", NONEMPTY, required=True),
        Field(
            "app_secret",
            NONEMPTY,
            required=True,
            rule=_not_a_robot_secret,
            fix="copy the AppSecret (Client Secret) from the app's 'Credentials and basic info' "
            "page in the developer console",
        ),
        Field("api_base", HTTP_URL),
        Field("oapi_base", HTTP_URL),
        Field("token_cache", _TokenCache(), default=True),
        Field("robot_code", NONEMPTY),
        _DESCRIPTION,
    ),
)
#: Each target kind's table.
TABLES: dict[str, Table] = {
    "robot": ROBOT,
    "pool": POOL,
    "app-group": APP_GROUP,
    "app-users": APP_USERS,
    "work-notice": WORK_NOTICE,
}


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


def _entry(entry: typing.Any) -> typing.Any:
    """``[targets] ops = "https://…"`` is a robot with only a webhook."""
    return {"webhook": entry} if isinstance(entry, str) else entry


def kind_of(entry: typing.Any) -> str | None:
    """The kind a target declares (or, without ``kind``, is inferred to be), when valid."""
    entry = _entry(entry)
    if not isinstance(entry, dict):
        return None
    kind = entry.get("kind")
    if kind is None:
        return _infer_kind(entry)
    return kind if kind in KINDS else None


def likely_kind(entry: typing.Any) -> str | None:
    """The kind a target means, even when its ``kind`` is misspelt or missing."""
    entry = _entry(entry)
    if not isinstance(entry, dict):
        return None
    kind = kind_of(entry)
    if kind is not None:
        return kind
    written = entry.get("kind")
    return (closest(str(written), KINDS) if written is not None else None) or _guess_kind(entry)


class Schema:
    """Reads one parsed file; ``problems`` and ``unresolved`` collect what went wrong."""

    def __init__(self, source: ConfigSource, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.reader = Reader(source, env)
        self.declared: dict[str, typing.Any] = {}

    @property
    def origins(self) -> dict[str, typing.Any]:
        return self.reader.origins

    @property
    def unresolved(self) -> dict[str, ConfigFileError]:
        return self.reader.unresolved

    def read(
        self,
    ) -> tuple[
        dict[str, Target],
        dict[str, AppSettings],
        str | None,
        dict[str, dict[str, typing.Any]],
    ]:
        """Validate the whole file; raise :class:`ConfigFileError` listing every problem."""
        reader, data = self.reader, self.source.data
        for key in data:
            if key not in TOP_LEVEL:
                reader.problem(
                    (key,),
                    f"unknown key{did_you_mean(key, TOP_LEVEL)}",
                    "the top level takes "
                    + _listed(("default", "[targets.NAME]", "[apps.NAME]", *_KEPT)),
                )
        apps = reader.each(
            reader.table(data, ("apps",)), ("apps",), self._app, valid_name=_usable_name
        )
        self.declared = reader.table(data, ("targets",))
        robots = {n: e for n, e in self.declared.items() if kind_of(e) == "robot"}
        targets: dict[str, Target] = dict(
            reader.each(robots, ("targets",), self._robot, valid_name=_usable_name)
        )
        rest = {n: e for n, e in self.declared.items() if n not in robots}
        targets.update(
            reader.each(
                rest,
                ("targets",),
                lambda n, e: self._target(n, e, targets, apps),
                valid_name=_usable_name,
            )
        )
        default = self._default(data)
        kept = {name: reader.table(data, (name,)) for name in KEPT_TABLES if name in data}
        for name, table in kept.items():  # the part that reads it validates it; lines for show
            for key in table:
                reader.record_origin((name, key))
        reader.finish()
        return targets, apps, default, kept

    # -- targets ---------------------------------------------------------------------------

    def _target(
        self,
        name: str,
        entry: typing.Any,
        targets: Mapping[str, Target],
        apps: Mapping[str, AppSettings],
    ) -> Target:
        path = ("targets", name)
        reader = self.reader
        if not isinstance(entry, dict):
            reader.fail(
                path,
                f"must be a table or a webhook string, not {type_name(entry)}",
                f'write [targets.{name}] with kind = "robot" and webhook = "https://…"',
            )
        kind = self._kind(name, entry)
        # A target whose kind is missing or misspelt is still checked as the kind it most
        # likely means, so that its other problems show now rather than after the fix.
        checked = kind or likely_kind(entry)
        if checked is None:
            raise Unusable
        if checked == "robot":
            self._robot(name, entry)
            raise Unusable
        values = reader.fields(entry, path, TABLES[checked], skip=("kind",))
        if checked == "pool":
            pool = self._pool(name, values, targets)
            if kind is None:
                raise Unusable
            return pool
        app = self._app_of(name, values, apps)
        built: Target
        if checked == "work-notice":
            built = self._work_notice(name, values, app or _NO_APP)
        values.require()
        if app is None or kind is None:
            raise Unusable
        if checked == "app-group":
            built = AppGroupTarget(
                name,
                app,
                values["open_conversation_id"],
                values.get("robot_code"),
                values["description"],
            )
        elif checked == "app-users":
            built = AppUsersTarget(
                name, app, values["users"], values.get("robot_code"), values["description"]
            )
        return built

    def _kind(self, name: str, entry: Mapping[str, typing.Any]) -> str | None:
        """The target's valid kind, or ``None`` with the problem recorded."""
        path = ("targets", name)
        kind = entry.get("kind")
        if kind is None:
            guess = _guess_kind(entry)
            self.reader.problem(
                path,
                "has no kind" + (f"; it looks like a {guess} target" if guess else ""),
                f'add kind = "{guess or "robot"}" (one of {", ".join(KINDS)})',
            )
            return None
        if not isinstance(kind, str) or kind not in KINDS:
            self.reader.problem(
                (*path, "kind"),
                f"{kind!r} is not a target kind{did_you_mean(str(kind), KINDS)}",
                f"use one of {', '.join(KINDS)}",
            )
            return None
        self.reader.record_origin((*path, "kind"))
        return kind

    def _robot(self, name: str, entry: typing.Any) -> RobotTarget:
        path = ("targets", name)
        values = self.reader.fields(_entry(entry), path, ROBOT, skip=("kind",))
        webhook = None
        if "webhook" in values:
            webhook = self._webhook(values["webhook"], (*path, "webhook"))
        values.require()
        if webhook is None:
            raise Unusable
        secret = values.get("secret")
        if secret is not None:
            webhook = WebhookTarget(
                webhook.endpoint, webhook.token, secret, webhook.mentions, webhook.markdown
            )
        return RobotTarget(
            name,
            webhook,
            values.get("keyword"),
            values.get("rate"),
            values.get("cooldown"),
            values["description"],
        )

    def _webhook(self, value: str, key: KeyPath) -> WebhookTarget | None:
        try:
            return parse_robot_target(value, base_url=self.env.get("DINGPUSH_OAPI_BASE"))
        except ConfigError as exc:
            text = str(exc)
            if "SEC" in text:  # the secret part of a dingtalk:// URL
                self.reader.problem(
                    key, "the secret in the dingtalk:// URL does not start with SEC", _SECRET_FIX
                )
            else:
                self.reader.problem(
                    key, text, "copy the webhook URL from the group's robot settings"
                )
            return None

    def _pool(self, name: str, values: Values, targets: Mapping[str, Target]) -> PoolTarget:
        path = ("targets", name, "members")
        reader = self.reader
        mark = len(reader.problems)
        usable = values.complete
        members: list[RobotTarget] = []
        for index, member in enumerate(values.get("members", ())):
            if "://" in member:
                parsed = self._webhook(member, path)
                if parsed is not None:
                    members.append(RobotTarget(f"{name}[{index}]", parsed))
                continue
            found = targets.get(member)
            if isinstance(found, RobotTarget):
                if found in members:
                    reader.problem(path, f"lists {member!r} twice", "list each robot once")
                members.append(found)
            elif f"targets.{member}" in reader.unresolved:
                reader.set_aside(reader.unresolved[f"targets.{member}"].problems)
            elif member in self.declared and likely_kind(self.declared[member]) != "robot":
                kind = likely_kind(self.declared[member])
                reader.problem(
                    path,
                    f"{member!r} is not a robot target (its kind is {kind or 'unknown'})",
                    "pool members must be robot targets",
                )
            elif member in self.declared:
                usable = False  # a robot with problems of its own, reported on its own lines
            else:
                self._unknown_member(member, path)
        if not usable or len(reader.problems) > mark:
            raise Unusable
        return PoolTarget(name, tuple(members), values["description"])

    def _unknown_member(self, member: str, path: KeyPath) -> None:
        robots = sorted(n for n, e in self.declared.items() if likely_kind(e) == "robot")
        suggestion = did_you_mean(member, robots)
        close = closest(member, robots)
        if close is not None and f"targets.{close}" in self.reader.broken:
            where = self.reader.line(("targets", close)) or 0
            side = "above" if where <= (self.reader.line(path) or 0) else "below"
            suggestion += f" {close!r} has problems of its own, {side}"
        self.reader.problem(
            path,
            f"no robot target named {member!r}{suggestion}",
            f"define [targets.{member}] with a webhook, or list one of: "
            + (", ".join(robots) or "none yet"),
        )

    def _app_of(
        self, name: str, values: Values, apps: Mapping[str, AppSettings]
    ) -> AppSettings | None:
        """The target's app, or ``None``: the rest of the target is read either way."""
        app_name = values.get("app")
        if app_name is None:
            return None
        app = apps.get(app_name)
        if app is not None:
            return app
        reader = self.reader
        if f"apps.{app_name}" in reader.unresolved:
            reader.set_aside(reader.unresolved[f"apps.{app_name}"].problems)
        elif app_name not in self.source.data.get("apps", {}):
            reader.problem(
                ("targets", name, "app"),
                f"no [apps.{app_name}] in the file{did_you_mean(app_name, apps)}",
                f"add [apps.{app_name}] with app_key and app_secret"
                + (f", or use one of: {', '.join(sorted(apps))}" if apps else ""),
            )
        # else: the app has problems of its own, reported on its own lines
        return None

    def _work_notice(self, name: str, values: Values, app: AppSettings) -> WorkNoticeTarget:
        if values.complete and not (values["users"] or values["departments"] or values["everyone"]):
            self.reader.fail(
                ("targets", name),
                "names no recipients",
                'add users = ["userid"], departments = ["123"] or everyone = true',
            )
        values.require()
        return WorkNoticeTarget(
            name,
            app,
            values["agent_id"],
            values["users"],
            values["departments"],
            values["everyone"],
            values["description"],
        )

    # -- apps ------------------------------------------------------------------------------

    def _app(self, name: str, entry: typing.Any) -> AppSettings:
        path = ("apps", name)
        if not isinstance(entry, dict):
            self.reader.fail(
                path,
                f"must be a table, not {type_name(entry)}",
                f"write [apps.{name}] with app_key and app_secret",
            )
        values = self.reader.fields(entry, path, APP)
        values.require()
        return AppSettings(
            name,
            values["app_key"],
            values["app_secret"],
            values.get("api_base"),
            values.get("oapi_base"),
            values["token_cache"],
            values.get("robot_code"),
            values["description"],
        )

    # -- default ---------------------------------------------------------------------------

    def _default(self, data: Mapping[str, typing.Any]) -> str | None:
        path = ("default",)
        value = self.reader.unit("default", lambda: self.reader.value(data, path, _DEFAULT))
        if not isinstance(value, str):
            return None
        if value not in self.declared:
            self.reader.problem(
                path,
                f"no target named {value!r}{did_you_mean(value, self.declared)}",
                "set default to one of: "
                + (", ".join(sorted(self.declared)) or "(define a [targets.NAME] first)"),
            )
        return value


_DEFAULT = Field("default", TEXT)
# The app of a work notification whose app is missing, while its own fields are checked.
_NO_APP = AppSettings("", "", "")


_KEPT = tuple(f"[{name}]" for name in KEPT_TABLES)


def _listed(items: tuple[str, ...]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def _usable_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None
