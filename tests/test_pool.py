"""Robot pools: distribution, earliest free slot, failover, exhaustion, sync and async."""

from __future__ import annotations

import asyncio
import collections
import logging

import pytest

import dingpush
from dingpush import AsyncRobot, AsyncRobotPool, RateLimited, Robot, RobotPool, Text
from dingpush.testing import EmulatorServer, FakeClock

NAMES = ("a", "b", "c")


@pytest.fixture
def clock(dingtalk_emulator: EmulatorServer) -> FakeClock:
    clock = FakeClock()
    dingtalk_emulator.emulator.clock = clock
    return clock


@pytest.fixture
def urls(dingtalk_emulator: EmulatorServer) -> list[str]:
    for name in NAMES:
        dingtalk_emulator.add_robot(name, group="ops")
    return [dingtalk_emulator.webhook_url(name) for name in NAMES]


def senders(server: EmulatorServer) -> collections.Counter[str]:
    return collections.Counter(m.sender for m in server.emulator.messages())


def test_sends_are_spread_over_the_free_members(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    with RobotPool(urls, clock=clock) as pool:
        results = [pool.send(f"m{i}") for i in range(9)]
    assert senders(dingtalk_emulator) == {"a": 3, "b": 3, "c": 3}
    assert len({r.target for r in results}) == 3  # each result names the robot that sent it
    # One group: the three robots post into the same conversation.
    assert len({m.conversation_id for m in dingtalk_emulator.emulator.messages()}) == 1


def test_throughput_adds_up_and_the_earliest_free_member_is_used(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    start = clock.time()
    with RobotPool(urls, clock=clock, rate="2/60s") as pool:
        for i in range(6):  # three robots at 2 a minute: 6 without waiting
            pool.send(f"m{i}")
        assert clock.time() == start
        with pytest.raises(RateLimited) as info:
            pool.send("7th", wait=False)
        assert info.value.retry_at == pytest.approx(start + 60)
        pool.send("7th")  # waits for the first slot to free, on whichever robot it is
    assert clock.time() - start >= 60
    assert sum(senders(dingtalk_emulator).values()) == 7
    assert not [r for r in dingtalk_emulator.emulator.requests() if r.reason == "throttled"]


def test_a_member_whose_token_was_revoked_is_taken_out(
    dingtalk_emulator: EmulatorServer,
    urls: list[str],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RobotPool(urls, clock=clock) as pool:
        pool.send("before")
        dingtalk_emulator.emulator.remove_robot("b")  # the group owner removed robot b
        results = [pool.send(f"after {i}") for i in range(6)]
        assert len(pool.members) == 2
    assert all(r.errcode == 0 for r in results)
    assert senders(dingtalk_emulator) == {"a": 4, "c": 3}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "taken out of the pool" in warning.getMessage()
    assert "TokenNotFound" in warning.getMessage()
    assert dingtalk_emulator.emulator.robot("a").token not in caplog.text


def test_disabled_and_misconfigured_members_fail_over(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    dingtalk_emulator.emulator.update_robot("a", status="disabled")
    dingtalk_emulator.emulator.update_robot("b", keywords=("SECRET-WORD",))
    with RobotPool(urls, clock=clock) as pool:
        for i in range(3):
            pool.send(f"m{i}")
        tokens = [m.target.token for m in pool.members]
    assert tokens == [dingtalk_emulator.emulator.robot("c").token]
    assert senders(dingtalk_emulator) == {"c": 3}


def test_when_no_member_is_left_the_error_says_why(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    for name in NAMES:
        dingtalk_emulator.emulator.update_robot(name, status="disabled")
    with RobotPool(urls, clock=clock) as pool:
        with pytest.raises(dingpush.PoolExhausted) as info:
            pool.send("nobody")
        with pytest.raises(dingpush.PoolExhausted):
            pool.send("still nobody")
    assert len(info.value.errors) == 3
    assert "RobotUnavailable" in str(info.value) and info.value.exit_code == 3
    assert all(dingtalk_emulator.emulator.robot(n).token not in str(info.value) for n in NAMES)


def test_a_throttled_member_rests_and_another_takes_the_message(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    dingtalk_emulator.emulator.inject_fault("errcode", errcode=130101, robot="a")
    with RobotPool(urls, clock=clock) as pool:
        result = pool.send("x")
        a = pool.members[0]
        assert a._core.limiter.cooldown_left(a._core.key) == pytest.approx(600)
        for i in range(4):
            pool.send(f"m{i}")
    assert result.attempts == 1
    assert senders(dingtalk_emulator)["a"] == 0
    assert clock.time() == FakeClock().time()  # nobody waited for a's cool-down


def test_a_transient_failure_is_retried_on_the_same_member(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    dingtalk_emulator.emulator.inject_fault("drop", robot="a", after_accept=True)
    with RobotPool(urls, clock=clock) as pool:
        result = pool.send("once")
    assert result.attempts == 2
    assert senders(dingtalk_emulator) == {"a": 1}  # not also on b: that would duplicate it
    assert dingtalk_emulator.emulator.stats().robots["a"].duplicates == 1


def test_members_may_be_robots_and_split_works(
    dingtalk_emulator: EmulatorServer, urls: list[str], clock: FakeClock
) -> None:
    robots = [Robot(url, clock=clock) for url in urls]
    pool = RobotPool(robots)
    result = pool.send(Text("段落\n\n" * 8000), split=True, msg_uuid="big")
    assert len(result.parts) > 1
    assert sum(senders(dingtalk_emulator).values()) == len(result.parts)
    pool.close()  # robots passed in are the caller's to close
    assert not robots[0]._http.is_closed
    for robot in robots:
        robot.close()
    assert "RobotPool" in repr(pool)
    assert all(dingtalk_emulator.emulator.robot(n).token not in repr(pool) for n in NAMES)


def test_bad_members() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RobotPool([])
    with pytest.raises(TypeError, match="RobotPool members"):
        RobotPool([42])  # type: ignore[list-item]


@pytest.mark.anyio
async def test_async_pool_spreads_concurrent_sends(
    dingtalk_emulator: EmulatorServer, urls: list[str]
) -> None:
    for name in NAMES:
        dingtalk_emulator.emulator.update_robot(name, rate_limit=5, rate_window=0.3)
    async with AsyncRobotPool(urls, rate="5/0.3s") as pool:
        await asyncio.gather(*(pool.send(f"m{i}") for i in range(30)))
    counts = senders(dingtalk_emulator)
    assert sum(counts.values()) == 30 and set(counts) == set(NAMES)
    assert not [r for r in dingtalk_emulator.emulator.requests() if r.reason == "throttled"]


@pytest.mark.anyio
async def test_async_pool_failover(dingtalk_emulator: EmulatorServer, urls: list[str]) -> None:
    dingtalk_emulator.emulator.update_robot("a", secret="SECnot-the-one-we-have")
    robots = [AsyncRobot(url) for url in urls]
    async with AsyncRobotPool(robots) as pool:
        for i in range(4):
            await pool.send(f"m{i}")
        assert len(pool.members) == 2
    for robot in robots:
        await robot.aclose()
    assert senders(dingtalk_emulator) == {"b": 2, "c": 2}
