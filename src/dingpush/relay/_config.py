"""The relay's configuration: the shared TOML file's targets plus its ``[relay]`` table.

The targets, apps and their ``${VAR}`` references are read and checked by
:mod:`dingpush.config`, as for the CLI; this module reads ``[relay]`` and
``[relay.targets.NAME]`` (which the CLI keeps as written) and reports every problem at once,
each with the file, the line and the fix::

    [relay]
    host = "0.0.0.0"
    api_tokens = ["${RELAY_API_TOKEN}"]
    store = "/var/lib/dingpush/outbox.sqlite"      # or "memory", or "${DATABASE_URL}"
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
import urllib.parse
from collections.abc import Callable, Mapping

from dingpush import ConfigError, Rate
from dingpush.config import (
    BOOLEAN,
    DURATION,
    INTEGER,
    NONEMPTY,
    PORT,
    RATE,
    SIZE,
    STRINGS,
    TEXT,
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    Config,
    ConfigFileError,
    Field,
    Problem,
    Reader,
    Table,
    WorkNoticeTarget,
    find_config,
    open_async_app,
    parse_config,
)
from dingpush.config import PoolTarget as PoolSettings
from dingpush.config import RobotTarget as RobotSettings
from dingpush.lowlevel import DEFAULT_COOLDOWN, DEFAULT_RATE

from ._fleet import POSTGRES_ONLY, Fleet, StoreChoice, fleet_from_choice, postgres_store
from ._receivers import ChatReceivers, ReceivingApp
from ._relay import Relay
from ._settings import (
    ACK_LINK_TTL_MAX,
    ACK_LINK_TTL_MIN,
    ACK_LINK_TTL_PROBLEM,
    ACK_LINK_TTL_SHORT,
    API_TOKEN_FIX,
    API_TOKEN_MIN_LENGTH,
    RECEIVE_MODES,
    RELAY_RETRY,
    RelaySettings,
    api_token_problem,
)
from ._targets import AppTarget, PoolTarget, RelayTarget, RobotTarget, TargetOptions
from .stores import MemoryStore, OutboxStore, SQLiteStore

if typing.TYPE_CHECKING:
    from dingpush import AsyncApp
    from dingpush.config import ConfigSource

__all__ = ["RELAY", "RETRY", "TARGET_OPTIONS", "load_relay", "outbox_store", "relay_from_config"]

Path = tuple[str, ...]


def _positive(seconds: float) -> str | None:
    return None if seconds > 0 else "must be longer than zero"


def _ack_link_ttl(seconds: float) -> str | None:
    if not seconds >= ACK_LINK_TTL_MIN:
        return ACK_LINK_TTL_SHORT
    return None if seconds <= ACK_LINK_TTL_MAX else ACK_LINK_TTL_PROBLEM


def _receive_mode(mode: str) -> str | None:
    return None if mode in RECEIVE_MODES else f"{mode!r} is not a receiving mode"


def _http_url(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    return None if parts.scheme in ("http", "https") and parts.hostname else "not an http(s) URL"


def _ack_secret(secret: str) -> str | None:
    if len(secret) < API_TOKEN_MIN_LENGTH:
        return f"must be at least {API_TOKEN_MIN_LENGTH} characters"
    return None


def _at_least_one(count: int) -> str | None:
    return None if count >= 1 else "must be at least 1"


def _at_least_a_byte(size: int) -> str | None:
    return None if size >= 1 else "must be at least one byte"


#: ``[relay]``: its fields are ``RelaySettings``'s (``retry`` and ``targets`` are tables).
RELAY = Table(
    "[relay]",
    (
        Field("host", NONEMPTY, help="interface to listen on (default 127.0.0.1)"),
        Field("port", PORT, help="TCP port (default 8080; 0 picks a free one)"),
        Field("api_tokens", STRINGS, rule=api_token_problem, fix=API_TOKEN_FIX),
        Field(
            "store",
            NONEMPTY,
            help='the outbox file (beside this file), "memory", or a postgresql:// URL',
        ),
        Field("pool_size", INTEGER, rule=_at_least_one, fix="write e.g. 10"),
        Field("statement_timeout", DURATION, rule=_positive, fix='write e.g. "30s"'),
        Field("schema", NONEMPTY, help="the PostgreSQL schema the fleet shares"),
        Field("target_lease", DURATION, rule=_positive, fix='write e.g. "15s"'),
        Field("coalesce_after", DURATION),
        Field("max_body", SIZE, rule=_at_least_a_byte, fix='write e.g. "1MiB"'),
        Field("lease", DURATION, rule=_positive, fix='write e.g. "60s"'),
        Field("shutdown_deadline", DURATION),
        Field("retention", DURATION),
        Field("give_up_after", DURATION, rule=_positive, fix='write e.g. "24h"'),
        Field(
            "allowed_hosts",
            STRINGS,
            help='the names clients reach the relay by, beyond its own (["*"]: any)',
        ),
        Field(
            "public_url",
            NONEMPTY,
            rule=_http_url,
            fix='write where browsers reach the relay, e.g. "https://relay.example.com"',
            help="the URL the relay is reached at, e.g. behind a proxy",
        ),
        Field(
            "alertmanager_url",
            NONEMPTY,
            rule=_http_url,
            fix='write Alertmanager\'s base URL, e.g. "http://127.0.0.1:9093"',
            help="Alertmanager's URL, for @robot silence",
        ),
        Field("silence_check", DURATION, rule=_positive, fix='write e.g. "60s"'),
        Field("silence_max", DURATION, rule=_positive, fix='write e.g. "7d"'),
        Field(
            "ack_secret",
            TEXT,
            rule=_ack_secret,
            fix=API_TOKEN_FIX,
            help="the key of signed ack links (webhook robots)",
        ),
        Field(
            "ack_link_ttl",
            DURATION,
            rule=_ack_link_ttl,
            fix='write e.g. "24h" (at most "30d")',
            help="how long a signed ack link stays valid (a minute to 30 days)",
        ),
        Field("receive", NONEMPTY, rule=_receive_mode, fix='write "callback" or "stream"'),
        Field("escalation_poll", DURATION, rule=_positive, fix='write e.g. "1s"'),
        Field("escalation_lease", DURATION, rule=_positive, fix='write e.g. "60s"'),
    ),
    extra=("retry", "targets"),
    unknown="unknown setting",
)
#: ``[relay] retry = {…}``: changes to ``RELAY_RETRY``.
RETRY = Table(
    "retry",
    (
        Field("max_attempts", INTEGER, example="12"),
        Field("base_delay", DURATION),
        Field("max_delay", DURATION),
        Field("retry_ambiguous", BOOLEAN),
    ),
    unknown="unknown setting",
)
#: ``[relay.targets.NAME]``: ``TargetOptions``, plus the relay's own ``rate``/``cooldown``.
TARGET_OPTIONS = Table(
    "[relay.targets.NAME]",
    (
        Field("ingress_token", TEXT),
        Field("ingress_secret", TEXT),
        Field("coalesce", BOOLEAN),
        Field("coalesce_after", DURATION),
        Field("concurrency", INTEGER, example="1"),
        Field("rate", RATE),
        Field("cooldown", DURATION),
    ),
    unknown="unknown setting",
)
_OVERRIDES = ("rate", "cooldown")


def _attempt(reader: Reader, path: Path, build: Callable[[], typing.Any]) -> typing.Any:
    """Run ``build``; what the built object refuses becomes a problem on ``path``."""
    try:
        return build()
    except (ConfigError, ValueError, TypeError) as exc:
        reader.problem(path, str(exc))
        return None


def _settings(
    reader: Reader, table: Mapping[str, typing.Any], host: str | None, port: int | None
) -> tuple[RelaySettings, StoreChoice]:
    """``RelaySettings`` and the store settings of ``[relay]``."""
    values = dict(reader.fields(table, ("relay",), RELAY))
    store = StoreChoice(
        values.pop("store", None), **{name: values.pop(name, None) for name in POSTGRES_ONLY}
    )
    if "retry" in table:
        retry = reader.table(table, ("relay", "retry"))
        changes = reader.fields(retry, ("relay", "retry"), RETRY)
        if changes.complete:
            values["retry"] = _attempt(
                reader, ("relay", "retry"), lambda: dataclasses.replace(RELAY_RETRY, **changes)
            )
    for key in ("api_tokens", "allowed_hosts"):
        if key in values:
            values[key] = tuple(values[key])
    if values.get("ack_secret") is not None and values.get("public_url") is None:
        if "public_url" not in table:  # else public_url's own problem says it all
            reader.problem(
                ("relay", "ack_secret"),
                "signed ack links start with public_url, which is not set",
                'set public_url = "https://relay.example.com" in [relay] (where people\'s '
                "browsers reach the relay)",
            )
        del values["ack_secret"]  # one problem, not a second one from RelaySettings
    if host is not None:
        values["host"] = host
    if port is not None:
        values["port"] = port
    values = {k: v for k, v in values.items() if v is not None}
    settings = _attempt(reader, ("relay",), lambda: RelaySettings(**values))
    return settings or RelaySettings(), store


def _options(
    reader: Reader, name: str, table: Mapping[str, typing.Any]
) -> dict[str, typing.Any] | None:
    """``[relay.targets.NAME]`` → ``options``, plus ``rate``/``cooldown`` overrides."""
    path = ("relay", "targets", name)
    values = reader.fields(table, path, TARGET_OPTIONS)
    if not values.complete:
        return None
    options = {k: v for k, v in values.items() if k not in _OVERRIDES}
    built = _attempt(reader, path, lambda: TargetOptions(**options))
    if built is None:
        return None
    return {"options": built, **{k: v for k, v in values.items() if k in _OVERRIDES}}


def _store(value: str | None, base: pathlib.Path) -> OutboxStore:
    """The single-machine outbox of ``[relay] store`` (PostgreSQL goes through ``Fleet``)."""
    if value is None:
        return SQLiteStore(base / "dingpush-outbox.sqlite")
    if value == "memory":
        return MemoryStore()
    path = pathlib.Path(value.removeprefix("sqlite:")).expanduser()
    return SQLiteStore(path if path.is_absolute() else base / path)


def _rate(value: Rate | str | None) -> Rate | None:
    return None if value is None else Rate.coerce(value)


class _Apps:
    """One ``AsyncApp`` per ``[apps.NAME]``, shared by the targets that use it."""

    def __init__(self, fleet: Fleet | None = None) -> None:
        #: The clients, by app name; the first target of each owns (closes) it.
        self.clients: dict[str, AsyncApp] = {}
        self._fleet = fleet
        #: The apps' settings, by name: people write to these apps' robots (chat commands).
        self.settings: dict[str, AppSettings] = {}

    def get(self, settings: AppSettings) -> tuple[AsyncApp, bool]:
        if settings.name in self.clients:
            return self.clients[settings.name], False
        self.settings[settings.name] = settings
        # The configuration's builder, as the CLI's; a fleet fetches one token per app.
        shared = self._fleet.tokens if self._fleet is not None else None
        app = open_async_app(settings, token_cache=shared)
        self.clients[settings.name] = app
        return app, True  # the first target owns (closes) the shared client


def _target(
    name: str, target: typing.Any, extra: dict[str, typing.Any], apps: _Apps
) -> RelayTarget:
    options = extra["options"]
    if isinstance(target, RobotSettings):
        return RobotTarget(
            name,
            target.webhook,
            keyword=target.keyword,
            rate=extra.get("rate") or _rate(target.rate) or DEFAULT_RATE,
            cooldown=extra.get("cooldown") or target.cooldown or DEFAULT_COOLDOWN,
            options=options,
            description=target.description,
        )
    if isinstance(target, PoolSettings):
        first = target.members[0]
        return PoolTarget(
            name,
            [m.webhook for m in target.members],
            keyword=first.keyword,
            rate=extra.get("rate") or _rate(first.rate) or DEFAULT_RATE,
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
            robot_code=target.sending_robot_code,
            **common,
        )
    if isinstance(target, AppUsersTarget):
        return AppTarget(
            name,
            app,
            "app-users",
            users=target.user_ids,
            robot_code=target.sending_robot_code,
            **common,
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
    config: Config | None,
    source: ConfigSource,
    *,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    store: str | None = None,
    problems: tuple[Problem, ...] = (),
) -> Relay:
    """Build the relay of a loaded configuration; every problem is raised at once.

    ``config`` is ``None`` when its targets had ``problems``: ``[relay]`` is still read, so
    that they are reported together with its own. ``store`` (``dingpush serve --store``)
    replaces ``[relay] store``.
    """
    env = os.environ if env is None else env
    reader = Reader(source, env, unset="problem")
    reader.problems.extend(problems)
    if config is not None:
        for key, error in sorted(config.unresolved.items()):
            if key.startswith("targets."):
                reader.problems.extend(error.problems)  # the relay needs every target it lists
    table = reader.table(source.data, ("relay",))
    settings, choice = _settings(reader, table, host, port)
    if store is not None:
        choice = dataclasses.replace(choice, store=store)
    for name in choice.misplaced():
        reader.problem(
            ("relay", name),
            "applies to a PostgreSQL store only",
            'set store = "postgresql://…" (or "${DATABASE_URL}"), or remove it',
        )
    fleet = None
    if choice.postgres:
        fleet = _attempt(reader, ("relay", "store"), lambda: fleet_from_choice(choice))
    per_target = reader.table(table, ("relay", "targets"))
    declared = source.data.get("targets", {})
    declared = declared if isinstance(declared, dict) else {}  # else a problem of [targets]
    for name, options in per_target.items():
        if name not in declared:
            reader.problem(
                ("relay", "targets", name),
                f"there is no [targets.{name}] to relay to",
                "define the target, or remove this table",
            )
        elif not isinstance(options, dict):
            reader.table(per_target, ("relay", "targets", name))
    targets: list[RelayTarget] = []
    apps = _Apps(fleet)
    for name in declared:
        entry = per_target.get(name)
        extra = _options(reader, name, entry if isinstance(entry, dict) else {})
        target = config.targets.get(name) if config is not None else None
        if extra is not None and target is not None:
            built = _attempt(
                reader,
                ("relay", "targets", name),
                functools.partial(_target, name, target, extra, apps),
            )
            if built is not None:
                targets.append(built)
    if not declared and config is not None and not config.unresolved:
        reader.problems.append(
            Problem(source.path, None, "targets", "no [targets.NAME] to relay to", "add one")
        )
    alerts = None
    if any(
        key in source.data for key in ("routes", "templates", "people", "policies", "schedules")
    ):
        from ._alerts_config import read_alerts  # [routes], [templates], [people]

        kinds = dict.fromkeys(declared, "robot")  # a broken target is reported once
        kinds.update({t.name: t.kind for t in targets})
        alerts = read_alerts(reader, source.data, source.path.parent, kinds)
    try:
        reader.finish()
    except ConfigFileError:
        if fleet is not None:
            fleet.close()
        raise
    chat = _chat(apps, settings)
    if fleet is not None:
        return Relay(targets, fleet=fleet, settings=settings, alerts=alerts, chat=chat)
    return Relay(
        targets,
        store=_store(choice.store, source.path.parent),
        settings=settings,
        alerts=alerts,
        chat=chat,
    )


def _chat(apps: _Apps, settings: RelaySettings) -> ChatReceivers | None:
    """The apps of the relay's app targets receive chat commands (none: no app target)."""
    if not apps.settings:
        return None
    return ChatReceivers(
        [ReceivingApp(s.name, s.app_key, s.app_secret, s.api_base) for s in apps.settings.values()],
        mode=settings.receive,
        clients=apps.clients,  # answers go through the targets' clients (closed after chat)
    )


def load_relay(
    config: str | None,
    *,
    host: str | None = None,
    port: int | None = None,
    store: str | None = None,
) -> tuple[Relay, str] | None:
    """The relay of the configuration file (looked up like the CLI's), or None without one."""
    from dingpush.config import ConfigSource

    found, _ = find_config(config)
    if found is None:
        return None
    source = ConfigSource.read(found)
    try:
        loaded: Config | None = parse_config(source)
        problems: tuple[Problem, ...] = ()
    except ConfigFileError as exc:  # read [relay] too: every problem at once
        loaded, problems = None, exc.problems
    relay = relay_from_config(loaded, source, host=host, port=port, store=store, problems=problems)
    return relay, str(found)


def outbox_store(config: str | None, store: str | None = None) -> tuple[OutboxStore, str]:
    """The outbox a relay's configuration names (``dingpush outbox …``), and where it is.

    ``store`` (``--store``) replaces ``[relay] store``; the file's ``schema``, ``pool_size``
    and ``statement_timeout`` still apply to a PostgreSQL URL. Without a configuration file
    and ``--store``, the embedded default's ``dingpush-outbox.sqlite`` in this directory.
    Only ``[relay]`` is read: the targets need not be resolvable.
    """
    from dingpush.config import ConfigSource

    choice = StoreChoice(store)
    base = pathlib.Path.cwd()
    found, _ = find_config(config)
    if found is not None:
        source = ConfigSource.read(found)
        reader = Reader(source, os.environ, unset="problem")
        table = reader.table(source.data, ("relay",))
        values = reader.fields(table, ("relay",), RELAY, skip=_UNNEEDED)
        read = StoreChoice(
            values.get("store"), **{name: values.get(name) for name in POSTGRES_ONLY}
        )
        choice = read if store is None else dataclasses.replace(read, store=store)
        for name in choice.misplaced():
            reader.problem(("relay", name), "applies to a PostgreSQL store only")
        reader.finish()
        base = found.parent
    if choice.store == "memory":
        raise ConfigError(
            'the outbox is "memory": it lives inside the relay process and ends with it; '
            "pass --store PATH or --store postgresql://…"
        )
    if choice.postgres:
        from dingpush.lowlevel import describe_dsn

        outbox = postgres_store(choice)
        where = describe_dsn(choice.store or "", "the outbox")
        return outbox, f"postgresql {where}, schema {outbox.schema}"
    built = _store(choice.store, base)
    assert isinstance(built, SQLiteStore)
    return built, str(built.path)


#: ``[relay]`` fields ``outbox_store`` does not need (they may name unset variables).
_UNNEEDED = tuple(f.name for f in RELAY.fields if f.name not in ("store", *POSTGRES_ONLY))
