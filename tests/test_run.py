"""The set-up commands: `make run` (python -m dingpush.demo) and `dingpush emulator`."""

from __future__ import annotations

import subprocess
import sys

from dingpush import Robot, Text


def test_demo_sends_every_type_and_exits() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dingpush.demo", "--port", "0", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for kind in ("Text", "Markdown", "Link", "ActionCard", "FeedCard"):
        assert f"sent {kind}" in out.stdout
    assert "accepted 6 messages" in out.stdout
    assert "/_emulator/messages?robot=sandbox" in out.stdout


def test_dingpush_emulator_command_serves_a_robot() -> None:
    command = [
        sys.executable,
        "-m",
        "dingpush",
        "emulator",
        "--port",
        "0",
        "--robot",
        "ci:ci-token:SECci-secret",
        "--rate",
        "5/60s",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("DingTalk emulator listening on http://127.0.0.1:")
            url = first.rsplit(" ", 1)[1].strip()
            robot_line = process.stdout.readline()
            assert "robot ci (signed)" in robot_line
            assert "SECci-secret" not in robot_line
            with Robot(f"{url}/robot/send?access_token=ci-token", secret="SECci-secret") as robot:
                assert robot.send(Text("from a subprocess")).errcode == 0
        finally:
            process.terminate()
            process.wait(timeout=10)
