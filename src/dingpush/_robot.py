"""Custom robot webhook clients: ``Robot`` (sync) and ``AsyncRobot``, over one sans-I/O core."""

from __future__ import annotations

import dataclasses
import logging
import threading
import typing
import urllib.parse
import uuid
from dataclasses import dataclass

from ._channels import refuse_on_webhook
from ._clock import SYSTEM_CLOCK, Clock
from ._delivery import (
    Flow,
    Post,
    Reply,
    SendDefaults,
    SendOptions,
    arun,
    deliver,
    deliver_parts,
    run,
)
from ._errors import MessageTooLarge, PlatformThrottled, RateLimited, SecurityRejected
from ._limiter import (
    DEFAULT_COOLDOWN,
    DEFAULT_MAX_WAIT,
    DEFAULT_RATE,
    Rate,
    RateLimiter,
    Reservation,
    default_limiter,
)
from ._masking import Redactor, install_log_redaction
from ._messages import At, Markdown, Message, Text
from ._retry import RetryTypes
from ._signing import encoded_sign
from ._split import UUID_ALLOWANCE, Splitter
from ._targets import WebhookTarget, parse_robot_target
from ._wire import (
    JSON_HEADERS,
    HttpT,
    TransportT,
    http_options,
    map_transport_errors,
    parse_oapi_reply,
    payload_bytes,
)

__all__ = ["AsyncRobot", "Robot", "SendResult"]

logger = logging.getLogger("dingpush")

#: DingTalk refuses a webhook body over 20,000 bytes with 460101 (protocol §1.5).
WEBHOOK_BODY_LIMIT = 20_000
#: Connections a client keeps to DingTalk; more sends in flight queue for one of them. Eight
#: carry ~150 messages a second at a 50 ms round trip, far above DingTalk's limits, while
#: keeping httpcore's per-request scan of its pool short (see ``_limits``).
MAX_CONNECTIONS = 8

if typing.TYPE_CHECKING:
    import httpx

    from ._wire import ProxyTypes, TimeoutTypes


@dataclass(frozen=True, slots=True)
class SendResult:
    """What DingTalk answered to one accepted message (or, with ``parts``, a split one)."""

    msg_uuid: str
    target: str
    errcode: int = 0
    errmsg: str = "ok"
    status_code: int = 200
    #: Requests it took, retries and re-sends after a throttle included.
    attempts: int = 1
    #: The result of each part, in order, when the message was split; empty otherwise.
    parts: tuple[SendResult, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedSend:
    """A message turned into its request body, ready to be signed and sent."""

    message: Message
    msg_uuid: str
    content: bytes


class RobotCore(SendDefaults):
    """Everything a webhook send does that is not I/O, shared by both clients.

    It is the delivery engine's ``Channel`` for the robot: its slots, its answers, its
    cool-down. DingTalk de-duplicates a webhook retry by ``msgUuid``, hence ``idempotent``.
    """

    idempotent = True

    def __init__(
        self,
        target: str | WebhookTarget,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
        body_limit: int = WEBHOOK_BODY_LIMIT,
        rate: Rate | str = DEFAULT_RATE,
        cooldown: float = DEFAULT_COOLDOWN,
        limiter: RateLimiter | None = None,
        retry: RetryTypes = True,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self.target = parse_robot_target(target, secret=secret, base_url=base_url)
        if keyword is not None and not keyword.strip():
            raise ValueError("keyword= is empty: give one of the robot's custom keywords")
        self.keyword = keyword
        self.clock = clock or SYSTEM_CLOCK
        self.body_limit = body_limit
        self.rate = Rate.coerce(rate)
        if not cooldown >= 0:
            raise ValueError("cooldown= must be >= 0 seconds")
        self.cooldown = float(cooldown)
        self.limiter: RateLimiter = limiter if limiter is not None else default_limiter(clock)
        super().__init__(retry=retry, max_wait=max_wait)
        self.key = self.target.key
        self.redact = Redactor([self.target.token, self.target.secret])
        install_log_redaction()

    def coerce(self, message: Message | str) -> Message:
        """Turn a shorthand into a message: a string becomes ``Text`` (or ``Markdown``)."""
        if isinstance(message, Message):
            return message
        if not isinstance(message, str):
            raise TypeError(
                f"send() takes a dingpush message or a str, not {type(message).__name__}"
            )
        at = At(mobiles=self.target.mentions) if self.target.mentions else None
        if self.target.markdown:
            title = message.strip().splitlines()[0][:64] if message.strip() else ""
            return Markdown(title, message, at=at)
        return Text(message, at=at)

    def body(self, message: Message, msg_uuid: str) -> tuple[Message, bytes]:
        """The message as sent (keyword added when missing) and its exact request body."""
        if self.keyword is not None:
            message = message.with_keyword(self.keyword)
        payload = message.to_payload()
        payload["msgUuid"] = msg_uuid
        return message, payload_bytes(payload)

    def body_size(self, message: Message) -> int:
        """Bytes of the body DingTalk would count for ``message`` (the splitter's measure)."""
        return len(self.body(message, UUID_ALLOWANCE)[1])

    def prepare(self, message: Message | str, msg_uuid: str | None = None) -> PreparedSend:
        """Build and size-check the body; refuse it before any request when it is too large."""
        msg_uuid = msg_uuid or str(uuid.uuid4())
        message = self.coerce(message)
        refuse_on_webhook(message)  # images, files and OA cards need an app
        message, content = self.body(message, msg_uuid)
        if len(content) > self.body_limit:
            raise MessageTooLarge.local(
                size=len(content), limit=self.body_limit, channel="robot webhook"
            )
        return PreparedSend(message, msg_uuid, content)

    def url(self) -> str:
        """The request URL, signed afresh (a timestamp is only good for an hour)."""
        query = "access_token=" + urllib.parse.quote_plus(self.target.token)
        if self.target.secret is not None:
            now_ms = int(self.clock.time() * 1000)
            query += f"&timestamp={now_ms}&sign={encoded_sign(self.target.secret, now_ms)}"
        return f"{self.target.endpoint}?{query}"

    def result(self, prepared: PreparedSend, status_code: int, content: bytes) -> SendResult:
        """Check DingTalk's reply and raise what it refuses, with advice for this robot."""
        try:
            body = parse_oapi_reply(status_code, content, self.redact)
        except SecurityRejected as exc:
            raise self._explain(exc) from None
        logger.debug("sent msgUuid %s to %s", prepared.msg_uuid, self.target.display)
        return SendResult(
            msg_uuid=prepared.msg_uuid,
            target=self.target.display,
            errcode=0,
            errmsg=str(body.get("errmsg", "ok")),
            status_code=status_code,
        )

    def _explain(self, exc: SecurityRejected) -> SecurityRejected:
        hint = None
        if exc.reason in ("signature", "timestamp", "unknown") and self.target.secret is None:
            hint = (
                "the robot has signing (加签) enabled: pass secret='SEC…' as shown under 加签 "
                "in the robot's security settings"
            )
        elif exc.reason == "keyword" and self.keyword is None:
            hint = (
                "the robot is secured by custom keywords: pass keyword='…' with one of them "
                "(dingpush appends it when a message lacks it)"
            )
        if hint is None:
            return exc
        return SecurityRejected(
            exc.errcode, exc.errmsg, reason=exc.reason, hint=hint, status_code=exc.status_code
        )

    def split(self, message: Message, split: bool | Splitter) -> tuple[Message, ...]:
        """The parts to send: ``(message,)`` unless it is too large and splitting is on."""
        if split is False:
            return (message,)
        splitter = split if isinstance(split, Splitter) else Splitter()
        return splitter.split(message, limit=self.body_limit, measure=self.body_size)

    def flow(
        self,
        message: Message | str,
        msg_uuid: str | None,
        options: SendOptions,
        split: bool | Splitter,
    ) -> Flow[SendResult]:
        """The whole delivery of one ``send()`` call, parts included, for a driver to run."""
        message = self.coerce(message)
        refuse_on_webhook(message)  # before splitting: no part of it could go either
        base = msg_uuid or str(uuid.uuid4())
        parts = self.split(message, split)
        if len(parts) == 1:
            return deliver(self, self.prepare(parts[0], base), options)

        def one(part: Message, part_uuid: str) -> Flow[SendResult]:
            return deliver(self, self.prepare(part, part_uuid), options)

        return deliver_parts(parts, base, self.target.display, one)

    @property
    def display(self) -> str:
        return self.target.display

    def reserve(self, prepared: PreparedSend) -> Reservation | float:
        """A slot of the robot's rate for one message."""
        return self.limiter.reserve(self.key, self.rate)

    def settle(self, prepared: PreparedSend, reply: Reply, attempts: int) -> SendResult:
        """The engine's view of :meth:`result`: the answer checked, the attempts counted."""
        return dataclasses.replace(self.result(prepared, *reply), attempts=attempts)

    def penalised(self, error: PlatformThrottled) -> None:
        """Nothing to do: the per-app call quotas (protocol §7) do not apply to webhooks."""

    def throttled(self, error: RateLimited) -> None:
        """DingTalk throttled the robot: every client of it rests for the cool-down."""
        self.limiter.cool_down(self.key, self.cooldown)
        error.retry_at = self.clock.time() + self.cooldown
        logger.warning(
            "DingTalk throttled %s (errcode %s): no message to it for %.0f s",
            self.target.display,
            error.errcode,
            self.cooldown,
        )

    def no_slot(self, wait: float, prepared: PreparedSend | None = None) -> RateLimited:
        """The error for a send that found no slot in time (nothing was sent)."""
        cooling = self.limiter.cooldown_left(self.key) > 0
        reason = (
            "the robot is cooling down after DingTalk throttled it"
            if cooling
            else f"the robot is at its limit of {self.rate} messages"
        )
        return RateLimited.local(
            target=self.target.display,
            retry_at=self.clock.time() + wait,
            wait=wait,
            reason=reason,
        )

    def describe(self, cls: str) -> str:
        signed = ", signed" if self.target.secret else ""
        keyword = f", keyword={self.keyword!r}" if self.keyword else ""
        return f"{cls}({self.target.display!r}{signed}{keyword})"


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
                step.core.url(), content=step.prepared.content, headers=JSON_HEADERS
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
        if http_client is not None:
            return http_client
        import httpx

        return httpx.AsyncClient(transport=transport, **options)

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
            response = await self._http.post(
                step.core.url(), content=step.prepared.content, headers=JSON_HEADERS
            )
        return response.status_code, response.content

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRobot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
