"""``dingpush outbox migrate|stats|prune``: the relay's outbox, SQLite file or PostgreSQL.

The outbox is the one ``[relay] store`` of the configuration names (``--store`` replaces it:
a path, or a ``postgresql://`` URL). These commands open it directly, as another relay
instance would — safe while the relay runs: every store takes concurrent users.

- ``migrate`` brings its schema to this version (what a relay does when it starts): run it
  once before a rolling upgrade, or to create a fleet's schema ahead of its instances.
- ``stats`` prints each target's backlog, dead letters, deliveries and last error.
- ``prune`` deletes delivered messages older than ``--older-than`` (the relay does so itself
  every hour after ``retention``); dead letters are kept.
"""

from __future__ import annotations

import asyncio
import datetime
import typing

import click

from dingpush import ConfigError, parse_duration

from ._common import common_options
from ._state import State, get_state

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from dingpush.relay.stores import OutboxStore

R = typing.TypeVar("R")

_STORE_HELP = (
    "The outbox, instead of the configuration's [relay] store: a file, or postgresql://… "
    "(its password is never printed)."
)


def _store_option(function: typing.Callable[..., typing.Any]) -> typing.Callable[..., typing.Any]:
    return click.option("--store", metavar="PATH|URL", default=None, help=_STORE_HELP)(function)


def _open(state: State, store: str | None) -> tuple[OutboxStore, str]:
    from dingpush.relay._config import outbox_store
    from dingpush.relay._fleet import dsn_password, is_postgres_url

    if store and is_postgres_url(store):
        state.add_secrets([dsn_password(store)])
    outbox, where = outbox_store(state.config_path, store)
    dsn = getattr(outbox, "_dsn", None)
    if isinstance(dsn, str):
        state.add_secrets([dsn_password(dsn)])
    state.detail(f"outbox: {where}")
    return outbox, where


def _run(outbox: OutboxStore, work: Callable[[OutboxStore], Awaitable[R]]) -> R:
    async def main() -> R:
        async with outbox:
            return await work(outbox)

    return asyncio.run(main())


@click.group("outbox")
def outbox() -> None:
    """The relay's outbox (an SQLite file or PostgreSQL): migrate, stats, prune."""


@outbox.command("migrate")
@_store_option
@common_options
def migrate(store: str | None) -> None:
    """Create the outbox, or bring its schema to this version of dingpush.

    A relay does this when it starts; run it ahead of a rolling upgrade of a fleet, or to
    create a fleet's schema before its instances start.
    """
    state = get_state()
    box, where = _open(state, store)

    async def version(opened: OutboxStore) -> tuple[int | None, int]:
        from dingpush.relay.stores import PostgresStore, SQLiteStore

        before = getattr(opened, "opened_at_version", None)
        if isinstance(opened, SQLiteStore):
            from dingpush.relay.stores._sqlite_schema import SCHEMA_VERSION as now
        else:
            assert isinstance(opened, PostgresStore)
            from dingpush.relay.stores._postgres_schema import SCHEMA_VERSION as now
        return before, now

    before, now = _run(box, version)
    if before == now:
        state.out(f"the outbox {where} is at schema version {now}: nothing to do")
    elif not before:
        state.out(f"created the outbox {where} at schema version {now}")
    else:
        state.out(f"migrated the outbox {where} from schema version {before} to {now}")


@outbox.command("stats")
@_store_option
@click.option(
    "--window",
    metavar="DURATION",
    default="1h",
    show_default=True,
    help="The span of the 'delivered' column.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@common_options
def stats(store: str | None, window: str, as_json: bool) -> None:
    """Per target: queued, sending, dead letters, delivered recently, the oldest due, last error."""
    state = get_state()
    seconds = _duration(window, "--window")
    box, where = _open(state, store)
    figures = _run(box, lambda opened: opened.stats(window=seconds))
    if as_json:
        state.json(
            {
                "outbox": where,
                "at": figures.at,
                "window": figures.window,
                "queue_depth": figures.queue_depth,
                "failed": figures.failed,
                "targets": {
                    name: {
                        "queued": t.queued,
                        "sending": t.sending,
                        "failed": t.failed,
                        "delivered_recent": t.delivered_recent,
                        "oldest_due": t.oldest_due,
                        "last_error": t.last_error,
                        "last_errcode": t.last_errcode,
                        "last_error_at": t.last_error_at,
                    }
                    for name, t in sorted(figures.targets.items())
                },
            }
        )
        return
    state.out(f"outbox {where}: {figures.queue_depth:,} waiting, {figures.failed:,} dead letters")
    if not figures.targets:
        state.out("no messages")
        return
    state.out(
        f"{'target':<20} {'queued':>8} {'sending':>8} {'failed':>8} "
        f"{'delivered/' + window:>14}  oldest due"
    )
    for name, t in sorted(figures.targets.items()):
        oldest = "-" if t.oldest_due is None else _when(t.oldest_due)
        state.out(
            f"{name:<20} {t.queued:>8,} {t.sending:>8,} {t.failed:>8,} "
            f"{t.delivered_recent:>14,}  {oldest}"
        )
        if t.last_error:
            state.out(f"{'':<20} last error: {t.last_error}")


@outbox.command("prune")
@_store_option
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    required=True,
    help="Delete messages delivered longer ago than this (7d, 12h); dead letters are kept.",
)
@common_options
def prune(store: str | None, older_than: str) -> None:
    """Delete delivered messages older than --older-than (and the originals their digests
    carried); dead letters and messages still to deliver are kept."""
    state = get_state()
    seconds = _duration(older_than, "--older-than")
    box, where = _open(state, store)
    before = datetime.datetime.now().timestamp() - seconds
    count = _run(box, lambda opened: opened.prune(before=before))
    state.out(f"pruned {count:,} delivered message{'' if count == 1 else 's'} from {where}")


def _duration(value: str, option: str) -> float:
    try:
        return parse_duration(value)
    except (ValueError, ConfigError):
        raise click.BadParameter(
            f"{value!r} is not a duration: write e.g. 30s, 12h or 7d", param_hint=option
        ) from None


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds")
