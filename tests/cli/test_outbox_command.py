"""``dingpush outbox migrate|stats|prune`` on either store: an SQLite file or PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import pathlib
import time

import psycopg.conninfo
import pytest

from _pgsupport import DSN
from dingpush.relay.stores import NewMessage, OutboxStore, PostgresStore, SQLiteStore
from dingpush.testing import FakeClock

from .conftest import Runner

PASSWORD = "outbox-pw-never-printed-42"
WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=${OPS_TOKEN_UNSET}"


def _url() -> str:
    parts = psycopg.conninfo.conninfo_to_dict(DSN)
    return (
        f"postgresql://{parts.get('user', 'postgres')}:{PASSWORD}@{parts.get('host')}:"
        f"{parts.get('port', 5432)}/{parts.get('dbname')}"
    )


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(kind: str, home: pathlib.Path, request: pytest.FixtureRequest) -> pathlib.Path:
    """A configuration whose targets cannot be resolved: only [relay] store is read."""
    if kind == "sqlite":
        relay = 'store = "data/outbox.sqlite"'
    else:
        name = request.getfixturevalue("schema")
        relay = f'store = "{_url()}"\nschema = "{name}"\npool_size = 2'
    path = home / "dingpush.toml"
    path.write_text(
        f'[targets.ops]\nwebhook = "{WEBHOOK}"\n[relay]\n{relay}\n'
        'api_tokens = ["${API_TOKEN_UNSET}"]\n',
        encoding="utf-8",
    )
    (home / "data").mkdir()
    return path


def _store(kind: str, home: pathlib.Path, clock: FakeClock, schema: str | None) -> OutboxStore:
    if kind == "sqlite":
        return SQLiteStore(home / "data" / "outbox.sqlite", clock=clock)
    assert schema is not None
    return PostgresStore(DSN, schema=schema, clock=clock, pool_size=2)


async def _seed(store: OutboxStore, clock: FakeClock) -> None:
    """Three messages to ops ten days ago, two of them delivered; a dead letter of dev now."""
    async with store:
        for i in range(3):
            await store.enqueue(NewMessage(target="ops", kind="text", payload=f'{{"n":{i}}}'))
        for claim in await store.claim(2, lease=30):
            await store.mark_delivered(claim, reply={"errcode": 0})
        clock.advance(10 * 86400)
        await store.enqueue(NewMessage(target="dev", kind="text", payload='{"n":9}'))
        (claim,) = await store.claim(1, lease=30, target="dev")
        await store.fail(claim, error="TransportError: the robot is gone", errcode=None)


def test_migrate_stats_and_prune_on_either_store(
    kind: str, config: pathlib.Path, home: pathlib.Path, run: Runner, request: pytest.FixtureRequest
) -> None:
    schema = request.getfixturevalue("schema") if kind == "postgres" else None
    created = run("outbox", "migrate")
    assert created.exit_code == 0, created.output
    assert "created the outbox" in created.stdout
    again = run("outbox", "migrate")
    assert "nothing to do" in again.stdout, again.output

    clock = FakeClock(time.time() - 10 * 86400)  # ten days ago
    asyncio.run(_seed(_store(kind, home, clock, schema), clock))

    stats = run("outbox", "stats", "--window", "30d", "--json")
    assert stats.exit_code == 0, stats.output
    figures = json.loads(stats.stdout)
    assert figures["queue_depth"] == 1 and figures["failed"] == 1
    assert figures["targets"]["ops"]["queued"] == 1
    assert figures["targets"]["ops"]["delivered_recent"] == 2
    assert figures["targets"]["dev"]["last_error"] == "TransportError: the robot is gone"
    table = run("outbox", "stats")
    assert "1 waiting, 1 dead letters" in table.stdout and "last error: Transport" in table.stdout

    pruned = run("outbox", "prune", "--older-than", "7d")
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 2 delivered messages" in pruned.stdout
    after = json.loads(run("outbox", "stats", "--window", "30d", "--json").stdout)
    assert after["targets"]["ops"]["delivered_recent"] == 0 and after["failed"] == 1
    everything = "".join(r.output for r in (created, again, stats, table, pruned))
    assert PASSWORD not in everything


def test_store_on_the_command_line_and_its_password_never_printed(
    home: pathlib.Path, schema: str, run: Runner
) -> None:
    bad = run("outbox", "stats", "--store", _url().replace("/test", "/no_such_database_x"))
    assert bad.exit_code != 0 and PASSWORD not in bad.output
    assert "no_such_database_x" in bad.output
    made = run("outbox", "migrate", "--store", str(home / "elsewhere.sqlite"))
    assert made.exit_code == 0 and (home / "elsewhere.sqlite").exists()


def test_a_memory_outbox_is_refused_with_the_fix(home: pathlib.Path, run: Runner) -> None:
    (home / "dingpush.toml").write_text(
        '[targets.ops]\nwebhook = "https://x.example/robot/send?access_token=abc"\n'
        '[relay]\nstore = "memory"\n',
        encoding="utf-8",
    )
    result = run("outbox", "stats")
    assert result.exit_code == 3
    assert "--store" in result.output and "memory" in result.output


def test_a_bad_duration_is_a_usage_error(home: pathlib.Path, run: Runner) -> None:
    result = run("outbox", "prune", "--store", "x.sqlite", "--older-than", "soon")
    assert result.exit_code == 2 and "not a duration" in result.output
    assert not (home / "x.sqlite").exists()


def test_config_show_masks_the_password_of_the_store_url(home: pathlib.Path, run: Runner) -> None:
    (home / "dingpush.toml").write_text(
        '[targets.ops]\nwebhook = "https://x.example/robot/send?access_token=abc"\n'
        f'[relay]\nstore = "{_url()}"\n',
        encoding="utf-8",
    )
    for args in (("config", "show"), ("config", "show", "--json")):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and "store" in result.output
