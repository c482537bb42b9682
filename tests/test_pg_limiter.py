"""The PostgreSQL limiter: one budget per robot for a fleet, leases, the database's clock, faults.

The semantics every limiter shares are tested in test_limiter.py (``TestEveryLimiter``); here,
what sharing through a database adds. Each test uses a schema of its own, dropped after it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid

import psycopg
import pytest

import dingpush
from _pgsupport import DSN, terminate_backends
from dingpush import LimiterUnavailable, PostgresRateLimiter, Rate, Robot
from dingpush._postgres._limiter import LEASE
from dingpush.testing import EmulatorServer, FakeClock

RATE = Rate(3, 10.0)


def limiter(schema: str, clock: FakeClock | None, **kw: object) -> PostgresRateLimiter:
    return PostgresRateLimiter(DSN, schema=schema, clock=clock, **kw)  # type: ignore[arg-type]


def test_instances_share_the_log_and_the_cool_downs(schema: str) -> None:
    clock = FakeClock()
    one, two = limiter(schema, clock), limiter(schema, clock)
    for current in (one, two, one):
        slot = current.reserve("robot", RATE)
        assert not isinstance(slot, float)
        clock.advance(1.0)
        slot.complete()
    assert two.reserve("robot", RATE) == pytest.approx(8.0)  # first answer at t=1, free at 11
    assert one.delay("other robot", RATE) == 0.0
    one.cool_down("robot", 600)
    assert two.cooldown_left("robot") == pytest.approx(600)
    assert two.reserve("robot", RATE) == pytest.approx(600)
    one.close()
    two.close()


def test_concurrent_reservations_never_oversubscribe_a_robot(schema: str) -> None:
    rate = Rate(20, 60.0)
    instances = [limiter(schema, None) for _ in range(3)]
    granted: list[object] = []
    barrier = threading.Barrier(12)

    def worker(n: int) -> None:
        current = instances[n % 3]
        barrier.wait()
        for _ in range(5):
            got = current.reserve("robot", rate)
            if not isinstance(got, float):
                granted.append(got)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 20  # 60 asked, across 3 "processes"; exactly the budget granted
    for current in instances:
        current.close()


def test_a_reservation_whose_process_died_frees_after_its_lease(schema: str) -> None:
    clock = FakeClock()
    current = limiter(schema, clock)
    for _ in range(3):
        assert not isinstance(current.reserve("robot", RATE), float)  # never completed
    assert current.reserve("robot", RATE) == pytest.approx(10.0)
    clock.advance(LEASE + RATE.window)  # the lease ran out, then the window
    assert not isinstance(current.reserve("robot", RATE), float)
    current.close()


def test_without_a_clock_the_database_keeps_the_time(schema: str) -> None:
    current = limiter(schema, None)
    slot = current.reserve("robot", Rate(1, 3600.0))
    assert not isinstance(slot, float)
    slot.complete()
    wait = current.delay("robot", Rate(1, 3600.0))
    assert 3500 < wait <= 3600
    current.cool_down("robot", 7200)
    assert 7100 < current.cooldown_left("robot") <= 7200
    current.close()


def test_a_connection_killed_by_the_server_is_replaced(schema: str) -> None:
    name = f"dpt-{uuid.uuid4().hex[:12]}"
    current = limiter(schema, FakeClock(), application_name=name)
    assert not isinstance(current.reserve("robot", RATE), float)
    assert terminate_backends(name) == 1
    assert not isinstance(current.reserve("robot", RATE), float)  # no error: reconnected
    assert current.delay("robot", Rate(2, 10.0)) > 0
    current.close()


def test_an_unreachable_database(schema: str, caplog: pytest.LogCaptureFixture) -> None:
    current = PostgresRateLimiter(
        "postgresql://postgres:pw@127.0.0.1:1/test", schema=schema, timeout=2
    )
    with pytest.raises(LimiterUnavailable, match="nothing was sent") as refused:
        current.reserve("robot", RATE)
    assert "pw" not in str(refused.value) and refused.value.transient
    with pytest.raises(LimiterUnavailable):
        current.cooldown_left("robot")
    current.cool_down("robot", 600)  # best effort: a warning, not an error
    assert "could not record the cool-down" in caplog.text


def test_robots_on_two_instances_share_the_budget_at_the_emulator(
    dingtalk_emulator: EmulatorServer, schema: str
) -> None:
    # The server allows 6 in any 0.5 s and then locks the robot out: two processes each with
    # its own memory budget would trip it; sharing the budget through PostgreSQL does not.
    dingtalk_emulator.add_robot("ops", rate_limit=6, rate_window=0.5, lockout=30)
    url = dingtalk_emulator.webhook_url("ops")
    instances = [limiter(schema, None) for _ in range(2)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with Robot(url, rate="6/0.5s", limiter=instances[n % 2]) as robot:
                for i in range(5):
                    robot.send(f"worker {n} message {i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    emulator = dingtalk_emulator.emulator
    assert len(emulator.messages(robot="ops")) == 20
    assert emulator.rejections(robot="ops") == []
    for current in instances:
        current.close()


def test_the_schema_is_migrated_once_and_checked(schema: str) -> None:
    first, second = limiter(schema, FakeClock()), limiter(schema, FakeClock())
    first.delay("robot", RATE)
    second.delay("robot", RATE)
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(
            f"SELECT component, version FROM {schema}.dingpush_migrations"
        ).fetchall()
    assert rows == [("ratelimit", 1)]
    with pytest.raises(dingpush.ConfigError, match="plain PostgreSQL identifier"):
        PostgresRateLimiter(DSN, schema="no spaces")
    first.close()
    second.close()


def test_without_psycopg_the_error_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None  # as if not installed
        import dingpush
        for make in (dingpush.PostgresRateLimiter, dingpush.PostgresTokenCache):
            try:
                make("postgresql://localhost/db")
            except ImportError as exc:
                print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'dingpush[postgres]'" in line for line in lines)
