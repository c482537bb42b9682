"""What a configuration holds: targets of five kinds, app credentials, where values came from."""

from __future__ import annotations

import pathlib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dingpush import Rate, WebhookTarget

from ._problems import ConfigFileError

__all__ = [
    "KINDS",
    "AppGroupTarget",
    "AppSettings",
    "AppTarget",
    "AppUsersTarget",
    "Config",
    "Origin",
    "PoolTarget",
    "RobotTarget",
    "SearchStep",
    "Target",
    "WorkNoticeTarget",
]

#: The kinds of ``[targets.NAME]``, in the order the documentation presents them.
KINDS = ("robot", "pool", "app-group", "app-users", "work-notice")

OriginKind = typing.Literal["file", "environment", "default", "command line"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an effective value came from: a file and line, an environment variable, a default."""

    kind: OriginKind
    path: pathlib.Path | None = None
    line: int | None = None
    #: The environment variables the value read (``${VAR}`` in a file, or the variable itself).
    variables: tuple[str, ...] = ()
    note: str = ""

    def __str__(self) -> str:
        from ._problems import display_path

        if self.kind == "file":
            text = display_path(self.path) + (f":{self.line}" if self.line else "")
            if self.variables:
                text += " via " + ", ".join(f"${{{v}}}" for v in self.variables)
        elif self.kind == "environment":
            text = " ".join(f"${v}" for v in self.variables) or "environment"
        else:
            text = self.kind
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True, slots=True)
class AppSettings:
    """``[apps.NAME]``: an enterprise app's credentials and hosts."""

    name: str
    app_key: str
    app_secret: str = field(repr=False)
    api_base: str | None = None
    oapi_base: str | None = None
    #: ``True`` for the default on-disk token cache, ``False`` for none, or a directory.
    token_cache: bool | pathlib.Path = True
    robot_code: str | None = None
    description: str = ""

    def __repr__(self) -> str:
        return f"AppSettings({self.name!r}, app_key={self.app_key!r}, app_secret='****')"


@dataclass(frozen=True, slots=True)
class RobotTarget:
    """``kind = "robot"``: one custom robot's webhook."""

    kind: typing.ClassVar[str] = "robot"

    name: str
    webhook: WebhookTarget
    keyword: str | None = None
    rate: Rate | None = None
    cooldown: float | None = None
    description: str = ""

    @property
    def destination(self) -> str:
        return self.webhook.display

    def secrets(self) -> Iterator[str]:
        yield self.webhook.token
        if self.webhook.secret:
            yield self.webhook.secret


@dataclass(frozen=True, slots=True)
class PoolTarget:
    """``kind = "pool"``: several robots in one group acting as one target."""

    kind: typing.ClassVar[str] = "pool"

    name: str
    members: tuple[RobotTarget, ...]
    description: str = ""

    @property
    def destination(self) -> str:
        return f"{len(self.members)} robots: " + ", ".join(m.name for m in self.members)

    def secrets(self) -> Iterator[str]:
        for member in self.members:
            yield from member.secrets()


def _app_secrets(app: AppSettings) -> Iterator[str]:
    yield app.app_secret


@dataclass(frozen=True, slots=True)
class AppGroupTarget:
    """``kind = "app-group"``: a group, through an enterprise app's robot."""

    kind: typing.ClassVar[str] = "app-group"

    name: str
    app: AppSettings
    open_conversation_id: str
    robot_code: str | None = None
    description: str = ""

    @property
    def sending_robot_code(self) -> str | None:
        """The robot that sends: this target's ``robot_code``, else its app's (None: the AppKey)."""
        return self.robot_code or self.app.robot_code

    @property
    def destination(self) -> str:
        return f"app {self.app.name}, group {self.open_conversation_id}"

    def secrets(self) -> Iterator[str]:
        return _app_secrets(self.app)


@dataclass(frozen=True, slots=True)
class AppUsersTarget:
    """``kind = "app-users"``: one-to-one chats with users, through an app's robot."""

    kind: typing.ClassVar[str] = "app-users"

    name: str
    app: AppSettings
    user_ids: tuple[str, ...]
    robot_code: str | None = None
    description: str = ""

    @property
    def sending_robot_code(self) -> str | None:
        """The robot that sends: this target's ``robot_code``, else its app's (None: the AppKey)."""
        return self.robot_code or self.app.robot_code

    @property
    def destination(self) -> str:
        return f"app {self.app.name}, users {', '.join(self.user_ids)}"

    def secrets(self) -> Iterator[str]:
        return _app_secrets(self.app)


@dataclass(frozen=True, slots=True)
class WorkNoticeTarget:
    """``kind = "work-notice"``: a work notification (工作通知) from an app's agent."""

    kind: typing.ClassVar[str] = "work-notice"

    name: str
    app: AppSettings
    agent_id: int
    users: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    everyone: bool = False
    description: str = ""

    @property
    def destination(self) -> str:
        whom = []
        if self.everyone:
            whom.append("everyone")
        if self.users:
            whom.append("users " + ", ".join(self.users))
        if self.departments:
            whom.append("departments " + ", ".join(self.departments))
        return f"app {self.app.name}, agent {self.agent_id}, " + "; ".join(whom)

    def secrets(self) -> Iterator[str]:
        return _app_secrets(self.app)


Target: typing.TypeAlias = (
    RobotTarget | PoolTarget | AppGroupTarget | AppUsersTarget | WorkNoticeTarget
)
AppTarget: typing.TypeAlias = AppGroupTarget | AppUsersTarget | WorkNoticeTarget


@dataclass(frozen=True, slots=True)
class SearchStep:
    """One place the configuration file was looked for, in lookup order."""

    label: str
    path: pathlib.Path | None
    found: bool


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration: targets, apps, the default target and their origins.

    ``unresolved`` holds the targets and apps that refer to an environment variable that is not
    set (keyed ``targets.NAME`` / ``apps.NAME``): the rest of the configuration stays usable,
    and using one of those raises the error that names the variable.
    """

    path: pathlib.Path | None
    targets: Mapping[str, Target]
    apps: Mapping[str, AppSettings]
    default: str | None = None
    #: Top-level tables read elsewhere (``relay``), kept as written: see ``KEPT_TABLES``.
    tables: Mapping[str, Mapping[str, typing.Any]] = field(default_factory=dict)
    origins: Mapping[str, Origin] = field(default_factory=dict)
    unresolved: Mapping[str, ConfigFileError] = field(default_factory=dict)
    searched: tuple[SearchStep, ...] = ()
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "environment"
        return f"<Config {where}: {len(self.targets)} targets, {len(self.apps)} apps>"

    @property
    def relay(self) -> Mapping[str, typing.Any]:
        """The ``[relay]`` table as written (``dingpush.relay`` reads and checks it)."""
        return self.tables.get("relay", {})

    @property
    def target_names(self) -> list[str]:
        """Every configured target name, including those that cannot be resolved now."""
        names = list(self.targets)
        names += [k.split(".", 1)[1] for k in self.unresolved if k.startswith("targets.")]
        return sorted(dict.fromkeys(names))

    def target(self, name: str) -> Target:
        """Return the configured target ``name``; raise a ``ConfigError`` that says why not."""
        from ._spec import named_target

        return named_target(self, name)

    def resolve(self, spec: str | None, *, env: Mapping[str, str] | None = None) -> Target:
        """Resolve what ``--to`` accepts: a name, a webhook or dingtalk:// URL, an app target.

        ``None`` means the default target. ``env`` (default ``os.environ``) supplies
        ``DINGPUSH_SECRET``/``DINGPUSH_KEYWORD`` for a webhook URL given on the command line.
        """
        from ._spec import resolve_target

        return resolve_target(self, spec, env=env)

    def app(self, spec: str) -> AppSettings:
        """Return the app named by ``spec``: ``NAME``, ``app:NAME`` or an app target's name."""
        from ._spec import resolve_app

        return resolve_app(self, spec)

    def secrets(self) -> list[str]:
        """Every secret the configuration holds: webhook tokens, SEC secrets, AppSecrets."""
        found: list[str] = []
        for target in self.targets.values():
            found.extend(target.secrets())
        found.extend(app.app_secret for app in self.apps.values())
        return list(dict.fromkeys(found))
