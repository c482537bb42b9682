"""PostgresStore when the database fails: connections cut, locks held, statements timed out.

Each fault ends in ``StoreUnavailable`` (the relay answers 503 on it), never in a half-written
message or one held by two claims, and the store recovers by itself once the database is back.
The faults are real: ``pg_terminate_backend`` on the store's own sessions, a lock taken by
another session, a TCP proxy cut between the store and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from _pgsupport import (
    DSN,
    Proxy,
    ThreadedProxy,
    terminate_backends,
    wait_until_blocked,
)
from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.relay._fleet import Fleet
from dingpush.relay.stores import NewMessage, PostgresStore, Status, StoreUnavailable
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio

LEASE = 30.0


def new(text: str = "hello", **kw: object) -> NewMessage:
    return NewMessage(target="ops", kind="text", payload=f'{{"text":"{text}"}}', **kw)  # type: ignore[arg-type]


@pytest.fixture
def app_name() -> str:
    """A name that tells this test's sessions from every other session on the server."""
    return f"dpt-{uuid.uuid4().hex[:12]}"


def make(schema: str, app_name: str, **kw: object) -> PostgresStore:
    options: dict[str, object] = {
        "schema": schema,
        "application_name": app_name,
        "pool_size": 3,
        "clock": FakeClock(),
        "lock_timeout": 30.0,
    }
    options.update(kw)
    return PostgresStore(options.pop("dsn", DSN), **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def outside(schema: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
        yield conn


async def count(schema: str, where: str = "true", *params: object) -> int:
    async with outside(schema) as conn:
        cursor = await conn.execute(f"SELECT count(*) FROM messages WHERE {where}", params)
        row = await cursor.fetchone()
        assert row is not None
        return typing.cast(int, row[0])


# -- connections cut mid-statement --------------------------------------------------------------


async def test_a_connection_cut_mid_enqueue_stores_nothing_and_the_store_recovers(
    schema: str, app_name: str
) -> None:
    async with make(schema, app_name) as store:
        await store.enqueue(new("before"))
        async with outside(schema) as conn, conn.transaction():
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            pending = asyncio.ensure_future(store.enqueue(new("cut", idempotency_key="k-1")))
            await wait_until_blocked(app_name)
            assert terminate_backends(app_name) >= 1
            with pytest.raises(StoreUnavailable, match="lost the connection"):
                await pending
        assert await count(schema, "payload LIKE %s", "%cut%") == 0

        async def accepted() -> bool:
            try:
                await store.enqueue(new("cut", idempotency_key="k-1"))
            except StoreUnavailable:
                return False
            return True

        await eventually(accepted, what="an enqueue after the connections came back")
        again = await store.enqueue(new("cut", idempotency_key="k-1"))
        assert not again.created  # the sender's retry was stored once
        assert await count(schema) == 2


async def test_a_connection_cut_mid_claim_claims_nothing_twice(schema: str, app_name: str) -> None:
    async with make(schema, app_name) as store:
        ids = [(await store.enqueue(new(f"m{i}"))).id for i in range(5)]
        async with outside(schema) as conn, conn.transaction():
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            pending = asyncio.ensure_future(store.claim(10, lease=LEASE))
            await wait_until_blocked(app_name)
            terminate_backends(app_name)
            with pytest.raises(StoreUnavailable):
                await pending
        assert await count(schema, "status = 'queued'") == 5  # the claim was undone whole

        claimed: list[str] = []

        async def claim() -> bool:
            try:
                claimed.extend(c.id for c in await store.claim(10, lease=LEASE))
            except StoreUnavailable:
                return False
            return True

        await eventually(claim, what="a claim after the connections came back")
        assert claimed == ids
        assert await store.claim(10, lease=LEASE) == []


async def test_idle_connections_killed_by_the_server_are_replaced_unseen(
    schema: str, app_name: str
) -> None:
    async with make(schema, app_name) as store:
        await store.enqueue(new())
        terminate_backends(app_name)  # every connection of the store, idle in the pool
        # The pool checks a connection before lending it: the first operation already works.
        await store.enqueue(new())
        await store.ping()
        assert await count(schema) == 2


# -- the database goes away and comes back ------------------------------------------------------


async def test_an_outage_gives_503s_then_the_store_recovers_by_itself(
    schema: str, app_name: str
) -> None:
    proxy = Proxy()
    await proxy.start()
    async with make(schema, app_name, dsn=proxy.dsn, lock_timeout=0.5) as store:
        kept = await store.enqueue(new("kept"))
        claim = (await store.claim(1, lease=LEASE))[0]
        await proxy.cut()
        with pytest.raises(StoreUnavailable):
            await store.enqueue(new("refused"))
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.mark_delivered(claim)
        await proxy.restore()

        async def ready() -> bool:
            try:
                await store.ping()
            except StoreUnavailable:
                return False
            return True

        await eventually(ready, timeout=60, what="the store after the database came back")
        await store.mark_delivered(claim)
        assert (await store.get(kept.id)).status is Status.DELIVERED
        await store.enqueue(new("after"))
    await proxy.cut()
    assert await count(schema, "payload LIKE %s", "%refused%") == 0
    assert await count(schema) == 2


# -- locks and timeouts -------------------------------------------------------------------------


async def test_a_held_lock_makes_writes_and_readiness_fail_within_the_lock_timeout(
    schema: str, app_name: str
) -> None:
    async with make(schema, app_name, lock_timeout=0.2) as store:
        async with outside(schema) as conn, conn.transaction():
            await conn.execute("LOCK TABLE messages IN SHARE MODE")  # blocks writes only
            with pytest.raises(StoreUnavailable, match="locked by another session"):
                await store.enqueue(new())
            with pytest.raises(StoreUnavailable, match="lock_timeout"):
                await store.ping()
            assert await store.list_messages() is not None  # reads go on
        await store.enqueue(new())
        await store.ping()


async def test_a_statement_timeout_never_leaves_a_message_claimed_forever(
    schema: str, app_name: str
) -> None:
    clock = FakeClock()
    async with make(schema, app_name, clock=clock, statement_timeout=0.3) as store:
        (message_id,) = [(await store.enqueue(new())).id]
        async with outside(schema) as conn, conn.transaction():
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable, match="statement_timeout"):
                await store.claim(1, lease=LEASE)
        assert (await store.get(message_id)).status is Status.QUEUED  # the claim was undone

        (claim,) = await store.claim(1, lease=LEASE)
        async with outside(schema) as conn, conn.transaction():
            await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable, match="statement_timeout"):
                await store.mark_delivered(claim, reply={"errcode": 0})
        # The settle never happened; the claim holds the message only until its lease ends.
        message = await store.get(message_id)
        assert (message.status, message.lease_until) == (Status.SENDING, claim.lease_until)
        clock.advance(LEASE)
        assert await store.requeue_expired() == [message_id]
        assert [c.id for c in await store.claim(1, lease=LEASE)] == [message_id]


# -- the relay on a fleet's database: 503 while it cannot commit, nothing lost ------------------


def _fleet_relay(schema: str, app_name: str, emulator: EmulatorServer, *, dsn: str = DSN) -> Relay:
    target = RobotTarget(
        "ops",
        emulator.webhook_url("ops"),
        rate="1000/1s",
        options=TargetOptions(coalesce=False, concurrency=4),
    )
    fleet = Fleet(dsn, schema=schema, pool_size=4, lock_timeout=0.5, application_name=app_name)
    # A short message lease: a claim cut off with its connection comes back soon.
    relay = Relay([target], fleet=fleet, settings=fast_settings(lease=2.0))
    relay.probe_interval = 0
    return relay


async def _post(api: httpx.AsyncClient, key: str) -> int:
    reply = await api.post(
        "/v1/messages",
        json={"target": "ops", "message": text(f"message {key}")},
        headers={"Idempotency-Key": key},
    )
    assert reply.status_code in (202, 503), reply.text  # never a 500, never a lie
    return reply.status_code


async def _delivered_once(emulator: EmulatorServer, api: httpx.AsyncClient, count: int) -> None:
    await eventually(
        lambda: len(emulator.emulator.messages(robot="ops")) >= count,
        timeout=90,
        what=f"{count} deliveries",
    )
    uuids = [str(m.msg_uuid) for m in emulator.emulator.messages(robot="ops")]
    assert len(uuids) == len(set(uuids)) == count  # each exactly once


async def test_the_relay_answers_503_while_the_database_is_gone_and_loses_nothing(
    schema: str, app_name: str, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.add_robot("ops", rate_limit=1000, rate_window=1)
    proxy = ThreadedProxy()  # the limiter's sync calls must not wait for this loop
    proxy.start()
    relay = _fleet_relay(schema, app_name, dingtalk_emulator, dsn=proxy.dsn)
    try:
        await _outage(relay, proxy, dingtalk_emulator)
    finally:
        proxy.close()
    assert await count(schema, "payload LIKE %s", "%during%") == 0


async def _outage(relay: Relay, proxy: ThreadedProxy, emulator: EmulatorServer) -> None:
    async with serving(relay) as api:
        accepted = [f"before-{i}" for i in range(10)]
        assert [await _post(api, key) for key in accepted] == [202] * 10
        await asyncio.to_thread(proxy.cut)
        assert await _post(api, "during") == 503  # not committed: never a 202
        ready = await api.get("/readyz")
        assert ready.status_code == 503 and "outbox" in ready.text
        await asyncio.to_thread(proxy.restore)

        async def accepts() -> bool:
            return await _post(api, "after") == 202

        await eventually(accepts, timeout=60, what="the relay accepting again")
        assert (await api.get("/readyz")).status_code == 200
        await _delivered_once(emulator, api, 11)  # the dispatcher resumed by itself


async def test_killed_sessions_mid_ingest_and_mid_dispatch_lose_and_duplicate_nothing(
    schema: str, app_name: str, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.add_robot("ops", rate_limit=1000, rate_window=1)
    relay = _fleet_relay(schema, app_name, dingtalk_emulator)
    keys = [f"k-{i}" for i in range(120)]
    killed = 0
    async with serving(relay) as api:
        stop = asyncio.Event()

        async def killer() -> None:
            nonlocal killed
            while not stop.is_set():
                for name in (app_name, f"{app_name}-limiter"):
                    killed += await asyncio.to_thread(terminate_backends, name)
                # Every 0.2 s: sessions die mid-statement again and again, yet a reconnect
                # has the time to do some work on a busy machine (every 50 ms starved it).
                await asyncio.sleep(0.2)

        async def client(mine: list[str]) -> None:
            for key in mine:  # a sender retries a 503 with the same key until accepted
                while await _post(api, key) != 202:
                    await asyncio.sleep(0.02)

        killing = asyncio.create_task(killer())
        await asyncio.gather(*(client(keys[i::6]) for i in range(6)))
        await eventually(
            lambda: len(dingtalk_emulator.emulator.messages(robot="ops")) >= 60,
            timeout=60,
            what="deliveries while sessions are killed",
        )
        stop.set()
        await killing
        await _delivered_once(dingtalk_emulator, api, len(keys))

        async def all_settled() -> bool:
            # A send whose settle was cut off is sent again (the same msgUuid, dropped by
            # DingTalk as a repeat) once its lease runs out, and then settled.
            return await count(schema, "status <> 'delivered'") == 0

        await eventually(all_settled, timeout=60, what="every message settled as delivered")
        await _delivered_once(dingtalk_emulator, api, len(keys))
    assert killed > 0
    assert await count(schema) == len(keys)  # one message per idempotency key
