"""Binding: a port in use or a foreign address is a configuration error that says what to do."""

from __future__ import annotations

import errno
import os
import pathlib
import socket
from collections.abc import Iterator

import pytest

import dingpush
from dingpush.serving import CannotListen, PortInUse, base_url, bind_socket, port_holder
from dingpush.serving._socket import shown_command


@pytest.fixture
def held() -> Iterator[socket.socket]:
    sock = bind_socket("127.0.0.1", 0)
    yield sock
    sock.close()


def test_a_port_in_use_names_the_port_its_holder_and_the_fix(held: socket.socket) -> None:
    port = held.getsockname()[1]
    with pytest.raises(PortInUse) as info:
        bind_socket("127.0.0.1", port)
    exc = info.value
    assert isinstance(exc, dingpush.ConfigError) and exc.exit_code == 3
    assert isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE  # caught as before
    assert (exc.host, exc.port) == ("127.0.0.1", port)
    assert exc.holder is not None and exc.holder.startswith(f"pid {os.getpid()} (")
    assert str(exc).startswith(f"cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert "--port (0 picks a free one)" in str(exc)


def test_the_fix_can_be_worded_for_the_command(held: socket.socket) -> None:
    port = held.getsockname()[1]
    with pytest.raises(PortInUse) as info:
        bind_socket("127.0.0.1", port, hint="set port = … in dingpush.toml")
    assert str(info.value).endswith("; set port = … in dingpush.toml")
    reworded = info.value.with_hint("use --port")
    assert isinstance(reworded, PortInUse) and str(reworded).endswith("; use --port")
    assert reworded.holder == info.value.holder


def test_an_address_of_another_machine(held: socket.socket) -> None:
    with pytest.raises(CannotListen) as info:
        bind_socket("192.0.2.1", 0)  # TEST-NET-1: never an address of this machine
    assert not isinstance(info.value, PortInUse) and info.value.exit_code == 3
    assert "192.0.2.1 is not an address of this machine" in str(info.value)
    assert "--host" in str(info.value)


@pytest.mark.parametrize(
    ("host", "said"),
    [("256.1.1.1", "256.1.1.1 is not an address"), ("", "no address given"), (" ", "no address")],
)
def test_a_host_that_is_no_address(host: str, said: str) -> None:
    # 256.1.1.1 raised socket.gaierror, a traceback; "" listened on every interface, unasked.
    with pytest.raises(CannotListen) as info:
        bind_socket(host, 0)
    assert info.value.exit_code == 3 and said in str(info.value) and "--host" in str(info.value)


def test_port_0_and_the_url(held: socket.socket) -> None:
    port = held.getsockname()[1]
    assert base_url(held) == f"http://127.0.0.1:{port}" and port > 0
    assert held.proto == socket.IPPROTO_TCP  # see bind_socket: Nagle and delayed ACKs


def _fake_proc(root: pathlib.Path, *, readable: bool = True) -> pathlib.Path:
    (root / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    header += "   uid  timeout inode\n"
    tail = " 00000000:00000000 00:00000000 00000000"
    listen = f"   0: 0100007F:1F90 00000000:0000 0A{tail}  1000        0 424242 1 0\n"
    other = f"   1: 0100007F:1F91 0100007F:9C40 01{tail}     0        0 5 1 0\n"
    (root / "net" / "tcp").write_text(header + other + listen, encoding="ascii")
    (root / "net" / "tcp6").write_text(header, encoding="ascii")
    process = root / "4242"
    (process / "fd").mkdir(parents=True)
    (process / "cmdline").write_bytes(
        b"/usr/bin/python3\0-m\0dingpush\0emulator\0--robot\0ops:0f3c9a7e:SECsecret\0"
    )
    if readable:
        os.symlink("socket:[424242]", process / "fd" / "7")
    os.symlink("/dev/null", process / "fd" / "0")
    return root


def test_the_holder_is_read_from_proc(tmp_path: pathlib.Path) -> None:
    proc = _fake_proc(tmp_path / "proc")
    holder = port_holder(8080, proc=proc)
    # The command stops before its options: they may carry credentials.
    assert holder == "pid 4242 (python3 -m dingpush emulator …)"
    assert port_holder(8081, proc=proc) is None  # 8081 is a connection, not a listener


def test_a_holder_whose_files_cannot_be_read(tmp_path: pathlib.Path) -> None:
    proc = _fake_proc(tmp_path / "proc", readable=False)
    holder = port_holder(8080, proc=proc)
    assert holder is not None and holder.startswith("a process of user ")


def test_no_proc_no_holder(tmp_path: pathlib.Path) -> None:
    assert port_holder(8080, proc=tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["/usr/bin/python3", "-m", "http.server", "8080"], "python3 -m http.server 8080"),
        (["/usr/sbin/nginx"], "nginx"),
        (["node", "/srv/app/server.js", "--token", "x"], "node server.js …"),
        (["python3", "a", "b", "c", "d", "e"], "python3 a b c d …"),
        (["dingpush", "serve", "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f2b4d6f8a0c2e"], "dingpush serve …"),
        (["app", "user:pass@host"], "app …"),
    ],
)
def test_the_command_shown_stops_before_anything_secret(argv: list[str], shown: str) -> None:
    assert shown_command(argv) == shown
