"""``StreamClient``: receive what people send an app robot over Stream mode (protocol §13).

An asyncio shell over the sans-I/O core in ``_stream.py``: it opens a connection (an HTTP
POST with the app's credentials, no token), connects to the WebSocket with the ticket, acks
every frame at once and yields each robot message once, and reconnects with back-off when the
connection drops or DingTalk asks it to. The WebSocket library, ``websockets``, comes with the
``stream`` extra and is imported only when a client connects.

Why not the official ``dingtalk-stream`` SDK (0.24.3, read for this): its ``start()`` is async
but opens the connection with blocking ``requests.post`` and no timeout, sleeps a fixed 3 or
10 s between attempts, logs and swallows every exception (wrong credentials retry forever),
creates fire-and-forget tasks per frame, has no type hints (no ``py.typed``), does not
de-duplicate redelivered frames, and pulls in ``requests`` and ``aiohttp`` besides
``websockets``. docs/oncall.md has the details.
"""

from __future__ import annotations

import asyncio
import logging
import random
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from dingpush._errors import (
    APIError,
    BadCredentials,
    ConfigError,
    ProtocolError,
    TransportError,
)
from dingpush._masking import Redactor
from dingpush._wire import JSON_HEADERS, map_transport_errors, parse_v1_reply, payload_bytes

from ._incoming import IncomingMessage
from ._stream import (
    BOT_TOPIC,
    OPEN_PATH,
    Backoff,
    StreamSession,
    connect_url,
    open_payload,
    parse_open,
)

if typing.TYPE_CHECKING:
    import httpx

    from dingpush._apps._async_client import AsyncApp
    from dingpush._results import GroupSendResult, UsersSendResult

__all__ = ["StreamClient"]

logger = logging.getLogger("dingpush")

Handler = Callable[[IncomingMessage], "Awaitable[None] | None"]
Sleep = Callable[[float], Awaitable[None]]

_INSTALL = "Stream mode needs the websockets library: pip install 'dingpush[stream]'"


def _websockets() -> typing.Any:
    try:
        from websockets.asyncio import client
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return client


class StreamClient:
    """Receive an app robot's messages over Stream mode; reconnect until closed.

    Args:
        app_key: the app's AppKey (Client ID).
        app_secret: its AppSecret (Client Secret); never shown in reprs, logs or errors.
        api_base: the ``api.dingtalk.com`` host (``$DINGPUSH_API_BASE``), e.g. the emulator.
        topics: the CALLBACK topics to subscribe to (robot messages by default).
        backoff: delays between reconnection attempts (the first at once).
        open_timeout: seconds the open call and the WebSocket handshake may take.
        ping_interval: seconds between WebSocket pings of ours (DingTalk's SDKs ping each
            60 s, §13.1); ``ping_timeout`` seconds without a pong count as a drop.
        stable_after: a connection that lived this many seconds before it dropped is
            reopened at once; one that dropped sooner counts as a failed attempt and backs off
            (no busy loop against a flapping gateway).
        sleep: how to wait between attempts (tests pass a recorder); ``asyncio.sleep``.
        transport: an httpx async transport for the open call (tests).
        app: the ``AsyncApp`` that :meth:`reply` answers with after a session webhook expired;
            one of the same credentials by default.

    ``async for message in client.messages()`` yields each message once, or
    ``await client.run(handler)``. A wrong AppKey/AppSecret raises ``BadCredentials`` at once
    rather than retrying forever.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        api_base: str | None = None,
        topics: Sequence[str] = (BOT_TOPIC,),
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 60.0,
        ping_timeout: float | None = 20.0,
        stable_after: float = 1.0,
        sleep: Sleep | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app: AsyncApp | None = None,
    ) -> None:
        from dingpush._apps._tokens import api_base as resolve_api_base

        if not isinstance(app_key, str) or not app_key.strip():
            raise BadCredentials("app_key is empty: give the app's AppKey", credential="app_key")
        if not isinstance(app_secret, str) or not app_secret.strip():
            raise BadCredentials(
                "app_secret is empty: give the app's AppSecret", credential="app_secret"
            )
        self.app_key, self._secret = app_key.strip(), app_secret.strip()
        self.api_base = resolve_api_base(api_base)
        self._payload = open_payload(self.app_key, self._secret, topics)
        self._redact = Redactor([self._secret])
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self._open_timeout = open_timeout
        self._ping = (ping_interval, ping_timeout)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._transport = transport
        self._app = app
        self._owns_app = app is None
        self._http: httpx.AsyncClient | None = None
        self._rng = random.Random()
        self.session = StreamSession(topics)
        #: Connections made, and attempts that failed (for logs, tests and benchmarks).
        self.connections = 0
        self.failures = 0
        self._closed = False
        self._ws: typing.Any = None

    def __repr__(self) -> str:
        return f"StreamClient({self.app_key!r}, api_base={self.api_base!r})"

    # -- the loop -------------------------------------------------------------------------

    async def _open(self) -> str:
        """§13.1: POST the credentials; the WebSocket URL with its ticket."""
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport, timeout=self._open_timeout, trust_env=False
            )
        what = "DingTalk (gateway/connections/open)"
        headers = {**JSON_HEADERS, "Accept": "application/json"}
        with map_transport_errors(self._redact, what):
            response = await self._http.post(
                self.api_base + OPEN_PATH, content=payload_bytes(self._payload), headers=headers
            )
        body = parse_v1_reply(
            response.status_code,
            response.content,
            self._redact,
            headers=response.headers,
            what=what,
        )
        return connect_url(*parse_open(body))

    async def messages(self) -> AsyncIterator[IncomingMessage]:
        """Each robot message once, acked before it is yielded; reconnects until closed."""
        from websockets.exceptions import WebSocketException

        client = _websockets()
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._closed:
            delay = self.backoff.delay(failures, self._rng)
            if delay:
                await self._sleep(delay)
            connected_at: float | None = None
            try:
                url = await self._open()
                interval, timeout = self._ping
                async with client.connect(
                    url,
                    open_timeout=self._open_timeout,
                    ping_interval=interval,
                    ping_timeout=timeout,
                    max_size=2**22,
                ) as ws:
                    self._ws = ws
                    self.connections += 1
                    connected_at = loop.time()
                    asked = False
                    async for raw in ws:
                        reaction = self.session.receive(raw)
                        if reaction.reply is not None:
                            await ws.send(reaction.reply)  # ack first (§13.3)
                        if reaction.reconnect:
                            logger.info("the Stream gateway asked to reconnect")
                            asked = True
                            break
                        if reaction.message is not None:
                            yield reaction.message
                # Asked to, or closed after a stable connection: again at once. A gateway that
                # closes every connection at once is backed off from, not hammered.
                lived = loop.time() - connected_at
                failures = 0 if asked or lived >= self.stable_after else failures + 1
            except (BadCredentials, ConfigError):
                raise
            except APIError as exc:
                if not exc.transient:
                    raise
                failures = self._failed(failures, connected_at, loop.time())
                logger.warning("Stream open failed (%s); retrying", exc)
            except (
                TransportError,
                ProtocolError,
                WebSocketException,
                OSError,
                TimeoutError,
            ) as exc:
                failures = self._failed(failures, connected_at, loop.time())
                logger.warning("Stream connection lost (%s); reconnecting", self._redact(str(exc)))
            finally:
                self._ws = None

    def _failed(self, failures: int, connected_at: float | None, now: float) -> int:
        self.failures += 1
        if connected_at is not None and now - connected_at >= self.stable_after:
            return 0
        return failures + 1

    async def run(self, handler: Handler) -> None:
        """Call ``handler`` with each message (awaited when it is a coroutine function)."""
        async for message in self.messages():
            result = handler(message)
            if result is not None:
                await result

    # -- replies ------------------------------------------------------------------------------

    def _reply_app(self) -> AsyncApp:
        if self._app is None:
            from dingpush._apps._async_client import AsyncApp

            self._app = AsyncApp(self.app_key, self._secret, api_base=self.api_base)
        return self._app

    async def reply(
        self, message: IncomingMessage, reply: typing.Any
    ) -> GroupSendResult | UsersSendResult | None:
        """Answer ``message`` in its chat: see :meth:`AsyncApp.reply`."""
        return await self._reply_app().reply(message, reply)

    # -- closing ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop receiving: close the connection and the HTTP client."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._owns_app and self._app is not None:
            await self._app.aclose()
            self._app = None

    async def __aenter__(self) -> StreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
