"""The shell, CI and cron examples of docs/cli.md run, in real shells, against the emulator.

Markers before a fenced block (found by ``tests/_docblocks.py``):

* ``<!-- test: config -->`` (toml): the ``dingpush.toml`` of the shell blocks that follow it;
* ``<!-- test: shell -->`` (sh): run with ``bash -e -o pipefail``; every command must succeed;
  ``<!-- test: shell, exit N -->`` expects the block to end with status N;
* ``<!-- test: ci -->`` (yaml): the ``run: |`` script of a CI step, with the step's ``env``
  given by the test (``pip install`` lines are skipped: dingpush is installed);
* ``<!-- test: cron -->`` (crontab): the command after the five schedule fields, with
  ``/srv/app`` standing for a directory holding the configuration and a ``daily-report.sh``.

Each block runs in a fresh directory holding ``chart.png`` (docs/images) and ``report.pdf``;
the emulator has the robots and the app the guide's configuration names.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import typing

import pytest

from _docblocks import ROOT, marked_blocks
from dingpush.testing import EmulatorServer

from .conftest import SECRET

GUIDE = ROOT / "docs" / "cli.md"
KINDS = ("config", "shell", "ci", "cron")


class Example(typing.NamedTuple):
    kind: str
    body: str
    config: str | None
    exit: int
    line: int


def examples() -> list[typing.Any]:
    config: str | None = None
    found = []
    for block in marked_blocks(GUIDE, KINDS):
        if block.kind == "config":
            config = block.body
            continue
        example = Example(block.kind, block.body, config, block.exit, block.line)
        found.append(pytest.param(example, id=f"{block.where}:{block.kind}"))
    return found


def ci_script(body: str) -> str:
    """The ``run: |`` block of a CI step, without the install line."""
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "run: |")
    indent = len(lines[start]) - len(lines[start].lstrip())
    script = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        if not line.strip().startswith("pip install"):
            script.append(line.strip())
    return "\n".join(script)


@pytest.fixture
def docs_env(dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path) -> dict[str, str]:
    server = dingtalk_emulator
    server.add_robot("docs", "docs-token", secret=SECRET)
    server.add_robot("ops", "ops-token", secret=SECRET, keywords=("告警",))
    server.add_robot("ops-backup", "ops-backup-token", secret=SECRET, keywords=("告警",))
    server.add_robot("dev", "dev-token", secret=SECRET)
    server.add_app(
        "corp",
        "dingdocsappkey01",
        "docs-app-secret-0123456789abcdef",
        agent_id=1234567890,
        users=("manager4220", "alice"),
        departments={42: ("bob",)},
        groups={"cid6KeBBLoveMJOGXoYKF5x7EeiodoA==": "Ops"},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DINGPUSH_", "GITHUB_"))}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        (tmp_path / name).mkdir()
        env[name] = str(tmp_path / name)
    env.update(
        PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DINGPUSH_WEBHOOK=server.webhook_url("docs"),
        DINGPUSH_SECRET=SECRET,
        OPS_WEBHOOK=server.webhook_url("ops"),
        OPS_SECRET=SECRET,
        OPS_BACKUP_WEBHOOK=server.webhook_url("ops-backup"),
        OPS_BACKUP_SECRET=SECRET,
        DEV_WEBHOOK=server.webhook_url("dev"),
        CORP_APP_KEY="dingdocsappkey01",
        CORP_APP_SECRET="docs-app-secret-0123456789abcdef",
        DINGPUSH_API_BASE=server.url,
        DINGPUSH_OAPI_BASE=server.url,
    )
    return env


@pytest.mark.parametrize("example", examples())
def test_guide_example(
    example: Example,
    docs_env: dict[str, str],
    dingtalk_emulator: EmulatorServer,
    tmp_path: pathlib.Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "docs" / "images" / "chart.png", work / "chart.png")
    (work / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    env = dict(docs_env)
    script = example.body
    if example.config is not None and example.kind != "ci":
        (work / "dingpush.toml").write_text(example.config, encoding="utf-8")
    if example.kind == "ci":
        script = ci_script(example.body)
        env.update(
            GITHUB_WORKFLOW="build",
            GITHUB_SHA="0123abc",
            GITHUB_ACTOR="octocat",
            GITHUB_RUN_ID="42",
            GITHUB_RUN_ATTEMPT="1",
            JOB_STATUS="success",
        )
    elif example.kind == "cron":
        script = example.body.split(None, 5)[5].replace("/srv/app", str(work))
        report = work / "daily-report.sh"
        report.write_text("#!/bin/sh\nprintf '### 告警 summary\\n\\n- all green\\n'\n")
        report.chmod(0o755)
    before = len(dingtalk_emulator.emulator.messages())
    flags = ["-e", "-o", "pipefail"] if example.exit == 0 else ["-o", "pipefail"]
    process = subprocess.run(
        ["bash", *flags, "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = process.stdout + process.stderr
    assert process.returncode == example.exit, output
    assert "SEC" + SECRET[3:] not in output and "docs-app-secret" not in output
    if example.kind in ("ci", "cron"):
        assert len(dingtalk_emulator.emulator.messages()) == before + 1


def test_the_guide_has_every_kind_of_example() -> None:
    kinds = {param.values[0].kind for param in examples()}
    assert kinds == {"shell", "ci", "cron"}
    assert len(examples()) >= 10


def test_ci_messages_arrive_as_markdown(
    docs_env: dict[str, str], dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    (ci,) = [p.values[0] for p in examples() if p.values[0].kind == "ci"]
    env = {
        **docs_env,
        "GITHUB_WORKFLOW": "build",
        "GITHUB_SHA": "abc",
        "GITHUB_ACTOR": "me",
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_ATTEMPT": "2",
        "JOB_STATUS": "failure",
    }
    subprocess.run(["bash", "-e", "-c", ci_script(ci.body)], cwd=tmp_path, env=env, check=True)
    (message,) = dingtalk_emulator.emulator.messages(robot="docs")
    assert message.msg_uuid == "ci-7-2"
    assert message.payload["markdown"] == {
        "title": "CI failure",
        "text": "### build: failure\n\n- commit: abc\n- by: me",
    }
