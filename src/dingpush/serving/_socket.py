"""Listening sockets: binding one, its URL, and saying in words why a port cannot be had.

A port already taken is the first thing a new user meets (``make run`` listens on 8080, which
is often in use), so binding turns ``OSError: [Errno 98]`` into :class:`PortInUse`: a
configuration error that names the port, the process holding it when that can be read from
``/proc``, and the setting to change.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import pathlib
import re
import socket

from dingpush import ConfigError

__all__ = ["CannotListen", "PortInUse", "base_url", "bind_socket", "port_holder"]

#: The fix every command can offer; callers that know their setting pass their own.
DEFAULT_HINT = "choose another port with --port (0 picks a free one)"
_PROC = pathlib.Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
_WORDS_SHOWN = 5
_PLAIN = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,23}|/[^\s:@=?&]*")


class CannotListen(ConfigError, OSError):
    """The server cannot listen on the configured host and port; change the setting.

    Also an ``OSError`` (with the original ``errno``), so code that caught the bind error
    before still catches it.
    """

    def __init__(
        self, message: str, *, host: str, port: int, hint: str, error_number: int | None
    ) -> None:
        super().__init__(message)
        self.errno = error_number
        #: The interface and port that could not be had.
        self.host = host
        self.port = port
        #: What to change, in the words of the command that failed.
        self.hint = hint

    def with_hint(self, hint: str) -> CannotListen:
        """The same error, with the fix in the words of a particular command."""
        return _from_os_error(self.host, self.port, self.errno, hint, holder=self.holder)

    @property
    def holder(self) -> str | None:
        return None


class PortInUse(CannotListen):
    """Another process listens on the port already; stop it, or choose another port."""

    def __init__(
        self, message: str, *, host: str, port: int, hint: str, holder: str | None
    ) -> None:
        super().__init__(message, host=host, port=port, hint=hint, error_number=errno.EADDRINUSE)
        self._holder = holder

    @property
    def holder(self) -> str | None:
        """Who holds the port, when ``/proc`` tells (``pid 4242 (python3 -m http.server)``)."""
        return self._holder


def bind_socket(host: str, port: int, *, hint: str = DEFAULT_HINT) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free port, read back with :func:`base_url`.

    Raises :class:`PortInUse` when the port is taken and :class:`CannotListen` when the host
    is not an address of this machine or the port needs privileges; ``hint`` is the fix the
    message offers.
    """
    if not host.strip():  # bind(("", port)) would listen on every interface, unasked
        raise _from_os_error(host, port, errno.EADDRNOTAVAIL, hint)
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # TCP, and with Nagle on, every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Room for hundreds of clients connecting at once (a relay with 500 targets opens a
        # connection each): with 128, SYNs beyond the queue wait for retransmits, seconds.
        sock.listen(min(2048, socket.SOMAXCONN))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise _from_os_error(host, port, exc.errno, hint) from None
        if isinstance(exc, socket.gaierror):  # a name that resolves to nothing: 256.1.1.1
            raise _from_os_error(host, port, errno.EADDRNOTAVAIL, hint) from None
        raise
    return sock


def _from_os_error(
    host: str, port: int, error_number: int | None, hint: str, *, holder: str | None = None
) -> CannotListen:
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if error_number == errno.EADDRINUSE:
        holder = holder or port_holder(port)
        by = f" by {holder}" if holder else ""
        return PortInUse(
            f"cannot listen on {where}: the port is already in use{by}; {hint}",
            host=host,
            port=port,
            hint=hint,
            holder=holder,
        )
    if error_number == errno.EACCES:
        why = f"port {port} needs privileges this user does not have (below 1024: root)"
        fix = hint
    else:
        why = f"{host} is not an address of this machine" if host.strip() else "no address given"
        fix = "listen on one of its addresses with --host (127.0.0.1: this machine only)"
    return CannotListen(
        f"cannot listen on {where}: {why}; {fix}",
        host=host,
        port=port,
        hint=hint,
        error_number=error_number,
    )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def base_url(sock: socket.socket) -> str:
    """Return ``http://host:port`` of a bound socket, with the real port."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def port_holder(port: int, *, proc: pathlib.Path = _PROC) -> str | None:
    """Who listens on TCP ``port``, read from ``/proc``: ``pid 4242 (python3 -m http.server)``.

    ``None`` when it cannot be known (no ``/proc``, or nobody listens). A process of another
    user shows as ``a process of user NAME``: its open files cannot be read.
    """
    sockets = _listening_inodes(port, proc)
    if not sockets:
        return None
    for pid in _pids(proc):
        try:
            fds = list((proc / pid / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                return f"pid {pid}{_command(proc / pid)}"
    return f"a process of user {_user(next(iter(sockets.values())))}"


def _listening_inodes(port: int, proc: pathlib.Path) -> dict[str, int]:
    """``{inode: uid}`` of the sockets listening on ``port`` (IPv4 and IPv6)."""
    found: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = fields[1].rpartition(":")[2]
            try:
                if int(local_port, 16) == port:
                    found[fields[9]] = int(fields[7])
            except ValueError:
                continue
    return found


def _pids(proc: pathlib.Path) -> list[str]:
    try:
        return sorted((p.name for p in proc.iterdir() if p.name.isdigit()), key=int)
    except OSError:
        return []


def _command(process: pathlib.Path) -> str:
    try:
        raw = (process / "cmdline").read_bytes()
    except OSError:
        return ""
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    return f" ({shown_command(words)})" if words else ""


def shown_command(argv: list[str]) -> str:
    """The program and its first plain words (``python3 -m http.server 8080``).

    It stops at the first option or value-looking word: another program's arguments may
    carry credentials (``--robot ops:TOKEN:SEC…``), and an error message must not show them.
    """
    shown = [os.path.basename(argv[0])]
    for word in argv[1:]:
        if len(shown) == _WORDS_SHOWN or not (word == "-m" or _PLAIN.fullmatch(word)):
            return " ".join(shown) + " …"
        shown.append(os.path.basename(word) if "/" in word else word)
    return " ".join(shown)


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)
