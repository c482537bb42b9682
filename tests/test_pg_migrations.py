"""Versioned migrations of the PostgreSQL parts (``dingpush.lowlevel.migrate``), on a real server.

Instances upgrading together apply each step once; an upgrade applies only the steps missing;
a newer schema is accepted when it says this version may use it.
"""

from __future__ import annotations

import concurrent.futures
import threading

import psycopg
import pytest

from _pgsupport import DSN
from dingpush import ConfigError
from dingpush._postgres._migrations import Migration, describe_dsn, migrate

V1 = Migration(1, "a table", ("CREATE TABLE things (id integer PRIMARY KEY)",))
V2 = Migration(2, "a column", ("ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT ''",))
V3_BREAKING = Migration(3, "a rename", ("ALTER TABLE things RENAME name TO title",), 3)


def run(schema: str, steps: tuple[Migration, ...], applied: list[int] | None = None) -> int:
    with psycopg.connect(DSN, autocommit=True) as conn:
        return migrate(
            conn,
            schema=schema,
            component="things",
            steps=steps,
            what="the test",
            on_step=None if applied is None else lambda step: applied.append(step.version),
        )


def test_an_upgrade_applies_only_the_missing_steps(schema: str) -> None:
    applied: list[int] = []
    assert run(schema, (V1,), applied) == 0
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.things VALUES (1)")
    assert run(schema, (V1, V2), applied) == 1
    assert run(schema, (V1, V2), applied) == 2
    assert applied == [1, 2]
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT id, name FROM {schema}.things").fetchall() == [(1, "")]
        recorded = conn.execute(
            f"SELECT version, compatible_from FROM {schema}.dingpush_migrations ORDER BY version"
        ).fetchall()
    assert recorded == [(1, 1), (2, 1)]


def test_instances_upgrading_together_apply_each_step_once(schema: str) -> None:
    applied: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def instance() -> int:
        mine: list[int] = []
        barrier.wait()
        found = run(schema, (V1, V2), mine)
        with lock:
            applied.extend(mine)
        return found

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        found = sorted(pool.map(lambda _: instance(), range(6)))
    assert applied == [1, 2]  # each step once, by one of them
    assert found == [0, 2, 2, 2, 2, 2]


def test_a_newer_schema_is_used_when_it_allows_this_version(schema: str) -> None:
    run(schema, (V1, V2))
    assert run(schema, (V1,)) == 2  # version 1's code runs on an additive version 2
    run(schema, (V1, V2, V3_BREAKING))
    with pytest.raises(ConfigError, match=r"needs at least version 3.*upgrade dingpush"):
        run(schema, (V1, V2))


def test_a_failed_step_leaves_the_schema_as_it_was(schema: str) -> None:
    run(schema, (V1,))
    broken = Migration(2, "broken", ("ALTER TABLE things ADD COLUMN x integer", "SELECT 1/0"))
    with pytest.raises(psycopg.errors.DivisionByZero):
        run(schema, (V1, broken))
    with psycopg.connect(DSN) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = 'things'",
            (schema,),
        ).fetchall()
    assert columns == [("id",)]
    assert run(schema, (V1, V2)) == 1


def test_dsn_descriptions_never_carry_a_password() -> None:
    assert describe_dsn("postgresql://u:pw@db.example:6432/relay", "x") == "db.example:6432/relay"
    assert describe_dsn("host=db password=pw dbname=relay", "x") == "db:5432/relay"
    assert describe_dsn("postgresql:///relay", "x") == "localhost:5432/relay"
