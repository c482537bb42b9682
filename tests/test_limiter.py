"""Per-robot rate limiting: the sliding-window log, waiting, sharing, cool-downs (protocol §1.5)."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable, Iterator

import pytest

from _pgsupport import DSN, drop_schema, scratch_schema
from dingpush import (
    AsyncRobot,
    FileRateLimiter,
    MemoryRateLimiter,
    PostgresRateLimiter,
    Rate,
    RateLimited,
    RateLimiter,
    Robot,
    default_limiter,
)
from dingpush.testing import EmulatorServer, FakeClock

TOKEN = "limit0000000000000000000000000000000000000000000000000000000000aa"


@pytest.fixture
def clock(dingtalk_emulator: EmulatorServer) -> FakeClock:
    """One fake clock for the emulator's windows and the clients' limiter and sleeps."""
    clock = FakeClock()
    dingtalk_emulator.emulator.clock = clock
    return clock


@pytest.fixture
def url(dingtalk_emulator: EmulatorServer) -> str:
    dingtalk_emulator.add_robot("ops", TOKEN)
    return dingtalk_emulator.webhook_url("ops")


def throttles(server: EmulatorServer) -> int:
    return sum(1 for r in server.emulator.requests() if r.reason in ("throttled", "locked"))


#: Every limiter keeps the same semantics: the generic tests below run against each.
LIMITERS: dict[str, Callable[[FakeClock, pathlib.Path], RateLimiter]] = {
    "memory": lambda clock, tmp_path: MemoryRateLimiter(clock),
    "file": lambda clock, tmp_path: FileRateLimiter(tmp_path / "limits.sqlite3", clock=clock),
    "postgres": lambda clock, tmp_path: PostgresRateLimiter(
        DSN, schema=scratch_schema(), clock=clock
    ),
}


@pytest.fixture(params=sorted(LIMITERS))
def make_limiter(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[Callable[[FakeClock], RateLimiter]]:
    made: list[RateLimiter] = []

    def make(clock: FakeClock) -> RateLimiter:
        made.append(LIMITERS[request.param](clock, tmp_path))
        return made[-1]

    yield make
    for limiter in made:
        if isinstance(limiter, FileRateLimiter | PostgresRateLimiter):
            limiter.close()
        if isinstance(limiter, PostgresRateLimiter):
            drop_schema(limiter.schema)


class TestRate:
    @pytest.mark.parametrize(
        ("text", "limit", "window"),
        [("20/60s", 20, 60.0), ("20/min", 20, 60.0), ("3/1.5s", 3, 1.5), ("100/500ms", 100, 0.5)],
    )
    def test_parse(self, text: str, limit: int, window: float) -> None:
        assert Rate.parse(text) == Rate(limit, window)

    @pytest.mark.parametrize("text", ["", "20", "0/60s", "x/1s", "20/0s"])
    def test_bad_rates_say_the_form(self, text: str) -> None:
        with pytest.raises(ValueError):
            Rate.parse(text)

    def test_str_round_trips(self) -> None:
        assert str(Rate(20, 60.0)) == "20/60s"
        assert Rate.coerce("20/60s") is not None and Rate.coerce(Rate(1, 1)) == Rate(1, 1)


class TestEveryLimiter:
    def test_grants_limit_then_says_how_long_to_wait(
        self, make_limiter: Callable[[FakeClock], RateLimiter]
    ) -> None:
        clock = FakeClock()
        limiter = make_limiter(clock)
        rate = Rate(3, 10.0)
        slots = [limiter.reserve("r", rate) for _ in range(3)]
        assert not any(isinstance(s, float) for s in slots)
        # Still in flight: the 4th must wait a whole window from now at least.
        assert limiter.reserve("r", rate) == pytest.approx(10.0)
        clock.advance(2.0)
        for slot in slots:
            assert not isinstance(slot, float)
            slot.complete()
        # Stamped when the answers came back (t=2), so free at t=12, not t=10.
        assert limiter.delay("r", rate) == pytest.approx(10.0)
        clock.advance(10.0)
        assert limiter.delay("r", rate) == 0.0

    def test_robots_are_independent(self, make_limiter: Callable[[FakeClock], RateLimiter]) -> None:
        limiter = make_limiter(FakeClock())
        rate = Rate(1, 60.0)
        assert not isinstance(limiter.reserve("a", rate), float)
        assert not isinstance(limiter.reserve("b", rate), float)
        assert isinstance(limiter.reserve("a", rate), float)

    def test_completing_twice_counts_once(
        self, make_limiter: Callable[[FakeClock], RateLimiter]
    ) -> None:
        clock = FakeClock()
        limiter = make_limiter(clock)
        slot = limiter.reserve("r", Rate(2, 1.0))
        assert not isinstance(slot, float)
        slot.complete()
        slot.complete()
        assert limiter.delay("r", Rate(2, 1.0)) == 0.0

    def test_late_arrival_grace_holds_the_slot_longer(
        self, make_limiter: Callable[[FakeClock], RateLimiter]
    ) -> None:
        clock = FakeClock()
        limiter = make_limiter(clock)
        slot = limiter.reserve("r", Rate(1, 1.0))
        assert not isinstance(slot, float)
        slot.complete(extra=5.0)
        assert limiter.delay("r", Rate(1, 1.0)) == pytest.approx(6.0)

    def test_cool_down(self, make_limiter: Callable[[FakeClock], RateLimiter]) -> None:
        clock = FakeClock()
        limiter = make_limiter(clock)
        limiter.cool_down("r", 600.0)
        assert limiter.cooldown_left("r") == 600.0
        assert limiter.reserve("r", Rate(20, 60.0)) == pytest.approx(600.0)
        limiter.cool_down("r", 10.0)  # a shorter cool-down never shortens a longer one
        clock.advance(600.0)
        assert limiter.cooldown_left("r") == 0.0
        assert not isinstance(limiter.reserve("r", Rate(20, 60.0)), float)


class TestMemoryRateLimiter:
    def test_default_limiter_is_one_per_clock(self) -> None:
        clock = FakeClock()
        assert default_limiter() is default_limiter()
        assert default_limiter(clock) is default_limiter(clock)
        assert default_limiter(clock) is not default_limiter()


class TestWaiting:
    def test_twenty_pass_and_the_21st_waits_a_window(
        self, dingtalk_emulator: EmulatorServer, url: str, clock: FakeClock
    ) -> None:
        start = clock.time()
        with Robot(url, clock=clock) as robot:
            for i in range(21):
                robot.send(f"m{i}")
        assert clock.time() - start >= 60.0
        assert len(dingtalk_emulator.emulator.messages()) == 21
        assert throttles(dingtalk_emulator) == 0

    def test_wait_false_raises_with_the_next_slot_and_sends_nothing(
        self, dingtalk_emulator: EmulatorServer, url: str, clock: FakeClock
    ) -> None:
        with Robot(url, clock=clock) as robot:
            first = clock.time()
            for i in range(20):
                robot.send(f"m{i}")
            with pytest.raises(RateLimited) as info:
                robot.send("21st", wait=False)
        assert info.value.retry_at == pytest.approx(first + 60.0)
        assert "next slot" in str(info.value) and "20/60s" in str(info.value)
        assert info.value.exit_code == 5
        assert clock.time() == first  # nothing slept
        assert len(dingtalk_emulator.emulator.requests()) == 20

    def test_max_wait_too_short_raises_without_waiting(self, url: str, clock: FakeClock) -> None:
        with Robot(url, clock=clock, rate="2/60s") as robot:
            robot.send("a")
            robot.send("b")
            with pytest.raises(RateLimited):
                robot.send("c", max_wait=30)
            assert clock.time() == FakeClock().time()
            robot.send("c", max_wait=61)

    def test_shared_by_every_client_of_the_robot(
        self, dingtalk_emulator: EmulatorServer, url: str, clock: FakeClock
    ) -> None:
        with Robot(url, clock=clock) as one, Robot(url, clock=clock) as two:
            for i in range(10):
                one.send(f"one {i}")
                two.send(f"two {i}")
            with pytest.raises(RateLimited):
                one.send("over", wait=False)
            with pytest.raises(RateLimited):
                two.send("over", wait=False)
        assert len(dingtalk_emulator.emulator.requests()) == 20

    @pytest.mark.anyio
    async def test_shared_between_sync_and_async_clients(
        self, dingtalk_emulator: EmulatorServer, url: str, clock: FakeClock
    ) -> None:
        with Robot(url, clock=clock, rate="3/60s") as sync_robot:
            sync_robot.send("one")
            sync_robot.send("two")
        async with AsyncRobot(url, clock=clock, rate="3/60s") as robot:
            await robot.send("three")
            with pytest.raises(RateLimited):
                await robot.send("four", wait=False)

    def test_threads_never_exceed_the_servers_sliding_window(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        dingtalk_emulator.add_robot("fast", rate_limit=8, rate_window=0.25, lockout=30)
        url = dingtalk_emulator.webhook_url("fast")
        errors: list[BaseException] = []
        with Robot(url, rate="8/0.25s") as robot:

            def worker(n: int) -> None:
                try:
                    for i in range(6):
                        robot.send(f"thread {n} message {i}")
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        assert len(dingtalk_emulator.emulator.messages(robot="fast")) == 24
        assert throttles(dingtalk_emulator) == 0

    @pytest.mark.anyio
    async def test_tasks_never_exceed_the_servers_sliding_window(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        dingtalk_emulator.add_robot("fast", rate_limit=8, rate_window=0.25, lockout=30)
        # Every request lands late: the server counts arrival, not the moment it was sent.
        dingtalk_emulator.emulator.inject_fault("delay", delay=0.02, count=None)
        async with AsyncRobot(dingtalk_emulator.webhook_url("fast"), rate="8/0.25s") as robot:
            await asyncio.gather(*(robot.send(f"task {i}") for i in range(30)))
        assert len(dingtalk_emulator.emulator.messages(robot="fast")) == 30
        assert throttles(dingtalk_emulator) == 0

    @pytest.mark.anyio
    async def test_async_waiting_lets_the_event_loop_run(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        dingtalk_emulator.add_robot("fast", rate_limit=2, rate_window=0.3, lockout=30)
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async with AsyncRobot(dingtalk_emulator.webhook_url("fast"), rate="2/0.3s") as robot:
            task = asyncio.create_task(ticker())
            for i in range(4):  # the 3rd and 4th wait for a slot
                await robot.send(f"m{i}")
            done.set()
            await task
        assert ticks >= 5  # the loop kept running while the sends waited


class TestCoolDown:
    def test_a_throttle_cools_the_robot_down_then_the_message_goes_again(
        self, dingtalk_emulator: EmulatorServer, clock: FakeClock
    ) -> None:
        # The server allows 3 a minute; the client believes DingTalk's 20 (another sender, a
        # misconfiguration...): the 4th is throttled, the robot rests, the message still goes.
        dingtalk_emulator.add_robot("ops", TOKEN, rate_limit=3, rate_window=60, lockout=600)
        url = dingtalk_emulator.webhook_url("ops")
        start = clock.time()
        with Robot(url, clock=clock) as robot:
            for i in range(3):
                robot.send(f"m{i}")
            result = robot.send("fourth")
        assert clock.time() - start >= 600
        assert result.attempts == 2
        reasons = [r.reason for r in dingtalk_emulator.emulator.requests()]
        assert reasons == ["accepted"] * 3 + ["throttled", "accepted"]
        assert dingtalk_emulator.emulator.messages()[-1].msg_uuid == result.msg_uuid

    def test_the_cool_down_is_shared_and_wait_false_raises(
        self, dingtalk_emulator: EmulatorServer, clock: FakeClock
    ) -> None:
        dingtalk_emulator.add_robot("ops", TOKEN, rate_limit=1, rate_window=60, lockout=600)
        url = dingtalk_emulator.webhook_url("ops")
        with Robot(url, clock=clock, cooldown=300) as one, Robot(url, clock=clock) as two:
            one.send("first")
            with pytest.raises(RateLimited) as throttled:
                one.send("second", wait=False)
            assert throttled.value.errcode == 130101
            assert throttled.value.retry_at == pytest.approx(clock.time() + 300)
            with pytest.raises(RateLimited) as cooling:
                two.send("third", wait=False)
        assert cooling.value.errcode == "local"
        assert "cooling down" in str(cooling.value)
        assert len(dingtalk_emulator.emulator.requests()) == 2  # the third never left

    def test_max_wait_shorter_than_the_cool_down_raises(
        self, dingtalk_emulator: EmulatorServer, clock: FakeClock
    ) -> None:
        dingtalk_emulator.add_robot("ops", TOKEN, rate_limit=1, rate_window=60, lockout=600)
        with Robot(dingtalk_emulator.webhook_url("ops"), clock=clock) as robot:
            robot.send("first")
            with pytest.raises(RateLimited) as info:
                robot.send("second", max_wait=120)
        assert info.value.retry_at is not None

    def test_defaults_are_dingtalks(self, url: str) -> None:
        with Robot(url) as robot:
            core = robot._core
            assert (core.rate, core.cooldown, core.max_wait) == (Rate(20, 60.0), 600.0, 900.0)
            assert core.max_wait >= core.cooldown

    @pytest.mark.parametrize("kwargs", [{"cooldown": -1}, {"max_wait": -1}, {"rate": "0/1s"}])
    def test_bad_settings(self, url: str, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            Robot(url, **kwargs)  # type: ignore[arg-type]


def test_weighted_reservations(make_limiter: Callable[[FakeClock], RateLimiter]) -> None:
    """A work notification to 40 users takes 40 of the app's recipients at once."""
    clock = FakeClock()
    limiter = make_limiter(clock)
    rate = Rate(100, 60.0)
    first = limiter.reserve("recipients", rate, 40)
    second = limiter.reserve("recipients", rate, 40)
    assert not isinstance(first, float) and not isinstance(second, float)
    assert limiter.delay("recipients", rate, 20) == 0.0  # 80 taken, 20 left
    assert limiter.reserve("recipients", rate, 21) == pytest.approx(60.0)
    clock.advance(5.0)
    first.complete()  # 40 stamped at t=5: free at t=65
    clock.advance(10.0)
    second.complete()  # 40 stamped at t=15
    assert limiter.delay("recipients", rate, 60) == pytest.approx(50.0)  # the first 40 free
    assert limiter.delay("recipients", rate, 61) == pytest.approx(60.0)
    assert limiter.delay("recipients", rate) == 0.0
    with pytest.raises(ValueError, match="can never fit"):
        limiter.reserve("recipients", rate, 101)
    with pytest.raises(ValueError, match="weight"):
        limiter.delay("recipients", rate, 0)
