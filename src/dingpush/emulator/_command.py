"""``dingpush emulator`` and ``python -m dingpush.emulator``: one command, two entry points.

Both read the options declared in ``dingpush.config.EMULATOR_OPTIONS`` (click or argparse)
and hand their values to :meth:`EmulatorCommand.from_options`; what is served and the banner
that says how to reach it are built here, once.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dingpush import mask

from ._apps import AppConfig, parse_app_spec
from ._banner import client_hints
from ._config import EmulatorOptions, RobotConfig, split_robot_spec
from ._state import Emulator

__all__ = ["DEFAULT_ROBOT", "EmulatorCommand"]

#: The robot served when the command names none.
DEFAULT_ROBOT = "sandbox:sandbox-token"


@dataclass(frozen=True, slots=True)
class EmulatorCommand:
    """What the emulator command serves: where, which robots and apps, which behaviour."""

    host: str
    port: int
    robots: tuple[RobotConfig, ...]
    apps: tuple[AppConfig, ...] = ()
    options: EmulatorOptions = field(default_factory=EmulatorOptions)
    #: Apps whose AppSecret was given (masked in the banner); a generated one is shown, as it
    #: is a local sandbox credential the user could not learn otherwise.
    given_secrets: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, values: Mapping[str, typing.Any]) -> EmulatorCommand:
        """Build from the command's values (``dingpush.config.emulator_values``).

        Raises:
            ValueError: what is wrong with a robot or an app, for a usage error.
        """
        robots = [_table_robot(table, values) for table in values.get("robot_tables", ())]
        specs = values["robots"] or (() if robots else (DEFAULT_ROBOT,))
        robots += [_spec_robot(spec, values) for spec in specs]
        names = [r.name for r in robots]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"--robot {twice[0]!r} is given twice: give each robot once")
        shared = {"users": tuple(values["app_users"]), "groups": tuple(values["app_groups"])}
        apps = [_table_app(table, shared) for table in values.get("app_tables", ())]
        given = {table["name"] for table in values.get("app_tables", ()) if "app_secret" in table}
        for spec in values["apps"]:
            apps.append(parse_app_spec(spec, **shared))
            if _has_secret(spec):
                given.add(apps[-1].name)
        return cls(
            values["host"],
            values["port"],
            tuple(robots),
            tuple(apps),
            EmulatorOptions(rate_limit_errcode=values["rate_errcode"]),
            frozenset(given),
        )

    def emulator(self) -> Emulator:
        """A new emulator with this command's robots, apps and options."""
        return Emulator(options=self.options, robots=self.robots, apps=self.apps)

    def banner(self, url: str) -> list[str]:
        """What the command prints once it listens on ``url``.

        The webhook URLs carry the tokens on purpose: they are this local emulator's own
        credentials and the user needs them to send. Signing secrets are never printed; the
        closing lines (chat view, environment) are ``client_hints``.
        """
        lines = [f"DingTalk emulator listening on {url}"]
        for robot in self.robots:
            lines.append(f"  robot {robot.name}{_traits(robot)}: {robot.webhook_url(url)}")
        for app in self.apps:
            secret = mask(app.app_secret) if app.name in self.given_secrets else app.app_secret
            groups = ", ".join(f"{cid} ({title})" for cid, title in app.groups.items()) or "none"
            lines.append(
                f"  app {app.name}: AppKey={app.app_key} AppSecret={secret} AgentId={app.agent_id}"
            )
            lines.append(f"    groups: {groups}")
        lines.extend(client_hints(url, self.robots, self.apps))
        return lines

    def run(self, echo: Callable[[str], None]) -> None:
        """Serve until Ctrl-C (``KeyboardInterrupt``), printing the banner when ready.

        Each entry point keeps its convention for the interruption: ``dingpush`` exits 130 as
        for every command, ``python -m dingpush.emulator`` 0 as a server script does.
        """
        from ._app import serve

        def ready(url: str) -> None:
            for line in self.banner(url):
                echo(line)

        serve(self.host, self.port, ready=ready, emulator=self.emulator())


def _robot(
    name: str,
    token: str | None,
    secret: str | None,
    keywords: Iterable[str],
    ips: Iterable[str],
    values: Mapping[str, typing.Any],
    rate: typing.Any = None,
    lockout: float | None = None,
) -> RobotConfig:
    rate = rate or values["rate"]
    return RobotConfig(
        name,
        token or f"{name}-token",
        secret=secret or None,
        keywords=tuple(dict.fromkeys((*keywords, *values["keywords"]))),
        ip_allowlist=tuple(dict.fromkeys((*ips, *values["ips"]))),
        rate_limit=rate.limit,
        rate_window=rate.window,
        lockout=values["lockout"] if lockout is None else lockout,
    )


def _spec_robot(spec: str, values: Mapping[str, typing.Any]) -> RobotConfig:
    name, token, secret, keywords = split_robot_spec(spec)
    return _robot(name, token, secret, keywords, (), values)


def _table_robot(table: Mapping[str, typing.Any], values: Mapping[str, typing.Any]) -> RobotConfig:
    """``[emulator.robots.NAME]``: its own keys are more specific than the shared ones."""
    return _robot(
        table["name"],
        table.get("token"),
        table.get("secret"),
        table["keywords"],
        table["ip_allowlist"],
        values,
        table.get("rate"),
        table.get("lockout"),
    )


def _table_app(table: Mapping[str, typing.Any], shared: Mapping[str, typing.Any]) -> AppConfig:
    # Credentials left out are generated like real ones, as for --app NAME.
    spec = ":".join((table["name"], table.get("app_key", ""), table.get("app_secret", "")))
    return parse_app_spec(
        spec,
        users=tuple(dict.fromkeys((*table["users"], *shared["users"]))),
        groups=tuple(dict.fromkeys((*table["groups"], *shared["groups"]))),
    )


def _has_secret(app_spec: str) -> bool:
    parts = app_spec.split(":", 2)
    return len(parts) == 3 and bool(parts[2])


def _traits(robot: RobotConfig) -> str:
    traits = []
    if robot.secret:
        traits.append("signed")
    if robot.keywords:
        traits.append("keyword " + ", ".join(robot.keywords))
    if robot.ip_allowlist:
        traits.append("IPs " + ", ".join(robot.ip_allowlist))
    return f" ({', '.join(traits)})" if traits else ""
