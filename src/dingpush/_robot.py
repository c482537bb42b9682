"""Custom robot webhook clients: ``Robot`` (sync) and ``AsyncRobot``, over one sans-I/O core."""

from __future__ import annotations

import logging
import typing
import urllib.parse
import uuid
from dataclasses import dataclass

from ._channels import refuse_on_webhook
from ._clock import SYSTEM_CLOCK, Clock
from ._errors import MessageTooLarge, SecurityRejected
from ._masking import Redactor, install_log_redaction
from ._messages import At, Markdown, Message, Text
from ._signing import encoded_sign
from ._targets import WebhookTarget, parse_robot_target
from ._wire import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    JSON_HEADERS,
    map_transport_errors,
    parse_oapi_reply,
    payload_bytes,
)

__all__ = ["AsyncRobot", "Robot", "SendResult"]

logger = logging.getLogger("dingpush")

#: DingTalk refuses a webhook body over 20,000 bytes with 460101 (protocol §1.5).
WEBHOOK_BODY_LIMIT = 20_000

if typing.TYPE_CHECKING:
    import httpx

    TimeoutTypes: typing.TypeAlias = float | httpx.Timeout | None
    ProxyTypes: typing.TypeAlias = str | httpx.Proxy | None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What DingTalk answered to one accepted message."""

    msg_uuid: str
    target: str
    errcode: int = 0
    errmsg: str = "ok"
    status_code: int = 200


@dataclass(frozen=True, slots=True)
class PreparedSend:
    """A message turned into its request body, ready to be signed and sent."""

    message: Message
    msg_uuid: str
    content: bytes


class RobotCore:
    """Everything a webhook send does that is not I/O, shared by both clients."""

    def __init__(
        self,
        target: str | WebhookTarget,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
        body_limit: int = WEBHOOK_BODY_LIMIT,
    ) -> None:
        self.target = parse_robot_target(target, secret=secret, base_url=base_url)
        if keyword is not None and not keyword.strip():
            raise ValueError("keyword= is empty: give one of the robot's custom keywords")
        self.keyword = keyword
        self.clock = clock or SYSTEM_CLOCK
        self.body_limit = body_limit
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

    def prepare(self, message: Message | str, msg_uuid: str | None = None) -> PreparedSend:
        """Build and size-check the body; refuse it before any request when it is too large."""
        message = self.coerce(message)
        refuse_on_webhook(message)  # images, files and OA cards need an app
        if self.keyword is not None:
            message = message.with_keyword(self.keyword)
        msg_uuid = msg_uuid or str(uuid.uuid4())
        payload = message.to_payload()
        payload["msgUuid"] = msg_uuid
        content = payload_bytes(payload)
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

    def describe(self, cls: str) -> str:
        signed = ", signed" if self.target.secret else ""
        keyword = f", keyword={self.keyword!r}" if self.keyword else ""
        return f"{cls}({self.target.display!r}{signed}{keyword})"


def _http_options(
    timeout: TimeoutTypes, proxy: ProxyTypes, trust_env: bool
) -> dict[str, typing.Any]:
    import httpx

    return {
        "timeout": (
            httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
            if timeout is None
            else timeout
        ),
        "proxy": proxy,
        "trust_env": trust_env,
        "headers": JSON_HEADERS,
    }


class Robot:
    """Send messages to one DingTalk group through a custom robot's webhook.

    Args:
        target: the webhook URL, its ``access_token``, or ``dingtalk://SECRET@TOKEN/MOBILE``.
        secret: the signing secret (``SEC…``) when the robot has 加签 enabled.
        keyword: one of the robot's custom keywords, appended to messages that lack it.
        timeout: seconds, or an ``httpx.Timeout`` (default 10 s, 5 s to connect).
        proxy: a proxy URL; ``HTTPS_PROXY`` and friends are honoured when ``trust_env``.
        transport: an httpx transport, e.g. ``httpx.ASGITransport(emulator_app)`` in tests.
        http_client: an ``httpx.Client`` to share; dingpush will not close it.
        clock: where signing timestamps come from (see ``dingpush.testing.FakeClock``).
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
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._core = RobotCore(
            target, secret=secret, keyword=keyword, base_url=base_url, clock=clock
        )
        self._owns_http = http_client is None
        if http_client is None:
            import httpx

            http_client = httpx.Client(
                transport=transport, **_http_options(timeout, proxy, trust_env)
            )
        self._http = http_client

    @property
    def target(self) -> WebhookTarget:
        return self._core.target

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> SendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it."""
        prepared = self._core.prepare(message, msg_uuid)
        return self._post(prepared)

    def _post(self, prepared: PreparedSend) -> SendResult:
        with map_transport_errors(self._core.redact, "DingTalk"):
            response = self._http.post(
                self._core.url(), content=prepared.content, headers=JSON_HEADERS
            )
        return self._core.result(prepared, response.status_code, response.content)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Robot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self._core.describe("Robot")


class AsyncRobot:
    """The asyncio twin of :class:`Robot`: same arguments, ``await robot.send(...)``."""

    def __init__(
        self,
        target: str | WebhookTarget,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        timeout: TimeoutTypes = None,
        proxy: ProxyTypes = None,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._core = RobotCore(
            target, secret=secret, keyword=keyword, base_url=base_url, clock=clock
        )
        self._owns_http = http_client is None
        if http_client is None:
            import httpx

            http_client = httpx.AsyncClient(
                transport=transport, **_http_options(timeout, proxy, trust_env)
            )
        self._http = http_client

    @property
    def target(self) -> WebhookTarget:
        return self._core.target

    async def send(self, message: Message | str, *, msg_uuid: str | None = None) -> SendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it."""
        prepared = self._core.prepare(message, msg_uuid)
        return await self._post(prepared)

    async def _post(self, prepared: PreparedSend) -> SendResult:
        with map_transport_errors(self._core.redact, "DingTalk"):
            response = await self._http.post(
                self._core.url(), content=prepared.content, headers=JSON_HEADERS
            )
        return self._core.result(prepared, response.status_code, response.content)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRobot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return self._core.describe("AsyncRobot")
