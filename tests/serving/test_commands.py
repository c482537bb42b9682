"""The serving commands as a user meets them: a port in use, the banner first, signals.

``make run`` (``python -m dingpush.demo``), ``dingpush serve`` and ``dingpush emulator`` print
no traceback for a port in use: they name the port, its holder and the setting to change,
and exit with the configuration status (3).
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner  # noqa: TID251

from dingpush import demo
from dingpush.cli._app import cli
from dingpush.serving import bind_socket


@pytest.fixture
def held() -> Iterator[int]:
    """A port this test holds open, as another program would."""
    sock = bind_socket("127.0.0.1", 0)
    yield int(sock.getsockname()[1])
    sock.close()


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="dingpush", catch_exceptions=False)
    return result.exit_code, result.output


def _said_in_use(output: str, port: int) -> None:
    assert (
        f"cannot listen on 127.0.0.1:{port}: the port is already in use by pid {os.getpid()}"
        in output
    )
    assert "Traceback" not in output and "Errno" not in output


def test_dingpush_serve_on_a_port_in_use(workdir: pathlib.Path, held: int) -> None:
    code, output = _run("serve", "--port", str(held))
    assert code == 3
    _said_in_use(output, held)
    assert "choose another port with --port (0 picks a free one)" in output


def test_dingpush_serve_names_the_setting_of_its_file(workdir: pathlib.Path, held: int) -> None:
    config = workdir / "dingpush.toml"
    config.write_text(
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?access_token=abc123"\n'
        f'[relay]\nstore = "memory"\nport = {held}\n',
        encoding="utf-8",
    )
    code, output = _run("serve", "--config", str(config))
    assert code == 3
    _said_in_use(output, held)
    assert f"--port, or port = … under [relay] in {config}" in output


def test_dingpush_emulator_on_a_port_in_use(workdir: pathlib.Path, held: int) -> None:
    code, output = _run("emulator", "--port", str(held))
    assert code == 3
    _said_in_use(output, held)
    assert "--port" in output


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "dingpush.emulator"],
        ["-m", "dingpush.relay"],
        ["-m", "dingpush.demo", "--once"],
        ["-m", "dingpush", "serve"],
    ],
    ids=["python -m dingpush.emulator", "python -m dingpush.relay", "make run --port", "serve"],
)
def test_the_process_exits_3_without_a_traceback(
    workdir: pathlib.Path, held: int, command: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--port", str(held)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert f"cannot listen on 127.0.0.1:{held}: the port is already in use" in result.stderr
    assert f"by pid {os.getpid()}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_run_takes_the_next_free_port_and_says_so(
    held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "DEFAULT_PORT", held)
    sock, note = demo.listen("127.0.0.1", None)
    try:
        port = sock.getsockname()[1]
        assert held < port < held + 20
        assert note == (
            f"Port {held} is already in use by pid {os.getpid()} "
            f"({demo_command()}): listening on {port} instead (--port N chooses one)."
        )
    finally:
        sock.close()


def demo_command() -> str:
    from dingpush.serving._socket import shown_command

    return shown_command(pathlib.Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1])


def test_make_run_keeps_8080_when_it_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = bind_socket("127.0.0.1", 0)
    free = probe.getsockname()[1]
    probe.close()
    monkeypatch.setattr(demo, "DEFAULT_PORT", free)
    sock, note = demo.listen("127.0.0.1", None)
    try:
        assert sock.getsockname()[1] == free and note is None
    finally:
        sock.close()


def test_dingpush_emulator_exits_0_on_sigterm_and_ctrl_c(workdir: pathlib.Path) -> None:
    # uvicorn re-raised SIGTERM once it stopped, so the command died by it (exit -15).
    for sig, code in ((signal.SIGTERM, 0), (signal.SIGINT, 130)):
        command = [sys.executable, "-m", "dingpush", "emulator", "--port", "0"]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("DingTalk emulator listening on http://127.0.0.1:")
            process.send_signal(sig)
            _, err = process.communicate(timeout=30)
        assert process.returncode == code, err
        assert "Traceback" not in err


def test_dingpush_serve_prints_its_banner_first(workdir: pathlib.Path) -> None:
    # uvicorn's start-up INFO lines came before the banner; its access log stays off.
    stderr = workdir / "stderr.txt"
    command = [sys.executable, "-m", "dingpush", "serve", "--port", "0"]
    with (
        stderr.open("w") as err,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, text=True, cwd=workdir
        ) as process,
    ):
        assert process.stdout is not None
        try:
            first = process.stdout.readline()
            assert first.startswith("dingpush relay listening on http://127.0.0.1:")
            url = first.split()[4]
            assert httpx.get(f"{url}/v1/targets").status_code == 200
            before_stop = stderr.read_text(encoding="utf-8")
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert process.returncode == 0
    for line in ("Started server process", "Waiting for application", "Uvicorn running on"):
        assert line not in before_stop
    assert '"GET /v1/targets' not in stderr.read_text(encoding="utf-8")  # no access log


def test_a_socket_is_held_by_this_process() -> None:
    # The fixtures above rely on /proc telling who holds a port.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        from dingpush.serving import port_holder

        assert port_holder(sock.getsockname()[1]) == f"pid {os.getpid()} ({demo_command()})"
    finally:
        sock.close()
