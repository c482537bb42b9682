"""``AsyncioTransport``: the async clients' HTTP/1.1 transport on asyncio protocols.

httpcore's async pool, under 64 sends in flight, cost ~0.9 ms of CPU a request, most of it in
its locks, its per-request scan of the pool and anyio's stream layers; this does the same work
in a fraction (docs/benchmarks.md, "The async transport"). One ``asyncio.Protocol`` per
connection parses the answer as it arrives (``_http11``), and a small pool keeps connections
alive per origin.

"Was it sent?" is decided here, where it is known: every failure before the first byte of the
request is handed to the connection raises ``httpx.ConnectError``/``ConnectTimeout``/
``PoolTimeout`` (dingpush reads those as never sent); every failure after raises
``httpx.ReadError``/``WriteError``/``ReadTimeout``/``WriteTimeout``/``RemoteProtocolError``
(maybe delivered). A kept-alive connection the server closed while it sat idle is noticed
before anything is written to it and replaced, never after.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import ssl
import time
import typing

import httpx

from ._http11 import Headers, ParseError, ResponseParser, request_head

__all__ = ["AsyncioTransport", "post_headers"]

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
#: Bodies below this are copied after the head into one write; larger ones are written apart.
_JOIN_BELOW = 64 * 1024
Origin = tuple[bytes, str, int]
Timeouts = typing.Mapping[str, float | None]


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the exchange under way on it, if any."""

    __slots__ = (
        "_answer",
        "_parser",
        "_resume",
        "closed",
        "idle_since",
        "origin",
        "transport",
    )

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: ResponseParser | None = None
        self._answer: asyncio.Future[ResponseParser] | None = None
        self._resume: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser, answer = self._parser, self._answer
        if parser is None or answer is None or answer.done():
            # Bytes while no request is waiting: the connection cannot be trusted any more.
            self.close()
            return
        try:
            complete = parser.feed(data)
        except ParseError as exc:
            answer.set_exception(httpx.RemoteProtocolError(f"DingTalk's answer: {exc}"))
            self.close()
            return
        if complete:
            answer.set_result(parser)

    def eof_received(self) -> bool:
        parser, answer = self._parser, self._answer
        if parser is not None and answer is not None and not answer.done() and parser.feed_eof():
            answer.set_result(parser)
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is not None and not answer.done():
            started = self._parser is not None and self._parser.started
            what = "in the middle of its answer" if started else "without answering"
            error_class = httpx.ReadError if exc is not None else httpx.RemoteProtocolError
            answer.set_exception(error_class(f"the server closed the connection {what}"))
        resume = self._resume
        if resume is not None and not resume.done():
            resume.set_exception(httpx.WriteError("the connection closed while sending"))

    def pause_writing(self) -> None:
        if self._resume is None or self._resume.done():
            self._resume = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    # -- used by the transport ----------------------------------------------------------------

    def stale(self, now: float, expiry: float | None) -> bool:
        """Whether this idle connection must not carry another request.

        Closed, idle too long, or readable: an idle connection has nothing to read unless the
        server closed it (or broke the protocol), and the event loop may not have seen that
        yet. Checking the socket itself closes the classic race with a server's keep-alive
        time-out; what is left of the race (a close in the microseconds after the check) is
        a failure after writing, reported as such.
        """
        if self.closed or self.transport is None or self.transport.is_closing():
            return True
        if expiry is not None and now - self.idle_since > expiry:
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def begin(self, head_only: bool) -> asyncio.Future[ResponseParser]:
        self._parser = ResponseParser(head_only=head_only)
        self._answer = asyncio.get_running_loop().create_future()
        return self._answer

    def end(self) -> None:
        self._parser = self._answer = None

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self, timeout: float | None) -> None:
        """Wait, within ``timeout``, until the kernel takes what was written (large uploads)."""
        resume = self._resume
        if resume is None or resume.done():
            if self.closed:
                raise httpx.WriteError("the connection closed while sending")
            return
        try:
            await asyncio.wait_for(asyncio.shield(resume), timeout)
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request took longer than timeout=") from None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            # RuntimeError: its event loop is closed, and the socket went with it.
            with contextlib.suppress(RuntimeError):
                self.transport.abort()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` for HTTP/1.1 on asyncio, with a keep-alive pool.

    Args:
        verify: an ``ssl.SSLContext`` (dingpush passes its shared one), or ``True``/``False``.
        limits: connections in all (``max_connections``), kept idle (``max_keepalive_...``)
            and for how long (``keepalive_expiry``), as for ``httpx.AsyncHTTPTransport``.
        trust_env: read ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when ``verify`` is not a context.

    Outside asyncio (under trio) every request goes through ``httpx.AsyncHTTPTransport`` with
    the same settings instead.
    """

    #: The protocol of one connection (bench/transports.py swaps its parser to compare).
    connection_class: typing.ClassVar[type[_Connection]] = _Connection

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        trust_env: bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._verify = verify
        self._trust_env = trust_env
        self._limits = limits
        self._ssl: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        unlimited = 1 << 62
        self._max_connections = limits.max_connections or unlimited
        self._max_idle = (
            unlimited
            if limits.max_keepalive_connections is None
            else limits.max_keepalive_connections
        )
        self._expiry = limits.keepalive_expiry
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._idle_count = 0
        self._count = 0  # connections open or opening
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._fallback: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): httpcore speaks anyio
            return await self._other_library().handle_async_request(request)
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None  # a streamed body: sent as it is read
        parser = await self._roundtrip(
            request.method, request.url, request.headers.raw, body, request.extensions, request
        )
        return _response(parser)

    async def post(
        self, url: httpx.URL, headers: Headers, content: bytes, timeouts: Timeouts
    ) -> tuple[int, bytes]:
        """POST ``content`` to ``url`` with these raw ``headers``: (status, decoded body).

        The same exchange as :meth:`handle_async_request`, and the same exceptions, without an
        ``httpx.Request`` and ``httpx.Response`` around it: a client that owns this transport
        (``AsyncRobot``, ``AsyncApp``) posts through here, which saves most of httpx's client
        layer per send (cookies, hooks, redirects, auth, headers merged again). ``headers``
        must already hold ``Host`` and ``Content-Length`` (:func:`post_headers`).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): through httpx's own transport
            request = httpx.Request(
                "POST", url, headers=headers, content=content, extensions={"timeout": timeouts}
            )
            answer = await self._other_library().handle_async_request(request)
            return answer.status_code, await answer.aread()
        parser = await self._roundtrip(b"POST", url, headers, content, {"timeout": timeouts})
        for name, _ in parser.headers:
            if name.lower() == b"content-encoding":  # compressed: let httpx decode it
                answer = _response(parser)
                return answer.status_code, await answer.aread()
        return parser.status, parser.body

    async def _roundtrip(
        self,
        method: str | bytes,
        url: httpx.URL,
        headers: Headers,
        body: bytes | None,
        extensions: typing.Mapping[str, typing.Any],
        request: httpx.Request | None = None,
    ) -> ResponseParser:
        """One exchange on a pooled connection; ``request`` streams a body that is ``None``."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._rebind(loop)
        if self._closed:
            raise httpx.ConnectError("the HTTP client was closed")
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"dingpush sends only http:// and https://, not {url}")
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = extensions.get("timeout", {})
        verb = method if isinstance(method, bytes) else method.encode("ascii")
        try:
            head = request_head(verb, url.raw_path, headers)
        except (ValueError, UnicodeEncodeError) as exc:
            raise httpx.LocalProtocolError(str(exc)) from None
        connection = await self._acquire(origin, timeouts)
        if connection.closed:  # closed as it connected, before a byte was written: say so
            self._discard(connection)
            self._wake_one()
            raise httpx.ConnectError(f"{url.host} closed the connection as soon as it opened")
        # From here on some of the request may reach the server: failures are "maybe sent".
        reusable = False
        try:
            parser = await self._exchange(
                connection, request, head, body, timeouts, head_only=verb == b"HEAD"
            )
            reusable = parser.keep_alive
        finally:
            connection.end()
            self._release(connection, reusable)
        return parser

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request | None,
        head: bytes,
        body: bytes | None,
        timeouts: Timeouts,
        *,
        head_only: bool,
    ) -> ResponseParser:
        answer = connection.begin(head_only=head_only)
        if body is None:
            assert request is not None  # only a request's stream leaves the body unknown
            connection.write(head)
            await self._write_stream(connection, request, timeouts.get("write"))
        elif len(body) < _JOIN_BELOW:
            connection.write(head + body)  # one write, one segment: a send's usual case
        else:
            connection.write(head)
            connection.write(body)
            await connection.drain(timeouts.get("write"))
        read_timeout = timeouts.get("read")
        timer = (
            None
            if read_timeout is None
            else asyncio.get_running_loop().call_later(read_timeout, _time_out, answer)
        )
        try:
            return await answer
        finally:
            if timer is not None:
                timer.cancel()

    async def _write_stream(
        self, connection: _Connection, request: httpx.Request, timeout: float | None
    ) -> None:
        chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
        stream = typing.cast(typing.AsyncIterable[bytes], request.stream)
        async for chunk in stream:
            if not chunk:
                continue
            connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            await connection.drain(timeout)
        if chunked:
            connection.write(b"0\r\n\r\n")
        await connection.drain(timeout)

    # -- the pool -----------------------------------------------------------------------------

    async def _acquire(self, origin: Origin, timeouts: Timeouts) -> _Connection:
        """A connection to ``origin`` with nothing written to it yet: kept alive, or new."""
        deadline: float | None = None
        while True:
            idle = self._idle.get(origin)
            if idle:
                now = time.monotonic()
                while idle:
                    connection = idle.pop()  # the most recently used is the least likely stale
                    self._idle_count -= 1
                    if not connection.stale(now, self._expiry):
                        return connection
                    self._discard(connection)
            if self._count < self._max_connections:
                break
            if self._evict_idle():  # the pool is full of idle connections to other hosts
                continue
            if deadline is None:
                pool = timeouts.get("pool")
                deadline = None if pool is None else time.monotonic() + pool
                if deadline is None:
                    deadline = float("inf")
            await self._wait_for_room(deadline)
        self._count += 1
        try:
            return await self._connect(origin, timeouts.get("connect"))
        except BaseException:
            self._count -= 1
            self._wake_one()
            raise

    async def _wait_for_room(self, deadline: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        remaining = deadline - time.monotonic()
        try:
            if remaining == float("inf"):
                await waiter
            else:
                await asyncio.wait_for(waiter, max(remaining, 0.0))
        except TimeoutError:
            raise httpx.PoolTimeout("no connection of the pool became free in time") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        connection = self.connection_class(origin)
        context = self._tls() if scheme == b"https" else None
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                ),
                timeout,
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            raise httpx.ConnectError(f"could not connect to {host}:{port}: {exc}") from exc
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(verify=self._verify, trust_env=self._trust_env)
        return self._ssl

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if (
            reusable
            and not self._closed
            and not connection.closed
            and self._idle_count < self._max_idle
        ):
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, collections.deque()).append(connection)
            self._idle_count += 1
        else:
            self._discard(connection)
        self._wake_one()

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection of any origin; ``False`` when none is idle."""
        for idle in self._idle.values():
            if idle:
                self._idle_count -= 1
                self._discard(idle.popleft())
                return True
        return False

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._count -= 1

    def _rebind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The client moved to another event loop (a second ``asyncio.run``): start afresh.

        The old loop's connections cannot be closed from this one; when that loop is closed
        already, asyncio warns of each ``unclosed transport`` as it collects it (httpx's own
        transport leaves the same behind). Use one client per event loop.
        """
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()
        self._idle_count = self._count = 0
        self._waiters.clear()
        self._loop = loop

    def _other_library(self) -> httpx.AsyncHTTPTransport:
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(
                verify=self._verify, limits=self._limits, trust_env=self._trust_env
            )
        return self._fallback

    async def aclose(self) -> None:
        self._closed = True
        with contextlib.suppress(RuntimeError):  # under trio there is no asyncio loop
            if asyncio.get_running_loop() is not self._loop:
                self._rebind(asyncio.get_running_loop())
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
                self._count -= 1
        self._idle.clear()
        self._idle_count = 0
        if self._fallback is not None:
            await self._fallback.aclose()


def _response(parser: ResponseParser) -> httpx.Response:
    return httpx.Response(
        parser.status,
        headers=parser.headers,
        stream=httpx.ByteStream(parser.body),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": parser.reason},
    )


def post_headers(client: httpx.AsyncClient, url: httpx.URL, headers: Headers) -> Headers:
    """The raw headers httpx would send with a POST from ``client`` to ``url``, but the length.

    ``Host``, the client's own headers (``User-Agent``, ``Accept-Encoding``, …) and ``headers``
    merged over them, in httpx's order; the caller adds ``Content-Length`` for each body.
    """
    request = client.build_request("POST", url, headers=headers, content=b"")
    return [
        (name, value) for name, value in request.headers.raw if name.lower() != b"content-length"
    ]


def _time_out(answer: asyncio.Future[ResponseParser]) -> None:
    if not answer.done():
        answer.set_exception(httpx.ReadTimeout("DingTalk did not answer within timeout="))
