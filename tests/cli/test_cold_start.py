"""A dry run starts light: no httpx, no server library, no Rich (a real subprocess checks).

Nor the markdown checker, which a plain text message does not need (~4 ms of import).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap
import typing

from .conftest import Robot

CODE = textwrap.dedent(
    """
    import json, sys
    from dingpush.cli import main
    code = main(sys.argv[1:])
    heavy = ("httpx", "httpcore", "anyio", "h11", "starlette", "uvicorn", "jinja2", "rich",
             "pygments", "dingpush.emulator", "dingpush.testing", "dingpush.web",
             "dingpush._markdown")
    loaded = sorted(m for m, module in sys.modules.items() if module is not None
                    and any(m == h or m.startswith(h + ".") for h in heavy))
    print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
    """
)


def test_dry_run_imports_no_server_library_and_no_httpx(env_robot: Robot) -> None:
    report, stdout = loaded_by("send", "--dry-run", "--json", "hello")
    assert report == {"code": 0, "loaded": []}
    assert json.loads(stdout)["dry_run"] is True


def test_a_send_imports_httpx_but_no_server_library_nor_rich(env_robot: Robot) -> None:
    report, _ = loaded_by("send", "hello")
    assert report["code"] == 0
    loaded = {name.split(".")[0] for name in report["loaded"]}
    assert {"httpx", "httpcore"} <= loaded
    assert loaded.isdisjoint({"starlette", "uvicorn", "jinja2", "rich", "pygments"})
    assert env_robot.contents() == ["hello"]


def loaded_by(*args: str) -> tuple[dict[str, typing.Any], str]:
    """Run the CLI in a fresh interpreter; return its exit code and the heavy modules it loaded."""
    process = subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(process.stderr.strip().splitlines()[-1]), process.stdout


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


def test_a_preview_loads_the_renderer_but_no_http_nor_server_library(home: pathlib.Path) -> None:
    (home / "note.md").write_text("### Deploy finished\n- web-01: **ok**\n", encoding="utf-8")
    report, stdout = loaded_by("preview", "note.md")
    assert report["code"] == 0
    assert stdout.splitlines()[-1] == "preview: note.preview.html"
    loaded = {name.split(".")[0] for name in report["loaded"]}
    assert "jinja2" in loaded and "dingpush.web" in report["loaded"]
    assert loaded.isdisjoint({"httpx", "httpcore", "anyio", "starlette", "uvicorn", "rich"})
