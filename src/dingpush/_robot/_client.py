"""Custom robot webhook clients: ``Robot`` (sync) and ``AsyncRobot``, over one sans-I/O core."""

from __future__ import annotations

import threading
import typing

from dingpush._engine._clock import Clock
from dingpush._engine._delivery import Post, Reply, arun, run
from dingpush._engine._limiter import (
    DEFAULT_COOLDOWN,
    DEFAULT_MAX_WAIT,
    DEFAULT_RATE,
    Rate,
    RateLimiter,
)
from dingpush._engine._retry import RetryTypes
from dingpush._engine._split import Splitter
from dingpush._messages._models import Message
from dingpush._results import SendResult
from dingpush._wire import JSON_HEADERS, HttpT, TransportT, http_options, map_transport_errors

from ._core import PreparedSend, RobotCore
from ._target import WebhookTarget

__all__ = ["AsyncRobot", "Robot"]

#: Connections a client keeps to DingTalk; more sends in flight queue for one of them. Eight
#: carry ~150 messages a second at a 50 ms round trip, far above DingTalk's limits, while
#: keeping httpcore's per-request scan of its pool short (see ``_limits``).
MAX_CONNECTIONS = 8

if typing.TYPE_CHECKING:
    import httpx

    from dingpush._transports import DirectPost
    from dingpush._wire import ProxyTypes, TimeoutTypes


def _http_options(
    timeout: TimeoutTypes, proxy: ProxyTypes, trust_env: bool
) -> dict[str, typing.Any]:
    # No pool time-out: a send queued behind others for a connection is bounded by their own
    # connect/read time-outs, and a local queue is not DingTalk failing to answer.
    options = http_options(timeout, proxy, trust_env, pool=None)
    return {**options, "limits": _limits(), "headers": JSON_HEADERS}


def _limits() -> httpx.Limits:
    """All of a client's requests go to one host: a few kept-alive connections serve best.

    Profiled with 64 sends in flight against the emulator: httpx keeps 20 connections alive by
    default, so 64 connections churn, and httpcore's pool checks every connection for every
    request (1.7 ms of CPU a message at 16 connections, 1.1 ms at 8, 0.9 ms at 2).
    """
    import httpx

    return httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)


class BaseRobot(typing.Generic[HttpT, TransportT]):
    """What ``Robot`` and ``AsyncRobot`` share: their arguments, their core, their repr.

    One ``__init__`` serves both, so the two clients cannot drift apart; the subclasses add
    only I/O: the HTTP client they make (:meth:`_open_http`) and how they send with it.
    """

    def __init__(
        self,
        target: str | WebhookTarget,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        timeout: TimeoutTypes = None,
        proxy: ProxyTypes = None,
        trust_env: bool = True,
        transport: TransportT | None = None,
        http_client: HttpT | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
        rate: Rate | str = DEFAULT_RATE,
        cooldown: float = DEFAULT_COOLDOWN,
        limiter: RateLimiter | None = None,
        retry: RetryTypes = True,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self._core = RobotCore(
            target,
            secret=secret,
            keyword=keyword,
            base_url=base_url,
            clock=clock,
            rate=rate,
            cooldown=cooldown,
            limiter=limiter,
            retry=retry,
            max_wait=max_wait,
        )
        self._url_text = ""
        self._url_parsed: typing.Any = None
        self._owns_http = http_client is None
        self._http: HttpT = self._open_http(
            http_client, transport, _http_options(timeout, proxy, trust_env)
        )

    def _open_http(
        self,
        http_client: HttpT | None,
        transport: TransportT | None,
        options: dict[str, typing.Any],
    ) -> HttpT:
        """The HTTP client to send with (``http_client``, or a new one) and the shell's gate."""
        raise NotImplementedError

    def _url(self, core: RobotCore) -> typing.Any:
        """The request URL as an ``httpx.URL``, parsed again only when it changed.

        httpx parses a ``str`` URL on every request (~40 µs, a tenth of a send's CPU); an
        unsigned robot's URL never changes. A signed one changes every millisecond.
        """
        text = core.url()
        if text != self._url_text:
            import httpx

            self._url_text, self._url_parsed = text, httpx.URL(text)
        return self._url_parsed

    @property
    def target(self) -> WebhookTarget:
        return self._core.target

    def __repr__(self) -> str:
        return self._core.describe(type(self).__name__)


class Robot(BaseRobot["httpx.Client", "httpx.BaseTransport"]):
    """Send messages to one DingTalk group through a custom robot's webhook.

    Args:
        target: the webhook URL, its ``access_token``, or ``dingtalk://SECRET@TOKEN/MOBILE``.
        secret: the signing secret (``SEC…``) when the robot has 加签 enabled.
        keyword: one of the robot's custom keywords, appended to messages that lack it.
        timeout: seconds, or an ``httpx.Timeout`` (default 10 s, 5 s to connect).
        proxy: a proxy URL; ``HTTPS_PROXY`` and friends are honoured when ``trust_env``.
        transport: an httpx transport, e.g. ``httpx.ASGITransport(emulator_app)`` in tests.
        http_client: an ``httpx.Client`` to share; dingpush will not close it.
        clock: where time comes from, for signing and waiting (``dingpush.testing.FakeClock``).
        rate: the robot's send limit, ``"20/60s"`` (DingTalk's) by default.
        cooldown: seconds the robot rests after DingTalk throttled it (10 minutes).
        limiter: where the robot's send log lives; every client in the process shares
            ``default_limiter()`` by default, ``FileRateLimiter()`` shares it across processes.
        retry: the ``RetryPolicy`` for transient failures; ``3`` for three attempts in all,
            ``False`` for one.
        max_wait: seconds a send may wait for a slot before raising ``RateLimited``.
    """

    def _open_http(
        self,
        http_client: httpx.Client | None,
        transport: httpx.BaseTransport | None,
        options: dict[str, typing.Any],
    ) -> httpx.Client:
        # Requests beyond the pool's connections wait here, in O(1), not in httpcore's pool,
        # which rescans every queued request whenever a connection frees (O(n²) under load).
        self._gate = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if http_client is not None:
            return http_client
        import httpx

        return httpx.Client(transport=transport, **options)

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> SendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it.

        Args:
            message: a message, or a ``str`` for a ``Text``.
            msg_uuid: DingTalk's idempotency key; generated when not given, kept on retries.
            wait: wait for a free slot of the robot's rate (``False``: raise ``RateLimited``
                at once instead).
            max_wait: the longest wait for a slot, in seconds (the client's default if None).
            split: ``True`` or a ``Splitter`` sends a too-long ``Text``/``Markdown`` in parts.
            retry: this send's retry policy (the client's if None).
        """
        options = self._core.options(wait, max_wait, retry)
        flow = self._core.flow(message, msg_uuid, options, split)
        return run(flow, self._core.clock, self._request)

    def _request(self, step: Post[RobotCore, PreparedSend]) -> Reply:
        with self._gate, map_transport_errors(step.core.redact, "DingTalk"):
            response = self._http.post(
                self._url(step.core), content=step.prepared.content, headers=JSON_HEADERS
            )
        return response.status_code, response.content

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRobot(BaseRobot["httpx.AsyncClient", "httpx.AsyncBaseTransport"]):
    """The asyncio twin of :class:`Robot`: same arguments, ``await robot.send(...)``."""

    def _open_http(
        self,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        options: dict[str, typing.Any],
    ) -> httpx.AsyncClient:
        import asyncio  # only async users pay for it, as in SystemClock.asleep

        self._gate = asyncio.Semaphore(MAX_CONNECTIONS)  # see Robot: fewer queued in httpcore
        self._direct: DirectPost | None = None
        if http_client is not None:
            return http_client
        import httpx

        from dingpush._transports import DirectPost, default_async_transport

        if transport is not None:
            return httpx.AsyncClient(transport=transport, **options)
        transport = default_async_transport(options)
        client = httpx.AsyncClient(transport=transport, **options)
        self._direct = DirectPost.over(client, transport, JSON_HEADERS)
        return client

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> SendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it.

        Waiting for a slot, back-off and cool-downs ``await`` the clock: the event loop runs on.
        The arguments are :meth:`Robot.send`'s.
        """
        options = self._core.options(wait, max_wait, retry)
        flow = self._core.flow(message, msg_uuid, options, split)
        return await arun(flow, self._core.clock, self._request)

    async def _request(self, step: Post[RobotCore, PreparedSend]) -> Reply:
        async with self._gate:
            return await self._post(step)

    async def _post(self, step: Post[RobotCore, PreparedSend]) -> Reply:
        with map_transport_errors(step.core.redact, "DingTalk"):
            if self._direct is not None:  # our own transport: past httpx's client layer
                return await self._direct.post(self._url(step.core), step.prepared.content)
            response = await self._http.post(
                self._url(step.core), content=step.prepared.content, headers=JSON_HEADERS
            )
        return response.status_code, response.content

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRobot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
