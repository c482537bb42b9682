"""Fixtures for the CLI: an isolated home and working directory, a robot on the emulator, and
runners for the same command line in-process (click's CliRunner) and in a real subprocess."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from dingpush.cli._app import cli
from dingpush.testing import EmulatorServer

TOKEN = "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f2b4d6f8a0c2e4a6c8e0a2c4e6a8c0e2a"
SECRET = "SEC" + "5d41402abc4b2a76b9719d911017c592" * 2

APP_KEY = "dingcorpkey0001"
APP_SECRET = "corp-app-secret-0123456789abcdef"
AGENT_ID = 880011
CID = "cidOpsGroup0000000000000000=="


@dataclass
class Robot:
    """An emulator robot and its URL, ready for DINGPUSH_WEBHOOK or a config file."""

    server: EmulatorServer
    name: str
    token: str
    secret: str | None

    @property
    def url(self) -> str:
        return self.server.webhook_url(self.name)

    def payloads(self) -> list[dict[str, object]]:
        return [dict(m.payload) for m in self.server.emulator.messages(robot=self.name)]

    def contents(self) -> list[str]:
        return [str(p["text"]["content"]) for p in self.payloads()]  # type: ignore[index]


@pytest.fixture
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """An empty home, config and cache directory, and the working directory: nothing leaks in."""
    work = tmp_path / "work"
    work.mkdir()
    for name, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        path = tmp_path / sub
        path.mkdir(exist_ok=True)
        monkeypatch.setenv(name, str(path))
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def robot(dingtalk_emulator: EmulatorServer, home: pathlib.Path) -> Robot:
    dingtalk_emulator.add_robot("ops", TOKEN, secret=SECRET)
    return Robot(dingtalk_emulator, "ops", TOKEN, SECRET)


@pytest.fixture
def env_robot(robot: Robot, monkeypatch: pytest.MonkeyPatch) -> Robot:
    """The robot as the no-config CI case: DINGPUSH_WEBHOOK and DINGPUSH_SECRET."""
    monkeypatch.setenv("DINGPUSH_WEBHOOK", robot.url)
    monkeypatch.setenv("DINGPUSH_SECRET", SECRET)
    return robot


class Runner:
    """Run ``dingpush`` in-process through click's CliRunner."""

    def __init__(self) -> None:
        self._runner = CliRunner()

    def __call__(
        self,
        *args: str,
        input: bytes | str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        return self._runner.invoke(
            cli, list(args), input=input, env=env, catch_exceptions=False, prog_name="dingpush"
        )


@pytest.fixture
def run() -> Runner:
    return Runner()


@dataclass
class Completed:
    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_process(
    args: Sequence[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
) -> Completed:
    """Run ``python -m dingpush ARGS`` in a real subprocess with the test's environment."""
    process = subprocess.run(
        [sys.executable, "-m", "dingpush", *args],
        input=input if input is not None else b"",
        capture_output=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or os.getcwd(),
        timeout=timeout,
        check=False,
    )
    return Completed(process.returncode, process.stdout, process.stderr)


Invoke = typing.Callable[..., Completed]


@pytest.fixture(params=["in-process", "subprocess"])
def dingpush(request: pytest.FixtureRequest, run: Runner) -> Invoke:
    """The same command line, through click's CliRunner and as a real ``python -m dingpush``."""

    def invoke(*args: str, input: bytes | None = None) -> Completed:
        if request.param == "subprocess":
            return run_process(args, input=input)
        result = run(*args, input=input)
        return Completed(result.exit_code, result.stdout_bytes, result.stderr_bytes)

    return invoke


@pytest.fixture
def corp(
    dingtalk_emulator: EmulatorServer, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> EmulatorServer:
    """An enterprise app on the emulator (a group, users, a department) and a configuration
    with its targets: ``room`` (its group), ``people`` (users), ``notice`` (work notices)."""
    dingtalk_emulator.add_app(
        "corp",
        APP_KEY,
        APP_SECRET,
        agent_id=AGENT_ID,
        users=("alice", "bob"),
        departments={7: ("carol",)},
        groups={CID: "Ops"},
    )
    monkeypatch.setenv("CORP_SECRET", APP_SECRET)
    (home / "dingpush.toml").write_text(
        f"""\
[apps.corp]
app_key = "{APP_KEY}"
app_secret = "${{CORP_SECRET}}"
api_base = "{dingtalk_emulator.url}"
oapi_base = "{dingtalk_emulator.url}"

[targets.room]
kind = "app-group"
app = "corp"
open_conversation_id = "{CID}"

[targets.people]
kind = "app-users"
app = "corp"
users = ["alice", "bob"]

[targets.notice]
kind = "work-notice"
app = "corp"
agent_id = {AGENT_ID}
users = ["alice"]
departments = [7]
""",
        encoding="utf-8",
    )
    return dingtalk_emulator
