"""EmulatorServer, FakeClock, the pytest fixtures, serve() and ``python -m dingpush.emulator``."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from dingpush.emulator import Emulator, EmulatorOptions, RobotConfig
from dingpush.testing import EmulatorServer, FakeClock

from ._support import SECRET, signed_query, text

SRC = str(Path(__file__).resolve().parents[2] / "src")


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    return env


def test_server_reports_its_real_port_and_stops() -> None:
    with EmulatorServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        robot = server.add_robot("ops", keywords=("ALERT",))
        assert server.webhook_url("ops") == f"{server.url}/robot/send?access_token={robot.token}"
        assert len(robot.token) == 64
        with httpx.Client() as client:
            assert client.post(server.webhook_url("ops"), json=text("ALERT")).json()["errcode"] == 0
        url = server.url
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(url + "/_emulator/stats")


def test_server_serves_a_given_emulator_with_a_fake_clock() -> None:
    clock = FakeClock()
    emulator = Emulator(clock=clock, robots=[RobotConfig("ops", "tok", rate_limit=1, lockout=0)])
    with EmulatorServer(emulator) as server, httpx.Client() as client:
        url = server.webhook_url("ops")
        assert [client.post(url, json=text()).json()["errcode"] for _ in range(2)] == [0, 130101]
        clock.advance(60)
        assert client.post(url, json=text()).json()["errcode"] == 0
    assert server.emulator is emulator


def test_server_passes_options() -> None:
    options = EmulatorOptions(unknown_token_errcode=400101)
    with EmulatorServer(options=options) as server, httpx.Client() as client:
        reply = client.post(f"{server.url}/robot/send?access_token=x", json=text())
    assert reply.json()["errcode"] == 400101


def test_fixture_starts_empty_with_defaults(dingtalk_emulator: EmulatorServer) -> None:
    emulator = dingtalk_emulator.emulator
    assert emulator.robots() == [] and emulator.messages() == [] and emulator.faults() == []
    assert emulator.options == EmulatorOptions()
    # Leave some state behind for the next test to prove the fixture cleans it.
    dingtalk_emulator.add_robot("leftover")
    emulator.inject_fault("drop")
    emulator.clock = FakeClock()
    emulator.options = EmulatorOptions(body_limit=10)


def test_fixture_cleans_up_after_the_previous_test(dingtalk_emulator: EmulatorServer) -> None:
    test_fixture_starts_empty_with_defaults(dingtalk_emulator)


def test_fake_clock() -> None:
    clock = FakeClock()
    assert clock.time() == 1_700_000_000.0 and clock.monotonic() == 0.0
    clock.sleep(1.5)
    clock.advance(0.5)
    assert (clock.time(), clock.monotonic()) == (1_700_000_002.0, 2.0)
    clock.set(100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 2.0)
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert FakeClock(start=5).time() == 5.0


@pytest.mark.anyio
async def test_fake_clock_asleep() -> None:
    clock = FakeClock()
    await clock.asleep(3)
    assert clock.monotonic() == 3.0


def test_importing_testing_loads_no_server_library() -> None:
    code = (
        "import sys, dingpush.testing;"
        "bad = [m for m in ('uvicorn', 'starlette', 'dingpush.emulator') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), timeout=60)


def test_in_process_emulator_does_not_need_uvicorn() -> None:
    code = "import sys, dingpush.emulator; assert 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), timeout=60)


def test_emulator_does_not_import_the_client_library() -> None:
    # The emulator is an independent implementation of DingTalk: only the sans-I/O signing and
    # masking helpers are shared, so the client is tested against the server, not itself.
    # The chat view draws messages with the shared renderer (dingpush.web), which reads raw
    # payloads itself and imports none of the client's models either. Like every package
    # outside the core, they import public names only (tests/test_public_face.py); its command
    # line reads dingpush's one grammar and the options both entry points share.
    allowed = {"dingpush.lowlevel", "dingpush.markdown", "dingpush.web"}
    # Serving (binding, uvicorn, signals) is shared with the relay; it knows no messages.
    allowed.add("dingpush.serving")
    allowed_names = {
        # From the library's face: its errors, grammar and masking, never a message model.
        "dingpush": {"ConfigError", "DingPushError", "Rate", "mask"}
        | {"MarkdownFinding", "check_markdown"},  # the renderer shows the checker's findings
        "dingpush.config": {
            "CONFIG_OPTION",
            "EMULATOR_OPTIONS",
            "VERBOSE_OPTION",
            "add_arguments",
            "emulator_values",
        },
    }
    packages = [Path(SRC) / "dingpush" / "emulator", Path(SRC) / "dingpush" / "web"]
    for path in (p for package in packages for p in package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module in allowed_names:
                    imported = {alias.name for alias in node.names}
                    assert imported <= allowed_names[node.module], f"{path.name}: {imported}"
                    continue
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "dingpush" or name.startswith("dingpush."):
                    assert name in allowed or name.startswith(
                        ("dingpush.emulator", "dingpush.web")
                    ), f"{path.name} imports {name}"


def test_emulator_loads_none_of_the_client() -> None:
    # dingpush's names load on first use: serving the emulator (a robot send, the chat view)
    # loads the signing, masking and markdown modules of the core, and not one client model.
    code = textwrap.dedent(
        """
        import sys, anyio, httpx
        from dingpush.emulator import Emulator, RobotConfig, create_app

        emulator = Emulator()
        emulator.add_robot(RobotConfig(name="ops", token="t0ken"))

        async def main():
            transport = httpx.ASGITransport(create_app(emulator))
            async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
                body = {"msgtype": "markdown", "markdown": {"title": "t", "text": "## hi"}}
                sent = await http.post("/robot/send?access_token=t0ken", json=body)
                assert sent.json()["errcode"] == 0, sent.text
                assert (await http.get("/")).status_code == 200

        anyio.run(main)
        core = {m for m in sys.modules if m.startswith("dingpush._")}
        allowed = {"dingpush.__version__", "dingpush._lazy", "dingpush._masking",
                   "dingpush._robot",
                   "dingpush._robot._signing", "dingpush._markdown",
           # dingpush.serving's PortInUse is a ConfigError: the exception tree, no model.
           "dingpush._errors",
           # The checks its JSON reader shares with the messages' (depth, lone surrogates).
           "dingpush._wire",
           # The one grammar of rates and durations its options are read with.
           "dingpush._engine", "dingpush._engine._units",
                   "dingpush._markdown._parse", "dingpush._markdown._check"}
        assert core <= allowed, sorted(core - allowed)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), timeout=60)


def test_python_m_dingpush_emulator() -> None:
    command = [
        sys.executable,
        "-m",
        "dingpush.emulator",
        "--port",
        "0",
        "--robot",
        f"ops:cafe0123cafe0123:{SECRET}",
        "--robot",
        "plain",
        "--keyword",
        "ALERT",
        "--rate",
        "2/1s",
    ]
    with subprocess.Popen(
        command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            banner = proc.stdout.readline()
            ops = proc.stdout.readline().split(": ", 1)[1].strip()
            plain = proc.stdout.readline().split(": ", 1)[1].strip()
            assert banner.startswith("DingTalk emulator listening on http://127.0.0.1:")
            assert not banner.rstrip().endswith(":0")
            assert ops.endswith("/robot/send?access_token=cafe0123cafe0123")
            assert "access_token=" in plain
            with httpx.Client() as client:
                query = signed_query(SECRET, int(time.time() * 1000))
                signed = client.post(f"{ops}&{query}", json=text("ALERT"))
                assert signed.json() == {"errcode": 0, "errmsg": "ok"}
                assert client.post(plain, json=text("quiet")).json()["errcode"] == 310000
                robots = client.get(banner.split()[-1] + "/_emulator/robots").json()["robots"]
                assert [r["rate_limit"] for r in robots] == [2, 2]
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    # Ctrl-C: a graceful stop, then 130, as `dingpush emulator` (docs/cli.md's exit statuses).
    assert (proc.returncode, err) == (130, "Aborted.\n")
    assert SECRET not in banner + out + err


def test_cli_rejects_a_bad_rate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dingpush.emulator", "--rate", "fast"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "rate 'fast'" in result.stderr


def test_listening_socket_is_tcp_so_answers_are_not_delayed_by_nagle() -> None:
    # asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP; with proto 0
    # every reply written in two parts waited ~40 ms for the client's delayed ACK.
    import socket

    from dingpush.serving import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
