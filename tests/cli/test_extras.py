"""The 'cli' extra installs what sending needs and no server; a command that needs a server
says which extra to install (issue 15)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Run the CLI with the server packages absent, as after ``pip install 'dingpush[cli]'``.
WITHOUT_SERVERS = """
import sys, importlib.abc

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("starlette", "uvicorn", "jinja2", "uvloop", "httptools"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from dingpush.cli._app import main
sys.exit(main(sys.argv[1:]))
"""


def without_servers(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SERVERS, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "DINGPUSH_WEBHOOK": "abc123"},
        timeout=60,
        check=False,
    )


def test_the_cli_extra_pulls_no_server() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {req.split(">")[0].split("[")[0].split(";")[0].strip() for req in extras["cli"]}
    assert names == {"click", "rich", "pyyaml"}
    assert "dingpush[cli,emulator,relay,postgres,stream]" in extras["dev"]


def test_sending_needs_no_server(tmp_path: pathlib.Path) -> None:
    result = without_servers("send", "--dry-run", "hello", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("POST https://oapi.dingtalk.com/robot/send?access_token=")


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("emulator", "--port", "0"), "emulator"),
        (("preview", "report.md"), "emulator"),
        (("serve",), "relay"),
    ],
)
def test_a_server_command_names_its_extra(
    tmp_path: pathlib.Path, args: tuple[str, ...], extra: str
) -> None:
    (tmp_path / "report.md").write_text("# hi\n")
    result = without_servers(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"pip install 'dingpush[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
