"""The async transports the ``transport`` scenario compares, by name, for the bench worker.

``default`` is what ``AsyncRobot`` ships with (``dingpush._transports.AsyncioTransport``);
the others are the alternatives weighed against it, kept here so the comparison can be rerun:

- ``httpcore``: httpx's own ``AsyncHTTPTransport`` with dingpush's limits (8 connections), the
  default before; ``httpcore-2``: the same held to 2 connections (the leanest pool setting).
- ``h11`` / ``httptools``: ``AsyncioTransport`` with the answer parsed by h11 (pure Python, as
  httpcore does) or by httptools (C, llhttp) instead of dingpush's own parser.
- ``uvloop``: the default transport with uvloop's event loop in place of asyncio's (the
  worker installs it); what an application that runs on uvloop gets.
- ``aiohttp``: an aiohttp-backed transport written for this comparison (below);
  ``httpx-aiohttp``: the ready-made one from PyPI. Both need ``pip install aiohttp
  httpx-aiohttp``; without them their rows are left out.
"""

from __future__ import annotations

import typing

import httpx

from dingpush._robot._client import MAX_CONNECTIONS
from dingpush._transports import AsyncioTransport
from dingpush._transports._asyncio import _Connection
from dingpush._transports._http11 import ParseError, ResponseParser
from dingpush._wire import tls_context

LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)


def available(name: str) -> bool:
    """Whether the packages ``name`` needs are installed."""
    import importlib.util

    needs = {
        "httptools": "httptools",
        "uvloop": "uvloop",
        "aiohttp": "aiohttp",
        "httpx-aiohttp": "httpx_aiohttp",
    }
    module = needs.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def make(name: str) -> httpx.AsyncBaseTransport | None:
    """The transport called ``name``; ``None`` for dingpush's default choice."""
    if name in ("default", "uvloop"):
        return None
    if name in ("httpcore", "httpcore-2"):
        connections = 2 if name == "httpcore-2" else MAX_CONNECTIONS
        return httpx.AsyncHTTPTransport(
            verify=tls_context(True),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
    if name == "h11":
        return _with_parser(_H11Parser)
    if name == "httptools":
        return _with_parser(_HttptoolsParser)
    if name == "aiohttp":
        return _AiohttpTransport()
    if name == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return typing.cast(httpx.AsyncBaseTransport, AiohttpTransport(limits=LIMITS))
    raise ValueError(f"unknown transport {name!r}")


def _with_parser(parser: type) -> AsyncioTransport:
    class Connection(_Connection):
        __slots__ = ()

        def begin(self, head_only: bool) -> typing.Any:
            answer = super().begin(head_only)
            self._parser = parser(head_only=head_only)
            return answer

    class Transport(AsyncioTransport):
        connection_class = Connection

    return Transport(verify=tls_context(True), limits=LIMITS)


class _H11Parser(ResponseParser):
    """The answer parsed by h11, as httpcore does; the request's state is set up alike."""

    __slots__ = ("_h11",)

    def __init__(self, *, head_only: bool = False) -> None:
        import h11

        super().__init__(head_only=head_only)
        self._h11 = h11.Connection(h11.CLIENT)
        method = b"HEAD" if head_only else b"POST"
        headers = [(b"host", b"dingtalk"), (b"content-length", b"0")]
        self._h11.send(h11.Request(method=method, target=b"/", headers=headers))
        self._h11.send(h11.EndOfMessage())

    def feed(self, data: bytes) -> bool:
        import h11

        self._h11.receive_data(data)
        return self._events(h11)

    def feed_eof(self) -> bool:
        import h11

        self._h11.receive_data(b"")
        try:
            return self._events(h11)
        except ParseError:
            return False

    def _events(self, h11: typing.Any) -> bool:
        try:
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    return False
                if isinstance(event, h11.Response):
                    self.status, self.reason = event.status_code, event.reason
                    self.headers = list(event.headers)
                elif isinstance(event, h11.Data):
                    self._parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self.body = b"".join(self._parts)
                    self.keep_alive = self._h11.our_state is h11.DONE and (
                        self._h11.their_state is h11.DONE
                    )
                    self.complete = True
                    return True
                elif event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                    return False
        except h11.RemoteProtocolError as exc:
            raise ParseError(str(exc)) from None


class _HttptoolsParser(ResponseParser):
    """The answer parsed by httptools (llhttp, in C), as uvicorn parses requests."""

    __slots__ = ("_httptools",)

    def __init__(self, *, head_only: bool = False) -> None:
        import httptools

        super().__init__(head_only=head_only)
        self._httptools = httptools.HttpResponseParser(self)

    @property
    def started(self) -> bool:
        return self.status != 0 or bool(self.headers)

    def feed(self, data: bytes) -> bool:
        import httptools

        try:
            self._httptools.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ParseError(str(exc)) from None
        return self.complete

    def feed_eof(self) -> bool:
        return self.complete

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._httptools.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self.body = b"".join(self._parts)
        self.keep_alive = self._httptools.should_keep_alive()
        self.complete = True


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an ``aiohttp.ClientSession``, written for this comparison.

    It maps aiohttp's connect failures to ``ConnectError`` and everything after to ``ReadError``
    (maybe delivered). aiohttp's own exceptions do not say whether the request was written:
    ``ServerDisconnectedError`` comes both from a kept-alive connection the server had closed
    (nothing sent) and from a server that hung up after reading the request.
    """

    def __init__(self) -> None:
        self._session: typing.Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=tls_context(True))
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=[(k.decode(), v.decode()) for k, v in request.headers.raw],
                data=request.content,
                timeout=timeout,
                skip_auto_headers=("Content-Type",),
            ) as response:
                body = await response.read()
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc)) from exc
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=httpx.ByteStream(body),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
