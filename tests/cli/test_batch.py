"""``send --batch FILE.jsonl``: every good line delivered in order, every bad one reported with
its number and reason, nothing lost (``--save-failed``), not even on Ctrl-C."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import signal
import subprocess
import sys
import time

import pytest

from dingpush.testing import EmulatorServer

from .conftest import SECRET, TOKEN, Invoke, Robot, Runner


def write(path: pathlib.Path, *lines: str) -> pathlib.Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def other(dingtalk_emulator: EmulatorServer) -> str:
    dingtalk_emulator.add_robot("other", "other-token-0123456789")
    return dingtalk_emulator.webhook_url("other")


def mixed(home: pathlib.Path, other: str) -> pathlib.Path:
    return write(
        home / "messages.jsonl",
        '"第一条\\n多行"',
        '{"msgtype":"markdown","markdown":{"title":"T","text":"**二**"}}',
        "",
        json.dumps({"to": other, "message": "to the other robot"}),
        "not json",
        '{"msgtype":"link","link":{"title":"no text"}}',
        '{"to":"nowhere","message":"x"}',
        '{"message":"with a key","msg_uuid":"batch-8"}',
        '{"mesage":"typo"}',
    )


def test_a_batch_sends_the_good_lines_and_reports_the_bad(
    dingpush: Invoke, env_robot: Robot, other: str, home: pathlib.Path
) -> None:
    result = dingpush("send", "--batch", str(mixed(home, other)), "--save-failed", "failed.jsonl")
    assert result.exit_code == 1, result.output  # failures of several classes (2 and 3)
    assert [p.get("text") or p.get("markdown") for p in env_robot.payloads()] == [
        {"content": "第一条\n多行"},
        {"title": "T", "text": "**二**"},
        {"content": "with a key"},
    ]
    assert [m.msg_uuid for m in env_robot.server.emulator.messages(robot="ops")][2] == "batch-8"
    assert [m.payload["text"] for m in env_robot.server.emulator.messages(robot="other")] == [
        {"content": "to the other robot"}
    ]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("sent 4 of 8 in ")
    assert lines[0].endswith("; waited for a rate-limit slot 0 times (0.0 s); failed 4")
    assert lines[1].startswith("line 5: not JSON: ")
    assert lines[2] == "line 6: link.text: empty, but DingTalk requires it (protocol §1.3)"
    assert lines[3].startswith("line 7: no target named 'nowhere'")
    assert lines[4].startswith("line 9: unknown key 'mesage'")
    failed = (home / "failed.jsonl").read_text(encoding="utf-8").splitlines()
    assert failed == [
        "not json",
        '{"msgtype":"link","link":{"title":"no text"}}',
        '{"to":"nowhere","message":"x"}',
        '{"mesage":"typo"}',
    ]
    assert TOKEN not in result.output and SECRET not in result.output


def test_failed_sends_are_saved_with_their_msg_uuid(
    run: Runner, env_robot: Robot, home: pathlib.Path
) -> None:
    env_robot.server.emulator.inject_fault("errcode", errcode=-1, count=2, robot="ops")
    path = write(
        home / "m.jsonl", '"one"', '{"msgtype":"text","text":{"content":"two"}}', '"three"'
    )
    result = run(
        "send", "--batch", str(path), "--retries", "0", "--save-failed", str(home / "again.jsonl")
    )
    assert result.exit_code == 4
    assert env_robot.contents() == ["three"]
    saved = [json.loads(line) for line in (home / "again.jsonl").read_text().splitlines()]
    assert saved[0]["message"] == "one" and saved[0]["msg_uuid"]
    assert saved[1]["text"] == {"content": "two"} and saved[1]["msgUuid"]
    # The re-run sends the rest; their msgUuids are the ones already tried.
    result = run("send", "--batch", str(home / "again.jsonl"))
    assert result.exit_code == 0, result.output
    assert env_robot.contents() == ["three", "one", "two"]
    uuids = [m.msg_uuid for m in env_robot.server.emulator.messages(robot="ops")]
    assert uuids[1:] == [saved[0]["msg_uuid"], saved[1]["msgUuid"]]


def test_batch_json_summary_and_stdin(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--batch", "-", "--json", input=b'"a"\n"b"\n{"bad":1}\n')
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert (data["sent"], data["waited"], data["failed"]) == (2, 0, 1)
    assert [line["ok"] for line in data["lines"]] == [True, True, False]
    assert data["lines"][0]["msg_uuid"] == env_robot.server.emulator.messages()[0].msg_uuid
    assert data["lines"][2]["error"].startswith("unknown key 'bad'")


def test_a_batch_reads_json_strictly_and_warns_of_unknown_fields(
    dingpush: Invoke, env_robot: Robot, home: pathlib.Path
) -> None:
    path = write(
        home / "strict.jsonl",
        '{"msgtype":"text","text":{"content":"no ping"},"at":{"isAtAll":"false"}}',
        '{"msgtype":"text","text":{"content":"a\\ud800"}}',
        "[" * 100_000,
        '{"msgtype":"text","text":{"content":"typo"},"at":{"isAtALL":true}}',
        '{"msgtype":"text","text":{"content":"ok"},"at":{"atMobiles":"138"}}',
    )
    result = dingpush("send", "--batch", str(path))
    assert result.exit_code == 2, result.output
    assert [m.payload["text"] for m in env_robot.server.emulator.messages()] == [
        {"content": "typo"}
    ]
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "line 4: warning: at.isAtALL is not a field of this message and was ignored; "
        "did you mean isAtAll?"
    )
    assert lines[1].startswith("sent 1 of 5 in ")
    assert lines[2] == ("line 1: at.isAtAll: must be true or false, got the string 'false'")
    assert lines[3].startswith("line 2: ") and "lone surrogate" in lines[3]
    assert lines[4].startswith("line 3: the JSON nests more than 32 levels deep")
    assert lines[5].startswith("line 5: at.atMobiles: must be a list of strings")
    data = json.loads(dingpush("send", "--batch", str(path), "--json", "--dry-run").stdout)
    assert data["lines"][3]["warnings"] == [lines[0].removeprefix("line 4: warning: ")]


def test_batch_dry_run_checks_every_line_and_sends_nothing(
    dingpush: Invoke, env_robot: Robot, other: str, home: pathlib.Path
) -> None:
    result = dingpush("send", "--batch", str(mixed(home, other)), "--dry-run")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "line 1: text to default",
        "line 2: markdown to default",
        f"line 4: text to {other.split('?')[0]}?access_token=othe…6789",
        "line 8: text to default",
    ]
    assert "4 of 8 lines would be sent; nothing was sent" in result.stderr
    assert env_robot.server.emulator.requests() == []


def test_batch_usage(run: Runner, env_robot: Robot, home: pathlib.Path) -> None:
    path = write(home / "m.jsonl", '"x"')
    for args, message in (
        (["hello"], "drop TEXT"),
        (["-m"], "drop message options"),
        (["--msg-uuid", "u"], "drop --msg-uuid"),
    ):
        result = run("send", "--batch", str(path), *args)
        assert result.exit_code == 2 and message in result.stderr
    assert run("send", "--save-failed", "x.jsonl", "hi").exit_code == 2
    empty = write(home / "empty.jsonl", "", "  ")
    result = run("send", "--batch", str(empty))
    assert result.exit_code == 2 and "no messages" in result.stderr


def test_a_batch_to_an_app_target(
    run: Runner, dingtalk_emulator: EmulatorServer, home: pathlib.Path
) -> None:
    dingtalk_emulator.add_app(
        "corp", "dingbatchkey", "batch-app-secret-0123456789", groups={"cidB==": "B"}
    )
    (home / "dingpush.toml").write_text(
        '[apps.corp]\napp_key = "dingbatchkey"\napp_secret = "batch-app-secret-0123456789"\n'
        f'api_base = "{dingtalk_emulator.url}"\noapi_base = "{dingtalk_emulator.url}"\n'
    )
    path = write(
        home / "m.jsonl",
        '"one"',
        '"two"',
        '{"msgtype":"feedCard","feedCard":{"links":[{"title":"a","messageURL":"https://e.com/a","picURL":"https://e.com/a.png"}]}}',
    )
    result = run("send", "--batch", str(path), "--to", "app:corp/group/cidB==")
    assert result.exit_code == 2
    assert [m.payload["msgParam"] for m in dingtalk_emulator.emulator.messages()] == [
        {"content": "one"},
        {"content": "two"},
    ]
    assert "line 3: " in result.stderr and "feed card" in result.stderr
    assert dingtalk_emulator.emulator.token_requests() == 1  # one App for the whole batch


def test_ctrl_c_loses_nothing(env_robot: Robot, home: pathlib.Path) -> None:
    env_robot.server.emulator.inject_fault("delay", delay=0.4, count=None, robot="ops")
    path = write(home / "m.jsonl", *[f'"message {n}"' for n in range(1, 9)])
    # Started as a terminal starts it, whatever started this test: a background job of a
    # non-interactive shell (nohup cmd &, some CI runners) ignores SIGINT, and a child inherits
    # that, so Python would install no KeyboardInterrupt handler and Ctrl-C would do nothing.
    # A handled (not ignored) signal is reset to the default at exec.
    command = [sys.executable, "-m", "dingpush", "send", "--batch", str(path)]
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [*command, "--save-failed", "left.jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    deadline = time.monotonic() + 30
    while len(env_robot.server.emulator.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    time.sleep(0.6)  # the request in flight lands (or not) at the emulator
    delivered = env_robot.contents()
    left = [json.loads(line) for line in (home / "left.jsonl").read_text().splitlines()]
    texts = [item if isinstance(item, str) else item["message"] for item in left]
    # Every message is either delivered or saved; only the one in flight may be both, and it
    # carries its msgUuid, so sending the file again cannot post it twice.
    assert sorted(set(delivered) | set(texts)) == sorted(f"message {n}" for n in range(1, 9))
    both = set(delivered) & set(texts)
    assert len(both) <= 1
    assert "interrupted while sending" in stderr.decode()
    env_robot.server.emulator.clear_faults()
    rerun = subprocess.run(
        [sys.executable, "-m", "dingpush", "send", "--batch", "left.jsonl"],
        capture_output=True,
        env=os.environ.copy(),
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(env_robot.contents()) == sorted(f"message {n}" for n in range(1, 9))


def test_a_batch_on_a_terminal_shows_progress(env_robot: Robot, home: pathlib.Path) -> None:
    path = write(home / "m.jsonl", *[f'"message {n}"' for n in range(1, 4)])
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "dingpush", "send", "--batch", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,  # a terminal: the progress bar is drawn there
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
            timeout=60,
            check=False,
        )
        os.close(terminal)
        drawn = b""
        while chunk := _read(controller):
            drawn += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0, drawn
    screen = drawn.decode("utf-8", "replace")
    assert "sending" in screen and "3/3" in screen
    assert env_robot.contents() == ["message 1", "message 2", "message 3"]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end is closed and everything was read
        return b""
