"""Finding and loading the configuration: the lookup order and the no-file environment default."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import typing
from collections.abc import Mapping

from dingpush import ConfigError, parse_robot_target

from ._model import AppSettings, Config, Origin, RobotTarget, SearchStep
from ._problems import ConfigFileError, Problem, home_relative

if typing.TYPE_CHECKING:
    from ._source import ConfigSource

__all__ = [
    "ENV_APP_KEY",
    "ENV_APP_SECRET",
    "ENV_CONFIG",
    "ENV_KEYWORD",
    "ENV_SECRET",
    "ENV_WEBHOOK",
    "find_config",
    "load_config",
    "parse_config",
]

ENV_CONFIG = "DINGPUSH_CONFIG"
ENV_WEBHOOK = "DINGPUSH_WEBHOOK"
ENV_SECRET = "DINGPUSH_SECRET"
ENV_KEYWORD = "DINGPUSH_KEYWORD"
ENV_APP_KEY = "DINGPUSH_APP_KEY"
ENV_APP_SECRET = "DINGPUSH_APP_SECRET"
LOCAL_NAME = "dingpush.toml"
DEFAULT_NAME = "default"


def user_config_path(env: Mapping[str, str]) -> pathlib.Path:
    """``$XDG_CONFIG_HOME/dingpush/config.toml``, by default ``~/.config/dingpush/config.toml``."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "dingpush" / "config.toml"


def find_config(
    explicit: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[pathlib.Path | None, tuple[SearchStep, ...]]:
    """Return the configuration file to use, and every place looked at, in order.

    The order is ``explicit`` (``--config``), ``$DINGPUSH_CONFIG``, ``./dingpush.toml``, then
    ``~/.config/dingpush/config.toml``. A file named by ``--config`` or ``$DINGPUSH_CONFIG``
    must exist; the other two are optional.
    """
    env = os.environ if env is None else env
    here = pathlib.Path.cwd() if cwd is None else pathlib.Path(cwd)
    steps: list[SearchStep] = []
    named: list[tuple[str, str]] = []
    if explicit is not None:
        named.append(("--config", os.fspath(explicit)))
    elif env.get(ENV_CONFIG):
        named.append((f"${ENV_CONFIG}", env[ENV_CONFIG]))
    for label, value in named:
        path = pathlib.Path(value).expanduser()
        if not path.is_absolute():
            path = here / path
        if not path.is_file():
            raise ConfigError(
                f"{label} names {value!r}, which does not exist or is not a file: check the path"
                + (f", or unset {ENV_CONFIG}" if label.startswith("$") else "")
            )
        return path, (SearchStep(label, path, True),)
    if explicit is None:
        steps.append(SearchStep(f"${ENV_CONFIG}", None, False))
    for label, path in (
        (f"./{LOCAL_NAME}", here / LOCAL_NAME),
        (home_relative(user_config_path(env)), user_config_path(env)),
    ):
        found = path.is_file()
        steps.append(SearchStep(label, path, found))
        if found:
            return path, tuple(steps)
    return None, tuple(steps)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Config:
    """Find and load the configuration; with no file, build it from the environment.

    Args:
        path: a file given explicitly (the CLI's ``--config``); it must exist.
        env: the environment to read (default ``os.environ``): ``DINGPUSH_CONFIG``, the
            ``${VAR}`` references, and with no file ``DINGPUSH_WEBHOOK``/``DINGPUSH_SECRET``.
        cwd: where ``./dingpush.toml`` is looked for (default: the working directory).

    Raises:
        ConfigFileError: listing every problem with its file, line, key and fix.
    """
    env = os.environ if env is None else env
    found, searched = find_config(path, env=env, cwd=cwd)
    if found is None:
        return from_environment(env, searched)
    # The TOML reader and the validator load only when there is a file to read.
    from ._source import ConfigSource

    config = parse_config(ConfigSource.read(found), env=env, searched=searched)
    if env.get(ENV_WEBHOOK):
        note = (
            f"${ENV_WEBHOOK} is set but not used, because {home_relative(found)} exists: write "
            f'webhook = "${{{ENV_WEBHOOK}}}" in a target to use it'
        )
        return dataclasses.replace(config, notes=(*config.notes, note))
    return config


def parse_config(
    source: ConfigSource,
    *,
    env: Mapping[str, str] | None = None,
    searched: tuple[SearchStep, ...] = (),
) -> Config:
    """Validate a parsed file into a :class:`Config` (the relay and tests call this directly)."""
    from ._schema import Schema

    env = os.environ if env is None else env
    schema = Schema(source, env)
    targets, apps, default, tables = schema.read()
    return Config(
        path=source.path,
        targets=targets,
        apps=apps,
        default=default,
        tables=tables,
        origins=schema.origins,
        unresolved=schema.unresolved,
        searched=searched,
    )


def from_environment(env: Mapping[str, str], searched: tuple[SearchStep, ...] = ()) -> Config:
    """The configuration when no file exists: ``DINGPUSH_WEBHOOK`` is the default robot."""
    origins: dict[str, Origin] = {}
    problems: list[Problem] = []
    notes: list[str] = []
    robot = _env_robot(env, origins, problems)
    if robot is None and env.get(ENV_SECRET, "").strip() and not env.get(ENV_WEBHOOK, "").strip():
        notes.append(
            f"${ENV_SECRET} is set but ${ENV_WEBHOOK} is not, so there is no default robot"
        )
    app = _env_app(env, origins, problems)
    if problems:
        raise ConfigFileError(problems)
    return Config(
        path=None,
        targets={DEFAULT_NAME: robot} if robot else {},
        apps={DEFAULT_NAME: app} if app else {},
        default=DEFAULT_NAME if robot else None,
        origins=origins,
        searched=searched,
        notes=tuple(notes),
    )


def _env_origin(*variables: str) -> Origin:
    return Origin("environment", variables=variables)


def _env_robot(
    env: Mapping[str, str], origins: dict[str, Origin], problems: list[Problem]
) -> RobotTarget | None:
    """``DINGPUSH_WEBHOOK`` with ``DINGPUSH_SECRET`` and ``DINGPUSH_KEYWORD``, when set."""
    webhook = env.get(ENV_WEBHOOK, "").strip()
    secret = env.get(ENV_SECRET, "").strip() or None
    keyword = env.get(ENV_KEYWORD, "").strip() or None
    if not webhook:
        return None
    if secret is not None and not secret.startswith("SEC"):
        problems.append(
            Problem(
                None,
                None,
                ENV_SECRET,
                "does not start with SEC",
                "set it to the whole secret shown under 加签 in the robot's security "
                f"settings (it starts with SEC), or unset {ENV_SECRET} if signing is off",
            )
        )
        return None
    try:
        parsed = parse_robot_target(webhook, secret=secret)
    except ConfigError as exc:
        fix = "copy the webhook URL from the group's robot settings"
        problems.append(Problem(None, None, ENV_WEBHOOK, str(exc), fix))
        return None
    origins["targets.default.webhook"] = _env_origin(ENV_WEBHOOK)
    if secret:
        origins["targets.default.secret"] = _env_origin(ENV_SECRET)
    if keyword:
        origins["targets.default.keyword"] = _env_origin(ENV_KEYWORD)
    return RobotTarget(DEFAULT_NAME, parsed, keyword)


def _env_app(
    env: Mapping[str, str], origins: dict[str, Origin], problems: list[Problem]
) -> AppSettings | None:
    """``DINGPUSH_APP_KEY`` and ``DINGPUSH_APP_SECRET``: both, or neither."""
    app_key, app_secret = env.get(ENV_APP_KEY, "").strip(), env.get(ENV_APP_SECRET, "").strip()
    if app_key and app_secret:
        origins["apps.default.app_key"] = _env_origin(ENV_APP_KEY)
        origins["apps.default.app_secret"] = _env_origin(ENV_APP_SECRET)
        return AppSettings(DEFAULT_NAME, app_key, app_secret)
    if app_key or app_secret:
        missing = ENV_APP_SECRET if app_key else ENV_APP_KEY
        problems.append(
            Problem(
                None,
                None,
                missing,
                "is not set while its pair is",
                f"set both {ENV_APP_KEY} and {ENV_APP_SECRET}, or neither",
            )
        )
    return None
