"""Target leases: in a fleet on PostgreSQL, one instance at a time serves an ordered target.

The lease statement (take, renew, refuse, run out, give up), and two relay instances on one
schema against the emulator: an ordered target (``concurrency = 1``) is delivered by one of
them, in order, while a target without order or digests is served by both; a holder that
vanished without giving its lease up is replaced once the lease runs out.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import AsyncIterator

import httpx
import pytest

from _pgsupport import DSN
from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.relay._fleet import Fleet
from dingpush.relay._leases import TargetLeases
from dingpush.relay.stores import PostgresStore
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio

#: Short enough for a test to see a lease run out, long enough for a loaded machine's renewals.
LEASE = 2.0


async def test_a_lease_is_taken_renewed_refused_run_out_and_given_up(schema: str) -> None:
    async with PostgresStore(DSN, schema=schema, pool_size=2) as store:
        assert await store.hold_target("ops", "a", LEASE)
        assert await store.hold_target("ops", "a", LEASE)  # renewed by its holder
        assert not await store.hold_target("ops", "b", LEASE)  # held by a
        assert await store.hold_target("dev", "b", 60)  # other targets are free
        assert await store.target_holders() == {"ops": "a", "dev": "b"}

        async def b_takes_over() -> bool:
            return await store.hold_target("ops", "b", LEASE)

        await eventually(b_takes_over, timeout=10, what="a's lease running out")
        assert not await store.hold_target("ops", "a", LEASE)  # a lost it
        assert await store.release_targets("b") == 2
        assert await store.target_holders() == {}
        assert await store.hold_target("ops", "a", LEASE)


async def test_leases_remember_answers_for_a_third_of_the_lease(schema: str) -> None:
    async with PostgresStore(DSN, schema=schema, pool_size=2) as store:
        now = [0.0]
        one = TargetLeases(store, seconds=30, monotonic=lambda: now[0])
        two = TargetLeases(store, seconds=30, monotonic=lambda: now[0])
        assert await one.hold("ops") and not await two.hold("ops")
        await store.release_targets(one.holder)  # behind their backs
        assert not await two.hold("ops")  # two asks again only after a third of the lease
        now[0] += 10.5
        assert await two.hold("ops") and two.held() == ["ops"]
        assert not await one.hold("ops")  # one learns it lost the target
        await two.release()
        assert await store.target_holders() == {}


@contextlib.asynccontextmanager
async def _instance(
    schema: str, emulator: EmulatorServer
) -> AsyncIterator[tuple[Relay, httpx.AsyncClient]]:
    targets = [
        RobotTarget(
            "ordered",
            emulator.webhook_url("ordered"),
            rate="100/1s",
            options=TargetOptions(coalesce=False, concurrency=1),
        ),
        RobotTarget(
            "spread",
            emulator.webhook_url("spread"),
            rate="100/1s",
            options=TargetOptions(coalesce=False, concurrency=2),
        ),
    ]
    fleet = Fleet(DSN, schema=schema, pool_size=4)
    relay = Relay(targets, fleet=fleet, settings=fast_settings(target_lease=LEASE))
    async with serving(relay) as api:
        yield relay, api


async def _send(api: httpx.AsyncClient, target: str, content: str) -> str:
    reply = await api.post("/v1/messages", json={"target": target, "message": text(content)})
    assert reply.status_code == 202, reply.text
    return typing.cast(str, reply.json()["id"])


async def test_an_ordered_target_is_served_by_one_instance_and_moves_when_its_holder_dies(
    schema: str, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.add_robot("ordered", rate_limit=100, rate_window=1)
    dingtalk_emulator.add_robot("spread", rate_limit=100, rate_window=1)
    emulator = dingtalk_emulator.emulator
    async with PostgresStore(DSN, schema=schema, pool_size=1) as ghost:
        # An instance that took the ordered target and died without giving it up.
        assert await ghost.hold_target("ordered", "dead-instance", LEASE)
        async with (
            _instance(schema, dingtalk_emulator) as (one, api_one),
            _instance(schema, dingtalk_emulator) as (two, api_two),
        ):
            ordered, spread = [], []
            for i in range(30):  # the sender spreads its requests over both instances
                api = (api_one, api_two)[i % 2]
                ordered.append(await _send(api, "ordered", f"ordered {i}"))
                spread.append(await _send(api, "spread", f"spread {i}"))
            await eventually(
                lambda: (
                    len(emulator.messages(robot="ordered")) == 30
                    and len(emulator.messages(robot="spread")) == 30
                ),
                what="every message delivered",
            )
            # Exactly once each, and the ordered target in the order it was accepted.
            assert [m.msg_uuid for m in emulator.messages(robot="ordered")] == ordered
            assert sorted(str(m.msg_uuid) for m in emulator.messages(robot="spread")) == sorted(
                spread
            )
            # The emulator has a message before its sender settles it: wait for the counts.
            await eventually(
                lambda: (
                    sum(
                        r.metrics.value("delivered", name)
                        for r in (one, two)
                        for name in ("ordered", "spread")
                    )
                    == 60
                ),
                what="every delivery settled and counted",
            )
            by = [r.metrics.value("delivered", "ordered") for r in (one, two)]
            assert sorted(by) == [0, 30], by  # one instance served it alone
            holders = await ghost.target_holders()
            assert holders["ordered"] != "dead-instance"
            spread_by = [r.metrics.value("delivered", "spread") for r in (one, two)]
            assert sum(spread_by) == 30
        # Both stopped cleanly: their leases are given up at once.
        assert await ghost.target_holders() == {}
