"""The sans-I/O core of a webhook send, shared by ``Robot`` and ``AsyncRobot``."""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
import uuid
from dataclasses import dataclass

from dingpush._engine._clock import SYSTEM_CLOCK, Clock
from dingpush._engine._delivery import (
    Flow,
    Reply,
    SendDefaults,
    SendOptions,
    deliver,
    deliver_parts,
)
from dingpush._engine._limiter import (
    DEFAULT_COOLDOWN,
    DEFAULT_MAX_WAIT,
    DEFAULT_RATE,
    Rate,
    RateLimiter,
    Reservation,
    default_limiter,
)
from dingpush._engine._retry import RetryTypes
from dingpush._engine._split import Splitter
from dingpush._errors import (
    SECURITY_ADVICE,
    MessageTooLarge,
    PlatformThrottled,
    RateLimited,
    SecurityRejected,
)
from dingpush._masking import Redactor, install_log_redaction
from dingpush._messages._channels import (
    MSGUUID_ALLOWANCE,
    WEBHOOK_BODY_LIMIT,
    refuse_on_webhook,
    webhook_body,
    webhook_body_bytes,
)
from dingpush._messages._models import At, Markdown, Message, Text
from dingpush._results import SendResult
from dingpush._wire import parse_oapi_reply

from ._signing import encoded_sign
from ._target import WebhookTarget, parse_robot_target

__all__ = ["PreparedSend", "RobotCore"]

#: A msgUuid JSON writes as it is (no escape), one byte a character: uuid4s and relay ids.
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]+")

logger = logging.getLogger("dingpush")


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
        return message, webhook_body(message, msg_uuid)

    def body_size(self, message: Message) -> int:
        """Bytes of the body DingTalk would count for ``message`` (the splitter's measure)."""
        return webhook_body_bytes(message, keyword=self.keyword)

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
                "the robot is secured by custom keywords: pass keyword='…' (one of them; "
                "dingpush appends it when a message lacks it)"
            )
        if hint is None:
            return exc
        explained = SecurityRejected(
            exc.errcode, exc.errmsg, reason=exc.reason, hint=hint, status_code=exc.status_code
        )
        explained.advice = SECURITY_ADVICE["keyword" if exc.reason == "keyword" else "signature"]
        return explained

    def split(self, message: Message, split: bool | Splitter) -> tuple[Message, ...]:
        """The parts to send: ``(message,)`` unless it is too large and splitting is on."""
        if split is False:
            return (message,)
        splitter = split if isinstance(split, Splitter) else Splitter()
        return splitter.split(message, limit=self.body_limit, measure=self.body_size)

    def parts(
        self, message: Message | str, msg_uuid: str | None, split: bool | Splitter
    ) -> tuple[str, tuple[Message, ...]]:
        """A send's msgUuid and its parts (``(message,)`` unless it is split); part *i* goes
        with ``{msgUuid}-{i}``. Refuses what a webhook cannot carry before splitting."""
        message = self.coerce(message)
        refuse_on_webhook(message)  # before splitting: no part of it could go either
        return msg_uuid or str(uuid.uuid4()), self.split(message, split)

    def plan(
        self, message: Message | str, msg_uuid: str | None, split: bool | Splitter
    ) -> list[PreparedSend]:
        """The bodies :meth:`flow` would send, in order, prepared as it prepares them."""
        base, parts = self.parts(message, msg_uuid, split)
        if len(parts) == 1:
            return [self.prepare(parts[0], base)]
        return [self.prepare(part, f"{base}-{i}") for i, part in enumerate(parts, 1)]

    def flow(
        self,
        message: Message | str,
        msg_uuid: str | None,
        options: SendOptions,
        split: bool | Splitter,
    ) -> Flow[SendResult]:
        """The whole delivery of one ``send()`` call, parts included, for a driver to run."""
        if split is True:
            whole = self._whole(message, msg_uuid)
            if whole is not None:
                return deliver(self, whole, options)
        base, parts = self.parts(message, msg_uuid, split)
        if len(parts) == 1:
            return deliver(self, self.prepare(parts[0], base), options)

        def one(part: Message, part_uuid: str) -> Flow[SendResult]:
            return deliver(self, self.prepare(part, part_uuid), options)

        return deliver_parts(parts, base, self.target.display, one)

    def _whole(self, message: Message | str, msg_uuid: str | None) -> PreparedSend | None:
        """The send of a message the default splitter leaves whole, its body built once.

        The splitter measures the body with the longest msgUuid (``MSGUUID_ALLOWANCE``), then
        :meth:`prepare` builds it again: two encodings of every message a relay sends. For a
        msgUuid JSON writes as it is, the measure follows from the real body's length. None:
        the message must be split (or refused), which :meth:`parts` does as before.
        """
        msg_uuid = msg_uuid or str(uuid.uuid4())
        if not _PLAIN.fullmatch(msg_uuid):
            return None
        message = self.coerce(message)
        refuse_on_webhook(message)
        sent, content = self.body(message, msg_uuid)
        measured = len(content) - len(msg_uuid) + len(MSGUUID_ALLOWANCE)
        if max(measured, len(content)) > self.body_limit:
            return None
        return PreparedSend(sent, msg_uuid, content)

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
