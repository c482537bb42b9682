"""The SQLite-backed limiter: shared by instances, processes; leases; paths; errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

import dingpush
from dingpush import FileRateLimiter, Rate, Robot
from dingpush._engine._filelimiter import LEASE, default_limiter_path
from dingpush.testing import EmulatorServer, FakeClock

RATE = Rate(3, 10.0)


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "cache" / "dingpush" / "ratelimit.sqlite3"


def test_instances_on_one_file_share_the_log(path: pathlib.Path) -> None:
    clock = FakeClock()
    one, two = FileRateLimiter(path, clock=clock), FileRateLimiter(path, clock=clock)
    for limiter in (one, two, one):
        slot = limiter.reserve("robot", RATE)
        assert not isinstance(slot, float)
        clock.advance(1.0)
        slot.complete()
    assert two.reserve("robot", RATE) == pytest.approx(8.0)  # first answer at t=1, free at 11
    assert one.delay("other robot", RATE) == 0.0
    clock.advance(8.0)
    assert not isinstance(two.reserve("robot", RATE), float)
    one.close()
    two.close()
    assert path.exists()


def test_in_flight_reservations_count_and_a_dead_process_releases_its_slot(
    path: pathlib.Path,
) -> None:
    clock = FakeClock()
    limiter = FileRateLimiter(path, clock=clock)
    for _ in range(3):
        assert not isinstance(limiter.reserve("robot", RATE), float)  # never completed
    assert limiter.reserve("robot", RATE) == pytest.approx(10.0)
    clock.advance(LEASE + RATE.window)  # the lease ran out and then the window
    assert not isinstance(limiter.reserve("robot", RATE), float)
    limiter.close()


def test_cool_down_is_shared(path: pathlib.Path) -> None:
    clock = FakeClock()
    one, two = FileRateLimiter(path, clock=clock), FileRateLimiter(path, clock=clock)
    one.cool_down("robot", 600)
    one.cool_down("robot", 5)  # never shortens a longer one
    assert two.cooldown_left("robot") == pytest.approx(600)
    assert two.reserve("robot", RATE) == pytest.approx(600)
    clock.advance(600)
    assert two.cooldown_left("robot") == 0.0
    one.close()
    two.close()


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_limiter_path() == pathlib.Path.home() / ".cache/dingpush/ratelimit.sqlite3"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_limiter_path() == tmp_path / "dingpush" / "ratelimit.sqlite3"
    assert FileRateLimiter().path == tmp_path / "dingpush" / "ratelimit.sqlite3"
    monkeypatch.setenv("DINGPUSH_LIMITER_PATH", str(tmp_path / "x.db"))
    assert default_limiter_path() == tmp_path / "x.db"


def test_an_unusable_path_is_a_config_error(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    limiter = FileRateLimiter(blocker / "sub" / "ratelimit.sqlite3")
    with pytest.raises(dingpush.ConfigError, match="writable path"):
        limiter.delay("robot", RATE)


def test_a_robot_with_a_file_limiter(dingtalk_emulator: EmulatorServer, path: pathlib.Path) -> None:
    clock = FakeClock()
    dingtalk_emulator.emulator.clock = clock
    dingtalk_emulator.add_robot("ops")
    limiter = FileRateLimiter(path, clock=clock)
    url = dingtalk_emulator.webhook_url("ops")
    with Robot(url, limiter=limiter, clock=clock) as one, Robot(url, limiter=limiter) as two:
        for i in range(10):
            one.send(f"one {i}")
            two.send(f"two {i}")
        with pytest.raises(dingpush.RateLimited):
            two.send("21st", wait=False)
    limiter.close()


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from dingpush import FileRateLimiter, MemoryRateLimiter, RateLimited, Robot

    url, path, start, count, shared = sys.argv[1:6]
    limiter = FileRateLimiter(path) if shared == "file" else MemoryRateLimiter()
    outcome = {"sent": 0, "limited": 0}
    with Robot(url, rate="4/0.5s", limiter=limiter, retry=False) as robot:
        time.sleep(max(0.0, float(start) - time.time()))  # all processes start together
        for i in range(int(count)):
            try:
                robot.send(f"process message {i}", wait=shared == "file")
                outcome["sent"] += 1
            except RateLimited:
                outcome["limited"] += 1
    print(json.dumps(outcome))
    """
)


def _run_processes(
    server: EmulatorServer, path: pathlib.Path, shared: str, processes: int = 4, count: int = 5
) -> list[dict[str, int]]:
    server.add_robot("cron", rate_limit=4, rate_window=0.5, lockout=30)
    url = server.webhook_url("cron")
    start = time.time() + 2.0  # time for every interpreter to import dingpush
    args = [url, str(path), str(start), str(count), shared]
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    outcomes = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        outcomes.append(json.loads(out))
    return outcomes


@pytest.mark.slow
def test_processes_sharing_a_file_stay_under_the_limit_together(
    dingtalk_emulator: EmulatorServer, path: pathlib.Path
) -> None:
    outcomes = _run_processes(dingtalk_emulator, path, "file")
    assert sum(o["sent"] for o in outcomes) == 20
    emulator = dingtalk_emulator.emulator
    assert len(emulator.messages(robot="cron")) == 20
    assert emulator.rejections(robot="cron") == []


@pytest.mark.slow
def test_without_the_file_processes_trip_the_limit(
    dingtalk_emulator: EmulatorServer, path: pathlib.Path
) -> None:
    # The control: each process alone respects 4/0.5s, together they do not.
    _run_processes(dingtalk_emulator, path, "memory")
    reasons = {r.reason for r in dingtalk_emulator.emulator.rejections(robot="cron")}
    assert reasons & {"throttled", "locked"}


_OPENER = textwrap.dedent(
    """
    import sys, time
    from dingpush import FileRateLimiter, Rate

    folder, start, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    for i in range(rounds):
        time.sleep(max(0.0, start + i * 0.25 - time.time()))
        limiter = FileRateLimiter(f"{folder}/{i}.sqlite3")
        limiter.reserve("robot", Rate(100, 1.0))
        limiter.close()
    """
)


@pytest.mark.slow
def test_processes_opening_a_new_file_together(tmp_path: pathlib.Path) -> None:
    # Switching a new file to WAL needs an exclusive lock, which SQLite refuses at once (no
    # busy wait) when waiting could deadlock: eight openers at once used to lose ~5% of opens.
    start, rounds = time.time() + 2.0, 4  # time for every interpreter to import dingpush
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(tmp_path), str(start), str(rounds)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    errors = [worker.communicate(timeout=60)[1] for worker in workers]
    assert [w.returncode for w in workers] == [0] * 8, errors
