"""The set-up commands: `make run` (python -m dingpush.demo: the relay on its embedded
defaults), `dingpush emulator` and `dingpush serve`."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import httpx

from dingpush import Robot, Text


def test_demo_sends_every_type_through_the_relay_and_exits(tmp_path: pathlib.Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dingpush.demo", "--port", "0", "--once"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for kind in ("Text", "Markdown", "Link", "ActionCard", "FeedCard"):
        assert f"sent {kind}" in out.stdout
    assert "The relay delivered 6 of 6" in out.stdout
    assert "accepted 6 messages" in out.stdout
    assert "/_emulator/messages?robot=sandbox" in out.stdout
    assert "/emulator/   (the chat view" in out.stdout
    assert "/   (the relay's dashboard" in out.stdout
    assert "  dashboard: http://127.0.0.1:" in out.stdout  # the banner, too
    assert (tmp_path / "dingpush-outbox.sqlite").exists()  # the embedded outbox, in the cwd


def test_demo_cards_use_the_emulators_own_pictures() -> None:
    # example.com has no pictures: the cards showed broken images in the chat view.
    from dingpush.demo import sample_messages
    from dingpush.emulator import SAMPLE_PICTURES

    base = "http://127.0.0.1:8080/emulator/_emulator/samples"
    payloads = [m.to_payload() for m in sample_messages(base)]
    pictures = [payloads[2]["link"]["picUrl"]]
    pictures += [item["picURL"] for item in payloads[5]["feedCard"]["links"]]
    assert pictures == [f"{base}/{name}" for name in SAMPLE_PICTURES]


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
            rest = [process.stdout.readline() for _ in range(3)]
            assert (
                rest[0]
                == f"  chat view: {url}/  (every conversation, live, and the refused requests)\n"
            )
            assert rest[1] == (
                f"  send to ci: export DINGPUSH_WEBHOOK='{url}/robot/send?access_token=ci-token'"
                " DINGPUSH_SECRET='<its SEC… secret>'\n"
            )
            assert "SECci-secret" not in "".join(rest)
        finally:
            process.terminate()
            process.wait(timeout=10)
    # SIGTERM is a graceful stop: exit 0, not a death by the signal (-15).
    assert process.returncode == 0


def test_dingpush_serve_runs_the_embedded_relay(tmp_path: pathlib.Path) -> None:
    command = [sys.executable, "-m", "dingpush", "serve", "--port", "0"]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("dingpush relay listening on http://127.0.0.1:")
            url = first.split()[4]
            lines = [process.stdout.readline() for _ in range(4)]
            assert any("/emulator/" in line and "chat view" in line for line in lines)
            assert lines[0] == f"  dashboard: {url}/  (targets, messages, retries)\n"
            dashboard = httpx.get(f"{url}/")
            assert dashboard.status_code == 200 and 'data-target="sandbox"' in dashboard.text
            assert "Chat view" in dashboard.text  # the header links to the embedded emulator
            reply = httpx.post(
                f"{url}/robot/send?access_token=sandbox-relay-token",
                json={"msgtype": "text", "text": {"content": "from a subprocess"}},
            )
            assert reply.json()["errcode"] == 0
        finally:
            process.terminate()
            process.wait(timeout=30)
    # SIGTERM is a graceful stop, not a death by signal (tests/relay/test_shutdown.py).
    assert process.returncode == 0


def test_dingpush_serve_reads_the_configuration(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?access_token=abc123"\n'
        '[relay]\nstore = "memory"\n[relay.targets.ops]\ningress_token = "ops-ingress-1"\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "dingpush", "serve", "--config", str(config), "--port", "0"]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("dingpush relay listening on http://127.0.0.1:")
            assert "relay.toml" in first
            dashboard = process.stdout.readline()
            assert dashboard.startswith("  dashboard: http://127.0.0.1:")
            assert "(open on loopback)" in dashboard
            target = process.stdout.readline()
            assert "target ops: robot" in target and "abc123" not in target
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert process.returncode == 0
