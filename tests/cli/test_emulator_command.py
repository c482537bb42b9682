"""``dingpush emulator`` with apps: a local DingTalk the CLI can send to, in other processes."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from .conftest import run_process

APP_SECRET = "corp-app-secret-0123456789abcdef"


def test_emulator_with_an_app_serves_cli_sends(home: pathlib.Path) -> None:
    command = [
        sys.executable,
        "-m",
        "dingpush",
        "emulator",
        "--port",
        "0",
        "--robot",
        "ci:ci-token:SECci-secret",
        "--app",
        f"corp:dingcorpkey:{APP_SECRET}",
        "--app",
        "generated",
        "--app-user",
        "alice",
        "--app-group",
        "Ops",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().rsplit(" ", 1)[1].strip()
            lines = [process.stdout.readline() for _ in range(6)]
            assert "robot ci (signed)" in lines[0] and "SECci-secret" not in lines[0]
            assert "app corp: AppKey=dingcorpkey AppSecret=corp…cdef AgentId=" in lines[1]
            cid = lines[2].split("groups: ", 1)[1].split(" ", 1)[0]
            assert "app generated: AppKey=ding" in lines[3]
            generated_secret = lines[3].split("AppSecret=", 1)[1].split(" ", 1)[0]
            assert len(generated_secret) > 32  # a sandbox secret the user could not learn else
            (home / "dingpush.toml").write_text(
                f'[apps.corp]\napp_key = "dingcorpkey"\napp_secret = "{APP_SECRET}"\n'
                f'api_base = "{url}"\noapi_base = "{url}"\n'
            )
            result = run_process(["send", "--to", f"app:corp/group/{cid}", "hello"])
            assert result.exit_code == 0, result.output
            result = run_process(["send", "--to", "app:corp/users/alice", "hi"])
            assert result.exit_code == 0, result.output
        finally:
            process.terminate()
            process.wait(timeout=10)
