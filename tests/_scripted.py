"""A scripted HTTP/1.1 server for the transport's tests: each connection runs a test's function.

It runs on plain blocking sockets in threads of its own, so what it does (answer, close, reset,
stall) happens whatever the client's event loop is doing: a close can arrive while the client
is not looking, as it does with a real server's keep-alive time-out.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

OK_BODY = b'{"errcode":0,"errmsg":"ok"}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(OK_BODY),
    OK_BODY,
)


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def target(self) -> bytes:
        return self.head.split(b" ", 2)[1]


class Peer:
    """One accepted connection, as a handler sees it."""

    def __init__(self, sock: socket.socket, server: ScriptedServer) -> None:
        self.sock = sock
        self._server = server
        self._buffer = b""

    def read_request(self) -> Request | None:
        """The next request on this connection, or ``None`` when the client closed it."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                return None
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            body = self._read_chunked()
        else:
            length = 0
            for line in lower.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            while len(self._buffer) < length:
                if not self._fill():
                    return None
            body, self._buffer = self._buffer[:length], self._buffer[length:]
        request = Request(head, body)
        with self._server.lock:
            self._server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        """Close, as a server's keep-alive time-out does: the client reads an end of file."""
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP reset: the client reads ECONNRESET."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self._buffer += data
        return bool(data)

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self._buffer:
                self._fill()
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            size = int(line, 16)
            while len(self._buffer) < size + 2:
                self._fill()
            body += self._buffer[:size]
            self._buffer = self._buffer[size + 2 :]
            if size == 0:
                return body


Handler = Callable[[Peer, int], None]


@dataclass
class ScriptedServer:
    """``handler(peer, n)`` serves the ``n``-th connection (0-based) in a thread."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}/robot/send?access_token=t"

    def __enter__(self) -> ScriptedServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._accepter.join()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(5)
            with self.lock:
                index = self.connections
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.handler(Peer(sock, self), index)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()


def keep_answering(peer: Peer, index: int) -> None:
    """Answer every request on the connection with errcode 0, until the client closes it."""
    while peer.read_request() is not None:
        peer.send(OK)
