"""A dry run starts light: no httpx, no server library, no Rich (a real subprocess checks)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

from .conftest import Robot

CODE = textwrap.dedent(
    """
    import json, sys
    from dingpush.cli import main
    code = main(["send", "--dry-run", "--json", "hello"])
    heavy = ("httpx", "httpcore", "anyio", "h11", "starlette", "uvicorn", "jinja2", "rich",
             "dingpush.emulator", "dingpush.testing", "sqlite3")
    loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
    print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
    """
)


def test_dry_run_imports_no_server_library_and_no_httpx(env_robot: Robot) -> None:
    process = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(process.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}
    assert json.loads(process.stdout)["dry_run"] is True


def test_python_dash_m_and_the_console_script_agree(env_robot: Robot) -> None:
    script = pathlib.Path(sys.executable).parent / "dingpush"
    for command in ([sys.executable, "-m", "dingpush"], [str(script)]):
        process = subprocess.run(
            [*command, "send", "--dry-run", "--msg-uuid", "u", "hi"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        assert process.stdout.endswith(
            b'{"msgtype":"text","text":{"content":"hi"},"msgUuid":"u"}\n'
        )
