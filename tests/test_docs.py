"""Every documentation example marked ``<!-- test -->`` runs, against the emulator."""

from __future__ import annotations

import inspect
import pathlib
import re
import typing

import pytest

from dingpush.testing import EmulatorServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"<!-- test -->\s*\n```python\n(?P<code>.*?)\n```", re.DOTALL)

SECRET = "SEC-docs-example-secret"
# The app the examples in docs/apps.md talk to: its credentials come from the environment as a
# user's would, the ids the examples use literally are registered here.
APP_KEY = "dingdocs0123456789ab"
APP_SECRET = "docs-app-secret-0123456789-abcdefghijklmnopqrstuvwxyzABCDEFGH"
DOCS_GROUP = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="
DOCS_AGENT_ID = 1234567890


def _examples() -> list[typing.Any]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code")) + 1
            found.append(pytest.param(path, match["code"], id=f"{path.name}:{line}"))
    return found


@pytest.mark.parametrize(("path", "code"), _examples())
def test_example_runs(
    path: pathlib.Path,
    code: str,
    dingtalk_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
) -> None:
    dingtalk_emulator.add_robot("docs", "docs-token", secret=SECRET)
    monkeypatch.setenv("DINGPUSH_WEBHOOK", dingtalk_emulator.webhook_url("docs"))
    monkeypatch.setenv("DINGPUSH_SECRET", SECRET)
    # FileRateLimiter() in an example writes its log here, not in the user's cache directory.
    monkeypatch.setenv("DINGPUSH_LIMITER_PATH", str(tmp_path / "ratelimit.sqlite3"))
    dingtalk_emulator.add_app(
        "docs",
        APP_KEY,
        APP_SECRET,
        agent_id=DOCS_AGENT_ID,
        users=("manager4220", "user123", "alice"),
        departments={42: ("bob", "carol")},
        groups={DOCS_GROUP: "Ops"},
    )
    monkeypatch.setenv("DINGPUSH_APP_KEY", APP_KEY)
    monkeypatch.setenv("DINGPUSH_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("DINGPUSH_API_BASE", dingtalk_emulator.url)
    monkeypatch.setenv("DINGPUSH_OAPI_BASE", dingtalk_emulator.url)
    monkeypatch.chdir(ROOT)  # examples read files such as docs/images/chart.png
    namespace: dict[str, typing.Any] = {"__name__": f"docs_example_{path.stem}"}
    exec(compile(code, str(path), "exec"), namespace)
    for name, function in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(function):
            dingtalk_emulator.emulator.reset(robots=True)
            parameters = inspect.signature(function).parameters
            function(**({"dingtalk_emulator": dingtalk_emulator} if parameters else {}))


def test_docs_have_examples() -> None:
    assert len(_examples()) >= 3
