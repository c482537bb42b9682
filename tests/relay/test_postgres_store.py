"""What only the PostgreSQL store does: instances sharing one outbox, waking each other, its
schema and migrations, its named queries, group commit and readiness.

The contract every store keeps is in test_store_contract.py; faults are in
test_postgres_faults.py. Each test uses schemas of its own, dropped after it.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from _pgsupport import DSN, drop_schema, scratch_schema
from dingpush import ConfigError
from dingpush.relay.stores import (
    DeadLetterFilter,
    IncompatibleOutbox,
    NewMessage,
    PostgresStore,
    Status,
    StoreUnavailable,
)
from dingpush.relay.stores import _postgres_ops as ops
from dingpush.relay.stores._postgres_schema import MIGRATIONS, SCHEMA_VERSION
from dingpush.testing import FakeClock

pytestmark = pytest.mark.anyio

LEASE = 30.0


def new(text: str = "hello", target: str = "ops", **kw: object) -> NewMessage:
    return NewMessage(target=target, kind="text", payload=f'{{"text":"{text}"}}', **kw)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(schema: str, clock: FakeClock) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(DSN, schema=schema, clock=clock, pool_size=3) as opened:
        yield opened


def outside(schema: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(DSN, autocommit=True)
    conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
    return conn


# -- several instances, one outbox --------------------------------------------------------------


async def test_instances_share_the_outbox_and_never_claim_a_message_twice(
    schema: str, clock: FakeClock
) -> None:
    stores = [PostgresStore(DSN, schema=schema, clock=clock, pool_size=3) for _ in range(3)]
    for instance in stores:
        await instance.open()
    try:
        ids = []
        for n in range(300):
            ids.append((await stores[n % 3].enqueue(new(f"m{n}"))).id)
        claimed: list[str] = []

        async def claimer(instance: PostgresStore) -> None:
            while batch := await instance.claim(7, lease=LEASE):
                claimed.extend(c.id for c in batch)
                await asyncio.sleep(0)

        await asyncio.gather(*(claimer(stores[n % 3]) for n in range(12)))
        assert sorted(claimed) == sorted(ids)
        for instance in stores:
            assert (await instance.stats()).targets["ops"].sending == 300
    finally:
        for instance in stores:
            await instance.aclose()


async def test_an_idempotency_key_is_unique_across_instances(schema: str, clock: FakeClock) -> None:
    one = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    two = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    async with one, two:
        answers = await asyncio.gather(
            *(s.enqueue(new(idempotency_key="alert-1")) for s in [one, two] * 20)
        )
        assert len({a.id for a in answers}) == 1
        assert sum(a.created for a in answers) == 1


async def test_a_lease_expired_on_one_instance_is_requeued_by_another(
    schema: str, clock: FakeClock
) -> None:
    one = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    two = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    async with one, two:
        message_id = (await one.enqueue(new())).id
        stale = (await one.claim(1, lease=LEASE))[0]
        clock.advance(LEASE)
        assert await two.requeue_expired() == [message_id]
        assert await one.requeue_expired() == []
        fresh = (await two.claim(1, lease=LEASE))[0]
        await two.mark_delivered(fresh, reply={"errcode": 0})
        assert (await one.mark_delivered(stale)).status is Status.DELIVERED  # a repeat
        assert [a.outcome.value for a in await one.attempts(message_id)] == [
            "lease_expired",
            "delivered",
        ]


async def test_an_enqueue_on_one_instance_wakes_the_others_at_once(
    schema: str, clock: FakeClock
) -> None:
    one = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    two = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    elsewhere = scratch_schema()
    other = PostgresStore(DSN, schema=elsewhere, clock=clock, pool_size=3)
    try:
        async with one, two, other:
            woken = asyncio.ensure_future(two.wait_for_work(60))
            not_woken = asyncio.ensure_future(other.wait_for_work(1))
            await asyncio.sleep(0)
            await one.enqueue(new())
            assert await woken is True  # long before the 60 s poll
            assert await not_woken is False  # another schema, another outbox
            for settle in ("release", "retry"):
                (claim,) = await two.claim(1, lease=LEASE)
                if settle == "retry":
                    await two.fail(claim, error="x")
                waiter = asyncio.ensure_future(one.wait_for_work(60))
                await asyncio.sleep(0)
                if settle == "release":
                    await two.release([claim])
                else:
                    await two.retry(claim.id)
                assert await waiter is True, settle
    finally:
        drop_schema(elsewhere)


async def test_the_listener_comes_back_after_its_connection_is_killed(
    schema: str, clock: FakeClock
) -> None:
    name = f"dpt-{uuid.uuid4().hex[:12]}"
    one = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3)
    two = PostgresStore(DSN, schema=schema, clock=clock, pool_size=3, application_name=name)
    async with one, two:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND query LIKE 'LISTEN%%'",
                (name,),
            )
        # It reconnects on its own and, having maybe missed something, wakes its waiters.
        assert await two.wait_for_work(30) is True
        for _ in range(100):
            waiter = asyncio.ensure_future(two.wait_for_work(0.5))
            await asyncio.sleep(0)
            await one.enqueue(new())
            if await waiter:
                break
        else:
            raise AssertionError("the listener never came back")


# -- group commit -----------------------------------------------------------------------------


async def test_concurrent_enqueues_share_statements(store: PostgresStore) -> None:
    answers = await asyncio.gather(*(store.enqueue(new(f"m{i}")) for i in range(200)))
    assert all(a.created for a in answers)
    stats = store.write_stats()
    assert stats.requests == 200 and stats.statements < 200
    claimed = [c.id for c in await store.claim(200, lease=LEASE)]
    assert claimed == [a.id for a in answers]  # one batch keeps the callers' order


async def test_a_refused_message_fails_its_caller_only(store: PostgresStore, schema: str) -> None:
    good = [store.enqueue_many([new(f"g{i}"), new(f"h{i}")]) for i in range(5)]
    bad = store.enqueue(new("nul \x00 inside"))  # PostgreSQL's text cannot hold NUL
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], ValueError) and "cannot store" in str(results[-1])
    assert all(isinstance(r, list) and len(r) == 2 for r in results[:-1])
    with outside(schema) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (10,)


async def test_enqueue_many_is_atomic(store: PostgresStore, schema: str) -> None:
    with pytest.raises(ValueError):
        await store.enqueue_many([new("fine"), new("bad \x00")])
    with outside(schema) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


# -- bulk retry -------------------------------------------------------------------------------


async def test_dead_letters_are_retried_in_bulk_by_target_errcode_and_time(
    store: PostgresStore, clock: FakeClock
) -> None:
    start = clock.time()
    dead: list[tuple[str, int | str]] = [
        ("ops", 300001),
        ("ops", 400102),
        ("dev", 300001),
        ("dev", "x.y"),
    ]
    for target, errcode in dead:
        await store.enqueue(new(target=target))
        (claim,) = await store.claim(1, lease=LEASE)
        await store.fail(claim, error="refused", errcode=errcode)
        clock.advance(10)
    failed = [m.id for m in (await store.list_messages(status=Status.FAILED)).items][::-1]
    assert await store.retry_many(DeadLetterFilter(target="ops", errcode=300001)) == [failed[0]]
    assert await store.retry_many(DeadLetterFilter(errcode="x.y")) == [failed[3]]
    between = DeadLetterFilter(failed_since=start + 15, failed_before=start + 25)
    assert await store.retry_many(between) == [failed[2]]
    message = await store.get(failed[2])
    assert (message.status, message.attempts, message.due_at) == (Status.QUEUED, 0, clock.time())
    assert await store.retry_many(DeadLetterFilter(), due_at=clock.time() + 60) == [failed[1]]
    assert await store.retry_many(DeadLetterFilter()) == []
    assert len(await store.claim(10, lease=LEASE)) == 3  # the last one is due in a minute


# -- readiness --------------------------------------------------------------------------------


async def test_ping_writes_nothing(store: PostgresStore, schema: str) -> None:
    await store.ping()
    with outside(schema) as conn:
        assert conn.execute("SELECT count(*) FROM readiness_probe").fetchone() == (0,)


async def test_ping_names_a_read_only_database(store: PostgresStore, schema: str) -> None:
    role = f"{schema}_ro"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}")
    try:
        dsn = psycopg.conninfo.make_conninfo(DSN, user=role)
        async with PostgresStore(dsn, schema=schema, pool_size=2) as standby:
            with pytest.raises(StoreUnavailable, match="read-only"):
                await standby.ping()
            with pytest.raises(StoreUnavailable, match="read-only"):
                await standby.enqueue(new())
            assert (await standby.stats()).queue_depth == 0  # reads still answer
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


# -- schema and migrations ----------------------------------------------------------------------


async def test_instances_starting_together_migrate_once(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    stores = [PostgresStore(DSN, schema=schema, pool_size=2) for _ in range(4)]
    with caplog.at_level(logging.INFO, logger="dingpush"):
        await asyncio.gather(*(s.open() for s in stores))
    try:
        assert sorted(s.opened_at_version or 0 for s in stores) == [0] + [SCHEMA_VERSION] * 3
        applied = [r for r in caplog.records if "brought to outbox version" in r.getMessage()]
        assert len(applied) == len(MIGRATIONS)
        with outside(schema) as conn:
            rows = conn.execute("SELECT component, version FROM dingpush_migrations").fetchall()
        assert rows == [("outbox", step.version) for step in MIGRATIONS]
        await stores[0].enqueue(new())
        assert (await stores[3].stats()).queue_depth == 1
    finally:
        for s in stores:
            await s.aclose()


async def test_an_older_instance_keeps_working_after_an_additive_upgrade(
    store: PostgresStore, schema: str
) -> None:
    (claim_before,) = [await store.enqueue(new("before"))]
    # What a newer dingpush's step 2 might do while this instance runs: additive changes only.
    with outside(schema) as conn:
        conn.execute("ALTER TABLE messages ADD COLUMN priority integer NOT NULL DEFAULT 0")
        conn.execute("CREATE TABLE digests_by_rule (rule text PRIMARY KEY)")
        conn.execute(
            "INSERT INTO dingpush_migrations (component, version, summary, compatible_from)"
            " VALUES ('outbox', %s, 'priorities', 1)",
            (SCHEMA_VERSION + 1,),
        )
    await store.enqueue(new("after"))
    claims = await store.claim(10, lease=LEASE)
    assert len(claims) == 2 and claims[0].id == claim_before.id
    await store.mark_delivered(claims[0])
    await store.schedule_retry(claims[1], retry_at=0, error="busy")
    assert (await store.stats()).targets["ops"].queued == 1
    # An instance of this version starting now accepts the newer schema too.
    async with PostgresStore(DSN, schema=schema, pool_size=2) as late:
        assert late.opened_at_version == SCHEMA_VERSION + 1
        assert (await late.stats()).queue_depth == 1


async def test_a_version_3_schema_gains_the_chat_memory_and_keeps_its_incidents(
    schema: str,
) -> None:
    from dingpush.lowlevel import migrate

    with psycopg.connect(DSN, autocommit=True) as conn:
        migrate(conn, schema=schema, component="outbox", steps=MIGRATIONS[:3], what="the test")
    with outside(schema) as conn:
        conn.execute(
            "INSERT INTO incidents (route, group_key, title, labels, state, opened_at, targets)"
            " VALUES ('ops', 'g', 'DiskFull', '{}', 'open', 1, ARRAY['ops'])"
        )
    async with PostgresStore(DSN, schema=schema, pool_size=2) as store:
        assert store.opened_at_version == 3
        (kept,) = await store.incidents.list_incidents()
        assert (kept.title, kept.targets) == ("DiskFull", ("ops",))
        key = '["ops","msg-1"]'
        assert (await store.incidents.claim_chat_message(key, now=1.0, ttl=60)).first
        await store.incidents.answer_chat_message(key, "done")
        assert (await store.incidents.claim_chat_message(key, now=2.0, ttl=60)).answer == "done"
    with outside(schema) as conn:
        versions = conn.execute("SELECT max(version) FROM dingpush_migrations").fetchone()
    assert versions == (SCHEMA_VERSION,) == (4,)


async def test_a_schema_too_new_for_this_version_is_refused(schema: str) -> None:
    async with PostgresStore(DSN, schema=schema, pool_size=2):
        pass
    with outside(schema) as conn:
        conn.execute(
            "INSERT INTO dingpush_migrations (component, version, summary, compatible_from)"
            " VALUES ('outbox', 99, 'a breaking change', 99)"
        )
    with pytest.raises(IncompatibleOutbox, match="upgrade dingpush") as refused:
        await PostgresStore(DSN, schema=schema, pool_size=2).open()
    assert isinstance(refused.value, ConfigError)


async def test_a_schema_holding_other_tables_is_refused(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.messages (body text)")
    with pytest.raises(IncompatibleOutbox, match="not dingpush's"):
        await PostgresStore(DSN, schema=schema, pool_size=2).open()


async def test_schemas_keep_outboxes_apart(store: PostgresStore, clock: FakeClock) -> None:
    other_schema = scratch_schema()
    try:
        async with PostgresStore(DSN, schema=other_schema, clock=clock, pool_size=2) as other:
            await store.enqueue(new(idempotency_key="same"))
            assert (await other.enqueue(new(idempotency_key="same"))).created
            assert (await other.stats()).queue_depth == 1
    finally:
        drop_schema(other_schema)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="plain PostgreSQL identifier"):
        PostgresStore(DSN, schema="Robert'); DROP TABLE students;--")
    with pytest.raises(ConfigError, match="not a PostgreSQL connection string"):
        PostgresStore("nonsense")
    with pytest.raises(ConfigError, match="needs a DSN"):
        PostgresStore("")
    with pytest.raises(ValueError, match="lock_timeout"):
        PostgresStore(DSN, lock_timeout=0)


def test_the_password_never_shows() -> None:
    store = PostgresStore("postgresql://relay:s3cret-pw@db.example:6432/outbox")
    assert "s3cret" not in repr(store)
    assert repr(store) == "PostgresStore(db.example:6432/outbox (schema 'dingpush'), closed)"


async def test_an_unreachable_server_is_unavailable_with_a_reason(schema: str) -> None:
    store = PostgresStore(
        "postgresql://postgres:pw@127.0.0.1:1/test", schema=schema, connect_timeout=2
    )
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/test") as refused:
        await store.open()
    assert "pw" not in str(refused.value)
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.enqueue(new())


def test_importing_the_stores_does_not_load_psycopg() -> None:
    code = textwrap.dedent(
        """
        import sys
        import dingpush.relay.stores
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_psycopg_the_error_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg_pool"] = None  # as if not installed
        try:
            from dingpush.relay.stores import PostgresStore
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'dingpush[postgres]'" in out.stdout


# -- the named queries ------------------------------------------------------------------------


def test_every_named_query_is_used_and_exists() -> None:
    source = pathlib.Path(ops.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'Q\["(\w+)"\]', source))
    assert used == set(ops.Q)


async def test_every_named_query_compiles(store: PostgresStore, schema: str) -> None:
    with outside(schema) as conn:
        for name, query in ops.Q.items():
            params = dict.fromkeys(re.findall(r"%\((\w+)\)s", query))
            code = [line for line in query.splitlines() if not line.startswith("--")]
            with conn.transaction(force_rollback=True):
                if code[0].startswith("LOCK"):
                    conn.execute(query)
                else:
                    assert conn.execute(f"EXPLAIN {query}", params).fetchall(), name
