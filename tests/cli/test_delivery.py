"""The delivery engine through the CLI: the rate budget shared by separate processes (the
file-backed limiter, on by default), waiting or not, retries, splitting, and pools."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from dingpush.testing import EmulatorServer

from .conftest import SECRET, Invoke, Robot, Runner

LONG = "\n\n".join(f"第{n}段：" + "磁盘告警" * 400 for n in range(1, 6))  # ~24,000 bytes


def configure(home: pathlib.Path, text: str) -> None:
    (home / "dingpush.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def limited(robot: Robot, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Robot:
    """The robot as a configured target whose budget is 3 messages in 60 seconds."""
    robot.server.emulator.update_robot("ops", rate_limit=3, rate_window=60.0)
    monkeypatch.setenv("OPS_SECRET", SECRET)
    configure(
        home,
        f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "${{OPS_SECRET}}"\nrate = "3/60s"\n',
    )
    return robot


def test_separate_processes_share_the_budget(limited: Robot, home: pathlib.Path) -> None:
    """Five concurrent `dingpush send` processes against a 3-a-minute robot: three go out at
    once, the other two refuse to wait (--no-wait); DingTalk never sees a fourth."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "dingpush", "send", "--no-wait", "--to", "ops", f"m{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for n in range(5)
    ]
    codes = sorted(p.wait(timeout=60) for p in processes)
    for process in processes:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert codes == [0, 0, 0, 5, 5]
    assert len(limited.contents()) == 3
    assert limited.server.emulator.rejections() == []  # no throttle from DingTalk
    assert (home.parent / "cache" / "dingpush" / "ratelimit.sqlite3").exists()


def test_no_wait_and_max_wait(dingpush: Invoke, limited: Robot) -> None:
    for n in range(3):
        assert dingpush("send", "--to", "ops", f"m{n}").exit_code == 0
    result = dingpush("send", "--to", "ops", "--no-wait", "m3")
    assert result.exit_code == 5
    assert result.stderr.startswith("Error: not sent to ")
    assert "the robot is at its limit of 3/60s messages" in result.stderr
    assert "Pass a larger --max-wait SECONDS to wait for it" in result.stderr
    assert "max_wait=" not in result.stderr
    assert result.stderr.splitlines()[1].startswith('  a pool target (kind = "pool") spreads')
    result = dingpush("send", "--to", "ops", "--max-wait", "0.2", "--json", "m4")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["type"] == "RateLimited"
    assert len(limited.contents()) == 3


def test_a_send_that_waits_says_so(run: Runner, robot: Robot, home: pathlib.Path) -> None:
    configure(home, f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{SECRET}"\nrate = "1/2s"\n')
    assert run("send", "--to", "ops", "one").exit_code == 0
    result = run("send", "--to", "ops", "two")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("waiting 2 s for a free slot of ops")
    assert robot.contents() == ["one", "two"]
    quiet = run("send", "-q", "--to", "ops", "three")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_retries(dingpush: Invoke, env_robot: Robot) -> None:
    env_robot.server.emulator.inject_fault("errcode", errcode=-1, count=1, robot="ops")
    result = dingpush("send", "--json", "busy once")
    assert result.exit_code == 0, result.output
    assert env_robot.contents() == ["busy once"]
    env_robot.server.emulator.inject_fault("http500", count=1, robot="ops")
    result = dingpush("send", "--retries", "0", "not retried")
    assert result.exit_code == 6


def test_split_sends_numbered_parts_in_order(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--split", "--msg-uuid", "long-1", "--json", input=LONG.encode())
    assert result.exit_code == 0, result.output
    contents = env_robot.contents()
    assert len(contents) == 2
    assert [m.msg_uuid for m in env_robot.server.emulator.messages()] == ["long-1-1", "long-1-2"]
    assert [c[:6] for c in contents] == ["(1/2)\n", "(2/2)\n"]
    # Every body fits DingTalk's 20,000 bytes; the parts, markers off, are the text again.
    assert all(r.body_size <= 20_000 for r in env_robot.server.emulator.requests())
    assert "".join(c[6:] for c in contents) == LONG


def test_without_split_a_long_text_is_refused(run: Runner, env_robot: Robot) -> None:
    result = run("send", input=LONG.encode())
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: not sent: the body is ")
    assert "the robot webhook takes at most 20,000" in result.stderr
    assert "use --split" in result.stderr and "split=True" not in result.stderr
    assert "DingTalk refused" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert env_robot.server.emulator.requests() == []


def test_split_dry_run_shows_every_part(run: Runner, env_robot: Robot) -> None:
    result = run("send", "--split", "--dry-run", "--json", "--msg-uuid", "d", input=LONG.encode())
    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout)["requests"]
    assert [r["body"]["msgUuid"] for r in requests] == ["d-1", "d-2"]
    assert [r["note"] for r in requests] == ["part 1 of 2", "part 2 of 2"]
    assert env_robot.server.emulator.requests() == []


def test_a_part_that_fails_says_which_went_out(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    # DingTalk lets this robot send one message a minute; dingpush believes 20.
    robot.server.emulator.update_robot("ops", rate_limit=1)
    configure(home, f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{SECRET}"\n')
    result = run(
        "send", "--to", "ops", "--split", "--no-wait", "--msg-uuid", "p", input=LONG.encode()
    )
    assert result.exit_code == 5  # the exit status of the part's error: rate limited
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: parts 1-1 of 2 were delivered, part 2 failed")
    assert "with --msg-uuid p to deliver the rest" in error
    assert len(robot.contents()) == 1
    result = run(
        "send",
        "--to",
        "ops",
        "--split",
        "--no-wait",
        "--json",
        "--msg-uuid",
        "q",
        input=LONG.encode(),
    )
    data = json.loads(result.stdout)["error"]
    assert data["exit_code"] == 5


@pytest.fixture
def pool(
    dingtalk_emulator: EmulatorServer, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> EmulatorServer:
    for name in ("a", "b"):
        dingtalk_emulator.add_robot(name, f"{name}-token-0123456789", secret=SECRET, rate_limit=2)
    configure(
        home,
        f"""\
[targets.a]
webhook = "{dingtalk_emulator.webhook_url("a")}"
secret = "{SECRET}"
rate = "2/60s"

[targets.b]
webhook = "{dingtalk_emulator.webhook_url("b")}"
secret = "{SECRET}"
rate = "2/60s"

[targets.both]
kind = "pool"
members = ["a", "b"]
""",
    )
    return dingtalk_emulator


def test_a_pool_spreads_messages_over_its_robots(dingpush: Invoke, pool: EmulatorServer) -> None:
    for n in range(4):
        result = dingpush("send", "--to", "both", "--no-wait", f"m{n}")
        assert result.exit_code == 0, result.output
    assert len(pool.emulator.messages(robot="a")) == 2
    assert len(pool.emulator.messages(robot="b")) == 2
    assert pool.emulator.rejections() == []
    result = dingpush("send", "--to", "both", "--no-wait", "m5")
    assert result.exit_code == 5


def test_a_pool_fails_over_when_a_member_is_revoked(run: Runner, pool: EmulatorServer) -> None:
    pool.emulator.update_robot("a", token="revoked-token-0123")
    result = run("send", "--to", "both", "still delivered")
    assert result.exit_code == 0, result.output
    assert [m.payload["text"] for m in pool.emulator.messages(robot="b")] == [
        {"content": "still delivered"}
    ]
    assert result.stderr.startswith("warning: ")


def test_a_pool_dry_run_and_check(run: Runner, pool: EmulatorServer) -> None:
    result = run("send", "--to", "both", "--dry-run", "x")
    assert result.stdout.startswith("# the pool sends through whichever of its 2 robots has a free")
    checks = [f["check"] for f in json.loads(run("check", "both", "--json").stdout)["findings"]]
    assert "a: rate budget" in checks and "b: rate budget" in checks


def test_check_shows_the_shared_budget(run: Runner, limited: Robot) -> None:
    result = run("check", "ops", "--json")
    findings = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    assert findings["rate budget"]["status"] == "ok"
    for n in range(3):
        assert run("send", "--to", "ops", f"m{n}").exit_code == 0
    findings = {f["check"]: f for f in json.loads(run("check", "ops", "--json").stdout)["findings"]}
    assert findings["rate budget"]["detail"].startswith("at its limit of 3/60s: a slot frees in")


def test_a_batch_waits_for_slots_and_counts_it(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    configure(home, f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{SECRET}"\nrate = "2/1s"\n')
    path = home / "m.jsonl"
    path.write_text("".join(f'"m{n}"\n' for n in range(5)))
    result = run("send", "--batch", str(path), "--to", "ops", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sent"] == 5 and data["waited"] >= 1 and data["failed"] == 0
    assert robot.contents() == [f"m{n}" for n in range(5)]
    assert robot.server.emulator.rejections() == []
