"""What a new user meets in the first ten minutes (issue 15): a split says it split, --json
covers usage errors, help texts fit their command, and errors read as sentences."""

from __future__ import annotations

import json
import pathlib

import pytest

from dingpush import MessageTooLarge
from dingpush.lowlevel import check_notice_message

from .conftest import Invoke, Robot, Runner
from .test_delivery import LONG


def test_split_says_it_split(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--split", "--msg-uuid", "X", input=LONG.encode())
    assert result.exit_code == 0, result.output
    assert result.stdout == "sent text to default in 2 parts (msgUuid X-1, X-2)\n"
    result = dingpush("send", "--split", "--msg-uuid", "Y", "--json", input=LONG.encode())
    document = json.loads(result.stdout)
    assert document["msg_uuid"] == "Y"
    assert document["parts"] == [{"msg_uuid": "Y-1"}, {"msg_uuid": "Y-2"}]


def test_a_message_that_fits_has_no_parts(run: Runner, env_robot: Robot) -> None:
    result = run("send", "--split", "--json", "--msg-uuid", "Z", "short")
    assert "parts" not in json.loads(result.stdout)
    assert run("send", "--split", "--msg-uuid", "W", "short").stdout == (
        "sent text to default (msgUuid W)\n"
    )


def test_json_covers_usage_errors(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--json", "--card", "x")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UsageError" and error["exit_code"] == 2
    assert "--button" in error["message"]
    result = dingpush("send", "--json", "--no-such-option", "x")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["ok"] is False
    # Without --json (or with it only after --, as the text) click's usage text stays.
    result = dingpush("send", "--card", "x")
    assert (result.exit_code, result.stdout) == (2, "")
    assert "Usage: dingpush send" in result.stderr
    assert env_robot.payloads() == []


def test_preview_help_does_not_say_send(run: Runner) -> None:
    text = run("preview", "--help").stdout
    assert "Send " not in text
    assert "A markdown message (DingTalk's subset)." in text


def test_sentences_start_in_upper_case(run: Runner, env_robot: Robot) -> None:
    env_robot.server.emulator.update_robot("ops", secret="SEC-another-one")
    result = run("send", "hello")
    assert "310000 sign not match. The robot has signing (加签) enabled" in result.stderr


def test_too_large_errcodes_are_the_channels_own() -> None:
    from dingpush import Text

    try:
        check_notice_message(Text("长" * 1000), users=["u1"])
    except MessageTooLarge as exc:
        assert (exc.errcode, exc.refused_locally) == (34016, True)
        assert str(exc).startswith("not sent: the msg is ")
        assert "the work notification takes at most 2,048" in str(exc)
    else:
        raise AssertionError("a 3,000-byte work notification was not refused")


@pytest.mark.parametrize(
    ("webhook", "phrase"),
    [
        ("not a url at all", "is not a webhook: give the URL starting with https://"),
        ("abc/def", "is neither a webhook URL nor a bare access_token"),
        ("ftp://host/robot/send?access_token=abc", "is not a webhook URL"),
        ("https://oapi.dingtalk.com/robot/send?access_token=a%20b", "has characters no webhook"),
        ("tok'en", "is not a webhook"),
    ],
)
def test_nonsense_webhooks_are_refused(
    run: Runner, home: object, webhook: str, phrase: str
) -> None:
    result = run("send", "--dry-run", "hi", env={"DINGPUSH_WEBHOOK": webhook})
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert phrase in result.stderr
    result = run("send", "--dry-run", "--to", webhook, "hi")
    assert result.exit_code == 3, result.output


def test_real_looking_tokens_pass(run: Runner, home: object) -> None:
    for token in (
        "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f2b4d6f8a0c2e4a6c8e0a2c4e6a8c0e2a",
        "sandbox-token",
    ):
        result = run("send", "--dry-run", "hi", env={"DINGPUSH_WEBHOOK": token})
        assert result.exit_code == 0, result.output


def on_terminal(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m dingpush ARGS`` with stderr on a pseudo-terminal: (status, out, err)."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "dingpush", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, **env},
    ) as process:
        os.close(follower)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            err += chunk
        out = process.stdout.read() if process.stdout else b""
        status = process.wait(timeout=60)
    os.close(leader)
    return status, out.decode(), err.decode().replace("\r\n", "\n")


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_retries_are_said_on_a_terminal(home: object) -> None:
    env = {"DINGPUSH_WEBHOOK": f"http://127.0.0.1:{closed_port()}/robot/send?access_token=abc"}
    status, out, err = on_terminal("send", "--retries", "2", "hi", env=env)
    assert (status, out) == (6, "")
    lines = err.splitlines()
    assert [line.split(" in ")[0] for line in lines[:2]] == ["retrying (1/2)", "retrying (2/2)"]
    assert all(line.endswith(" s after connection refused…") for line in lines[:2])
    assert lines[2].startswith("Error: could not complete the request")
    # Not with --quiet or --json, and not when stderr is not a terminal (a log file).
    for flag in ("--quiet", "--json"):
        status, out, err = on_terminal("send", flag, "--retries", "1", "hi", env=env)
        assert status == 6 and "retrying" not in err


def test_retries_are_silent_in_a_log(run: Runner, home: object) -> None:
    env: dict[str, str | None] = {
        "DINGPUSH_WEBHOOK": f"http://127.0.0.1:{closed_port()}/robot/send?access_token=abc"
    }
    result = run("send", "--retries", "1", "hi", env=env)
    assert result.exit_code == 6 and "retrying" not in result.stderr


def test_a_wait_that_will_not_happen_is_not_announced(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    (home / "dingpush.toml").write_text(
        f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{robot.secret}"\nrate = "1/60s"\n'
    )
    assert run("send", "--to", "ops", "one").exit_code == 0
    result = run("send", "--to", "ops", "--max-wait", "2", "two")
    assert result.exit_code == 5
    assert result.stderr.startswith("Error: not sent to ")  # no "waiting 60 s…" first
    assert "waiting" not in result.stderr and "20 messages a minute" not in result.stderr


def test_the_wait_names_the_configured_rate_and_the_cool_down(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    (home / "dingpush.toml").write_text(
        f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{robot.secret}"\nrate = "1/2s"\n'
    )
    assert run("send", "--to", "ops", "one").exit_code == 0
    result = run("send", "--to", "ops", "two")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("waiting 2 s for a free slot of ops (its rate is 1/2s ")
    assert "20 messages a minute" not in result.stderr
    (home / "dingpush.toml").write_text(
        f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "{robot.secret}"\ncooldown = "4s"\n'
    )
    robot.server.emulator.inject_fault("errcode", errcode=130101, count=1, robot="ops")
    assert run("send", "--to", "ops", "--no-wait", "three").exit_code == 5
    result = run("send", "--to", "ops", "four")
    assert result.exit_code == 0, result.output
    assert "DingTalk throttled the robot, and it rests until its cool-down is over" in (
        result.stderr
    )
