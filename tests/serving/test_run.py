"""serve() and BackgroundServer, and who may drive uvicorn (only dingpush.serving)."""

from __future__ import annotations

import ast
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dingpush.serving import BackgroundServer, ServerSettings, bind_socket, serve

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "dingpush"


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    """A bare ASGI app: serving needs no framework."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def _app() -> Any:
    return _hello


def test_a_background_server_serves_and_stops() -> None:
    sock = bind_socket("127.0.0.1", 0)
    stops: list[object] = []

    def run(ready: Callable[[str], None], control: Callable[[Any], None]) -> None:
        settings = ServerSettings(console_logging=False)
        stops.append(serve(_app(), sock, settings=settings, ready=ready, control=control))

    server = BackgroundServer(run, name="hello")
    try:
        url = server.start()
        assert httpx.get(url + "/").text == "hello"
        assert repr(server) == f"<BackgroundServer hello {url}>"
    finally:
        server.stop()
        sock.close()
    assert stops == [None]  # stopped by should_exit, not by a signal
    server.stop()  # idempotent


def test_a_server_that_fails_to_start_says_why() -> None:
    def run(ready: Callable[[str], None], control: Callable[[Any], None]) -> None:
        raise ValueError("no outbox")

    with pytest.raises(RuntimeError, match="broken did not start: ValueError") as info:
        BackgroundServer(run, name="broken").start()
    assert isinstance(info.value.__cause__, ValueError)


def test_importing_serving_loads_no_server_library() -> None:
    import subprocess

    code = (
        "import sys, dingpush.serving;"
        "bad = [m for m in ('uvicorn', 'starlette') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _imports(path: pathlib.Path, *, runtime_only: bool = False) -> set[str]:
    """The modules ``path`` imports (absolute names; ``if TYPE_CHECKING:`` blocks skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "dingpush." + ".".join(path.relative_to(SRC).parent.parts)
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = f"{base}.{node.module}" if node.level and node.module else node.module
            names.add((module or base).rstrip("."))
    return names


def test_uvicorn_is_driven_only_by_dingpush_serving() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "serving" not in path.relative_to(SRC).parts
        and any(name.split(".")[0] == "uvicorn" for name in _imports(path, runtime_only=True))
    ]
    assert offenders == []


def test_only_the_sandbox_wiring_of_the_relay_imports_the_emulator() -> None:
    # Type-only imports too: the other modules name the emulator through _sandbox.py.
    offenders = [
        path.name
        for path in (SRC / "relay").rglob("*.py")
        if path.name != "_sandbox.py"
        and any(n.startswith("dingpush.emulator") for n in _imports(path))
    ]
    assert offenders == []


def test_the_emulator_imports_nothing_of_the_relay() -> None:
    offenders = [
        path.name
        for path in (SRC / "emulator").rglob("*.py")
        if any(n.startswith("dingpush.relay") for n in _imports(path))
    ]
    assert offenders == []


def test_public_names() -> None:
    import dingpush.serving

    names = dingpush.serving.__all__
    constants = [n for n in names if n.isupper()]
    assert names == sorted(constants) + sorted(n for n in names if not n.isupper())
    for name in names:
        value = getattr(dingpush.serving, name)
        if isinstance(value, type) or callable(value):
            assert getattr(value, "__module__", "dingpush.serving") == "dingpush.serving", name
