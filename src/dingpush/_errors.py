"""The exception tree. Every failure is an exception that says what failed and what to do.

    DingPushError                       (exit 1)
    ├── ConfigError                     bad target, credentials or settings   (exit 3)
    │   └── BadCredentials              AppKey/AppSecret refused              (exit 3)
    ├── InvalidMessage (ValueError)     a message breaks a rule at construction (exit 2)
    │   └── UnsupportedMessage          the channel cannot carry this type     (exit 2)
    ├── PartialDelivery                 some parts of a split message went out, then one failed
    ├── PoolExhausted                   every member of a RobotPool failed permanently (exit 3)
    ├── LimiterUnavailable              a shared limiter's database is unreachable; nothing sent
    ├── CallbackRejected                an HTTP callback's sign or timestamp is wrong (§12.2)
    ├── TransportError                  no usable answer: network, timeout, non-JSON (exit 6)
    │   ├── Timeout
    │   └── ProtocolError               an answer that is not DingTalk's format (HTTP 5xx …)
    └── APIError                        DingTalk answered with a non-zero errcode/code (exit 4)
        ├── RateLimited                 130101 / 410100 / send.too.fast, or our own limiter (exit 5)
        ├── PlatformThrottled           90018 / 90002 / Forbidden.AccessDenied.Qps*   (exit 5)
        ├── ServerBusy                  -1 系统繁忙, system.error
        ├── SecurityRejected            310000: keyword, signature, timestamp or IP
        ├── TokenNotFound               300001 / 300005 / 400101: not a webhook token
        ├── InvalidAccessToken          40014 / 40001 / 42001 / 33001 / InvalidAuthentication
        ├── PermissionDenied            Forbidden.AccessDenied.* / robotCode.auth / 43007
        ├── QueryKeyExpired             processQueryKey past DingTalk's 24 h window (§11)
        ├── DingQuotaExhausted          SMS/phone DING without the paid quota (§14)
        ├── RobotUnavailable            400102 / 400106 / 400013: disabled, removed, dissolved
        ├── MessageTooLarge             460101, or refused locally before any request
        ├── UnsupportedMessageType      400105
        ├── ContentRejected             430101-430104 and the v1.0 contain.* codes
        └── InvalidRequest              40035 / 43004 / invalidParameter.* and other 4xx

``transient`` tells whether the same request may succeed later (the retry policy reads it);
``maybe_delivered`` whether DingTalk may have acted on a request no answer confirmed, which
matters where DingTalk cannot de-duplicate a retry (the app APIs).
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

if typing.TYPE_CHECKING:
    # The one import cycle of the core, for annotations only: PartialDelivery names the
    # messages left to send, and the models raise InvalidMessage. Neither runs at import time.
    from ._messages._models import Message
    from ._results import SendResult

__all__ = [
    "APIError",
    "Advice",
    "BadCredentials",
    "CallbackRejected",
    "ConfigError",
    "ContentRejected",
    "DingPushError",
    "DingQuotaExhausted",
    "InvalidAccessToken",
    "InvalidMessage",
    "InvalidRequest",
    "LimiterUnavailable",
    "MessageTooLarge",
    "PartialDelivery",
    "PermissionDenied",
    "PlatformThrottled",
    "PoolExhausted",
    "ProtocolError",
    "QueryKeyExpired",
    "RateLimited",
    "RobotUnavailable",
    "SecurityRejected",
    "ServerBusy",
    "Timeout",
    "TokenNotFound",
    "TransportError",
    "UnsupportedMessage",
    "UnsupportedMessageType",
    "error_from_reply",
]

SecurityReason = typing.Literal["keyword", "signature", "timestamp", "ip", "unknown"]

#: The settings an error's fix can name; each front end says them in its own terms (the
#: library as ``keyword='…'``, the CLI as ``DINGPUSH_KEYWORD`` or ``keyword = "…"`` at the
#: file and line the target came from).
Setting = typing.Literal[
    "keyword",
    "secret",
    "webhook",
    "app_key",
    "app_secret",
    "timeout",
    "proxy",
    "split",
    "max_wait",
    "msg_uuid",
    "at",
    "mention_all",
    "orientation",
]


@dataclass(frozen=True, slots=True)
class Advice:
    """The setting that fixes an error, as data: ``exc.advice``.

    ``phrase`` is the words of the error's message that name the fix in Python terms (``pass
    keyword='…'``); a front end that speaks another language (the CLI's options, variables and
    file keys) replaces exactly that phrase, and never has to parse the message.
    """

    #: Which setting to change.
    setting: Setting
    #: The phrase of the message that says it in Python terms.
    phrase: str
    #: The value to show in the fix (``'…'`` when the user must supply it).
    value: str = "…"


class DingPushError(Exception):
    """Something went wrong in dingpush."""

    #: The CLI's exit status for this class of failure.
    exit_code: typing.ClassVar[int] = 1
    #: Whether the same request may succeed if tried again later.
    transient: bool = False
    #: When one send took several calls (an app's 1:1 send is chunked 20 users a call), the
    #: result of the calls that succeeded before this failure; ``None`` otherwise.
    partial: typing.Any = None
    #: Whether DingTalk may have received and acted on the request although no answer said so
    #: (a read time-out, a connection cut after the request went out, a gateway's error page).
    #: ``False`` when DingTalk answered (a refusal is an answer) or the request never left.
    maybe_delivered: bool = False
    #: The setting that fixes this error, when one does (see :class:`Advice`); ``None`` otherwise.
    advice: Advice | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(DingPushError):
    """A target, credential or setting is wrong; fix the configuration and run again."""

    exit_code = 3


class BadCredentials(ConfigError):
    """DingTalk refused the AppKey/AppSecret pair."""

    def __init__(
        self,
        message: str | None = None,
        *,
        credential: typing.Literal["app_key", "app_secret", "unknown"] = "unknown",
        errcode: int | str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        #: Which credential is wrong, when it can be told: ``app_key``, ``app_secret``.
        self.credential = credential
        if credential != "unknown":
            self.advice = Advice(credential, "")
        self.errcode = errcode
        self.request_id = request_id


class InvalidMessage(DingPushError, ValueError):
    """A message breaks one of DingTalk's rules."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        pointer: str | None = None,
    ) -> None:
        super().__init__(message)
        #: The field, as people name it (``at.isAtAll``, ``feedCard.links[1].picURL``).
        self.field = field
        #: The rule it breaks (``required``, ``a JSON boolean (true or false)``…).
        self.rule = rule
        #: Where the value is in the message's JSON (RFC 6901), when it was read from JSON.
        self.pointer = pointer


class UnsupportedMessage(InvalidMessage):
    """This channel cannot carry this message type."""


class TransportError(DingPushError):
    """No usable answer came back from DingTalk (network failure, timeout, unexpected reply)."""

    exit_code = 6
    transient = True

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        maybe_delivered: bool = True,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        # Without an answer, DingTalk may have done the work: only a request that never left
        # (no connection could be made) is known not to have arrived.
        self.maybe_delivered = maybe_delivered


class Timeout(TransportError):
    """DingTalk did not answer in time."""


class ProtocolError(TransportError):
    """DingTalk answered in a form that is not its documented reply."""

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        # A gateway's page says nothing of whether DingTalk got the request, except 503:
        # "the server is currently unable to handle the request" (RFC 9110 §15.6.4).
        super().__init__(message, status_code=status_code, maybe_delivered=status_code != 503)
        # A gateway error page (5xx) or a cut-off answer may well be fine next time; a 4xx
        # page in place of DingTalk's JSON says the URL or proxy is wrong.
        self.transient = status_code is None or status_code >= 500


class APIError(DingPushError):
    """DingTalk refused the request."""

    exit_code = 4
    #: What the user should do about it; subclasses say it more precisely.
    hint: typing.ClassVar[str] = ""
    #: True when dingpush refused the request itself and nothing reached DingTalk (no send
    #: slot in time, a body over the channel's limit); ``errcode`` then says which rule.
    refused_locally = False

    def __init__(
        self,
        errcode: int | str,
        errmsg: str,
        *,
        hint: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.request_id = request_id
        self.status_code = status_code
        advice = self.hint if hint is None else hint
        text = f"DingTalk refused the request: {errcode} {errmsg}".rstrip()
        if advice:
            # DingTalk's errmsg ends a sentence; the advice starts the next one.
            text = f"{text}. {advice[:1].upper()}{advice[1:]}"
        if request_id:
            text = f"{text} (request id {request_id})"
        super().__init__(text)


class RateLimited(APIError):
    """The robot is sending faster than DingTalk allows (20 messages a minute by default)."""

    exit_code = 5
    transient = True
    hint = (
        "DingTalk throttles a robot for 10 minutes after 20 messages in a minute; "
        "wait, spread messages over a RobotPool, or queue them through the relay"
    )

    def __init__(
        self,
        errcode: int | str,
        errmsg: str,
        *,
        retry_at: float | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        #: Wall-clock time (seconds since the epoch) of the next free slot, when known.
        self.retry_at = retry_at
        super().__init__(errcode, errmsg, hint=hint, request_id=request_id, status_code=status_code)

    @classmethod
    def local(
        cls,
        *,
        target: str,
        retry_at: float,
        wait: float,
        reason: str,
        advice: str = "spread messages over a RobotPool, or queue them through the relay",
    ) -> RateLimited:
        """dingpush's own limiter found no slot in time; nothing was sent to DingTalk."""
        exc = cls("local", "no send slot", retry_at=retry_at)
        exc.refused_locally = True
        when = datetime.datetime.fromtimestamp(retry_at).strftime("%H:%M:%S")
        phrase = "Pass a larger max_wait="
        exc.args = (
            f"not sent to {target}: {reason}; the next slot is at {when} (in {wait:.1f} s). "
            f"{phrase} to wait for it, {advice}",
        )
        exc.advice = Advice("max_wait", phrase)
        return exc


class PartialDelivery(DingPushError):
    """Part of a split message was delivered, then a part failed; ``sent`` lists what went out."""

    def __init__(
        self,
        *,
        sent: Sequence[SendResult] | Sequence[typing.Any],
        total: int,
        error: DingPushError,
        msg_uuid: str,
        remaining: Sequence[Message] = (),
        advice: str | None = None,
    ) -> None:
        #: The results of the parts DingTalk accepted, in order.
        self.sent = tuple(sent)
        #: How many parts the message was split into.
        self.total = total
        #: Why the next part failed.
        self.error = error
        self.msg_uuid = msg_uuid
        #: The parts not delivered, the failed one first: what is left to send.
        self.remaining = tuple(remaining)
        self.transient = error.transient
        self.maybe_delivered = error.maybe_delivered
        failed = len(self.sent) + 1
        if advice is None:
            phrase = f"with msg_uuid={msg_uuid!r}"
            advice = (
                f"send the same message again {phrase} to deliver the rest: "
                "each part keeps its msgUuid, so DingTalk drops the parts it already has"
            )
            self.advice = Advice("msg_uuid", phrase, msg_uuid)
        super().__init__(
            f"parts 1-{len(self.sent)} of {total} were delivered, part {failed} failed: {error} "
            f"— {advice}"
        )


class PoolExhausted(DingPushError):
    """Every robot of a RobotPool failed permanently; none is left to send with."""

    exit_code = 3

    def __init__(self, errors: Mapping[str, DingPushError]) -> None:
        #: Why each member was taken out, by its masked webhook URL.
        self.errors = dict(errors)
        reasons = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
        super().__init__(
            f"no robot of the pool is left to send with ({reasons}); fix or replace those "
            "robots (tokens, security settings, group membership) and create the pool again"
        )


class LimiterUnavailable(DingPushError):
    """The shared rate limiter's database cannot be reached: nothing was sent, try later."""

    transient = True


class CallbackRejected(DingPushError):
    """A message said to come from DingTalk failed its check (protocol §12.2).

    ``reason`` is ``"signature"``, ``"timestamp"``, ``"missing"`` (no headers) or ``"body"``
    (not a robot message). Answer the request with HTTP 403 and do not act on it.
    """

    def __init__(
        self, message: str, *, reason: typing.Literal["signature", "timestamp", "missing", "body"]
    ) -> None:
        self.reason = reason
        super().__init__(message)


class PlatformThrottled(APIError):
    """DingTalk's per-app or per-API call rate was exceeded; a short back-off clears it."""

    exit_code = 5
    transient = True
    hint = "the platform's call-rate limit was hit; retry after a short back-off"


class ServerBusy(APIError):
    """DingTalk is busy; retry later."""

    transient = True
    hint = "DingTalk reported a temporary failure; retry later (at most 3 times)"


_KEYWORD_PHRASE = "pass keyword='…'"
_SECRET_PHRASE = "pass secret='SEC…'"
#: The setting each security refusal names, with the phrase of its hint that names it.
SECURITY_ADVICE: dict[str, Advice] = {
    "keyword": Advice("keyword", _KEYWORD_PHRASE),
    "signature": Advice("secret", _SECRET_PHRASE, "SEC…"),
}

_SECURITY_HINTS: dict[str, str] = {
    "keyword": (
        "the robot is secured by custom keywords and the message contains none of them: "
        f"{_KEYWORD_PHRASE} (it is appended when missing) or put one in the text"
    ),
    "signature": (
        "the robot has signing (加签) enabled and the signature did not match: "
        f"{_SECRET_PHRASE} exactly as shown under 加签 in the robot's security settings, "
        "and do not URL-encode the sign twice"
    ),
    "timestamp": (
        "the signature's timestamp is more than an hour away from DingTalk's clock: "
        "check this machine's clock (NTP); dingpush signs every request afresh"
    ),
    "ip": (
        "this machine's public IP is not in the robot's IP allow-list: add it (IPv4 or "
        "CIDR) in the robot's security settings, or send from an allowed host"
    ),
    "unknown": "a security setting of the robot (keyword, signature or IP) refused the message",
}


class SecurityRejected(APIError):
    """A security setting of the robot refused the message (errcode 310000)."""

    def __init__(
        self,
        errcode: int | str,
        errmsg: str,
        *,
        reason: SecurityReason | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        #: Which setting refused: ``keyword``, ``signature``, ``timestamp``, ``ip`` or ``unknown``.
        self.reason: SecurityReason = reason or security_reason(errmsg)
        self.advice = SECURITY_ADVICE.get(self.reason)
        super().__init__(
            errcode,
            errmsg,
            hint=_SECURITY_HINTS[self.reason] if hint is None else hint,
            request_id=request_id,
            status_code=status_code,
        )


class TokenNotFound(APIError):
    """DingTalk does not know this webhook token."""

    exit_code = 3
    hint = (
        "use the access_token value from the robot's webhook URL (group settings → robots); "
        "an AppKey, an app access token or the whole URL is not a webhook token"
    )
    advice = Advice("webhook", "")


class InvalidAccessToken(APIError):
    """The app access token is invalid or expired."""

    hint = "the app's access token was refused; dingpush refreshes it once and retries"


class PermissionDenied(APIError):
    """The app lacks a permission or is not allowed to do this."""

    exit_code = 3
    hint = (
        "grant the app the permission in the developer console (open-dev.dingtalk.com → "
        "your app → permissions), publish the app, and check robotCode equals the AppKey"
    )


class QueryKeyExpired(APIError):
    """The message's ``processQueryKey`` is past DingTalk's window (protocol §11).

    One-to-one messages can be recalled, and read status queried, only within 24 hours of
    sending; a key DingTalk has not indexed yet (just after the send) gets the same code.
    """

    hint = (
        "DingTalk recalls one-to-one messages and reports read status only within 24 hours "
        "of sending (protocol §11); a key from the last second may not be indexed yet: "
        "try again in a few seconds"
    )


class DingQuotaExhausted(APIError):
    """An SMS or phone DING was refused for want of the paid quota (protocol §14)."""

    exit_code = 3
    hint = (
        "SMS and phone DINGs need the organisation's paid DING quota (admin console → "
        "增值服务 › 产品专区, the OpenAPI发DING额度 and the SMS/phone 权益包); an in-app DING "
        "(remind_type='app') needs none: send one, or pass fallback=True to fall back to it"
    )


class RobotUnavailable(APIError):
    """The robot is disabled, no longer in the group, or the group was dissolved."""

    exit_code = 3
    hint = "re-enable the robot or add it to the group again, then update the webhook"
    advice = Advice("webhook", "")


class MessageTooLarge(APIError):
    """The message is larger than the channel accepts."""

    hint = "pass split=True to send it in parts, or shorten it"
    advice: Advice | None = Advice("split", "pass split=True")

    def __init__(
        self,
        errcode: int | str = 460101,
        errmsg: str = "message too long",
        *,
        size: int | None = None,
        limit: int | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.size = size
        self.limit = limit
        super().__init__(errcode, errmsg, hint=hint, request_id=request_id, status_code=status_code)

    @classmethod
    def local(
        cls, *, size: int, limit: int, channel: str, field: str = "body", splittable: bool = True
    ) -> MessageTooLarge:
        """Refuse a message before any request: ``size`` bytes against ``limit``.

        Nothing reached DingTalk, so the message does not say "DingTalk refused"; ``errcode``
        is the code the channel itself would answer (:data:`TOO_LARGE_ERRCODES`), as data.
        """
        errcode = TOO_LARGE_ERRCODES.get(channel, 460101)
        what = f"the {field} is {size:,} bytes, over the {channel} limit of {limit:,} bytes"
        exc = cls(errcode, what, size=size, limit=limit)
        exc.refused_locally = True
        advice = "shorten it"
        if splittable:
            advice = "pass split=True to send it in parts, or shorten it"
        else:
            exc.advice = None
        exc.args = (
            f"not sent: the {field} is {size:,} bytes, the {channel} takes at most {limit:,} "
            f"(bytes, not characters: CJK text takes 3 bytes a character); {advice}",
        )
        return exc


#: The errcode each channel answers for a body over its limit (protocol §1.5, §3.4, §4.1).
TOO_LARGE_ERRCODES: dict[str, int | str] = {
    "robot webhook": 460101,
    "app robot": "invalidParameter.msgParam.tooLong",
    "work notification": 34016,
}


class UnsupportedMessageType(APIError):
    """DingTalk does not accept this msgtype on this endpoint."""

    hint = "webhook robots take text, markdown, link, actionCard and feedCard"


class ContentRejected(APIError):
    """DingTalk's content moderation refused the message."""

    hint = "remove the unsafe link, text or image the moderation flagged"


class InvalidRequest(APIError):
    """DingTalk refused a parameter of the request."""


def security_reason(errmsg: str) -> SecurityReason:
    """Tell which security setting refused a 310000, from the (unstable) errmsg wording."""
    text = errmsg.lower()
    if "keyword" in text or "关键词" in text:
        return "keyword"
    if "whitelist" in text or "白名单" in text or text.startswith("ip "):
        return "ip"
    if "timestamp" in text or "过期" in text:
        return "timestamp"
    if "sign" in text or "签名" in text:
        return "signature"
    return "unknown"


_ERRCODES: dict[int | str, type[DingPushError]] = {
    -1: ServerBusy,
    40035: InvalidRequest,
    43004: InvalidRequest,
    310000: SecurityRejected,
    300001: TokenNotFound,
    300005: TokenNotFound,
    400101: TokenNotFound,
    400102: RobotUnavailable,
    400106: RobotUnavailable,
    400013: RobotUnavailable,
    400105: UnsupportedMessageType,
    410100: RateLimited,
    130101: RateLimited,
    430101: ContentRejected,
    430102: ContentRejected,
    430103: ContentRejected,
    430104: ContentRejected,
    460101: MessageTooLarge,
    101002: MessageTooLarge,
    # Platform-wide throttles (protocol §7)
    90018: PlatformThrottled,
    90002: PlatformThrottled,
    90005: PlatformThrottled,
    90006: PlatformThrottled,
    90008: PlatformThrottled,
    90010: PlatformThrottled,
    # App tokens (protocol §2.5)
    40014: InvalidAccessToken,
    40001: InvalidAccessToken,
    42001: InvalidAccessToken,
    33001: InvalidAccessToken,
    41001: InvalidAccessToken,
    40089: BadCredentials,
    43007: PermissionDenied,
    # Work notifications and media (protocol §3.5, §4.1, §5)
    34016: MessageTooLarge,
    40008: UnsupportedMessageType,
    40006: MessageTooLarge,
    400001: ServerBusy,
    # v1.0 codes (protocol §3.4)
    "InvalidAuthentication": InvalidAccessToken,
    "Unauthorized": InvalidAccessToken,
    "invalidClientIdOrSecret": BadCredentials,
    "invalid.client": BadCredentials,
    "unauthorized.client": BadCredentials,
    "send.too.fast": RateLimited,
    "send.byToken.tooFast": RateLimited,
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi": PlatformThrottled,
    "Forbidden.AccessDenied.QpsLimitForApi": PlatformThrottled,
    "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi": PlatformThrottled,
    "system.error": ServerBusy,
    "send.ding.exception": ServerBusy,
    "invalidParameter.msgParam.tooLong": MessageTooLarge,
    "invalidParameter.robotCode.auth": PermissionDenied,
    "chatbotNotFound": RobotUnavailable,
    "bot.stopped": RobotUnavailable,
    "group.disbanded": RobotUnavailable,
    "invalidParameter.msg.unsupport": UnsupportedMessageType,
    "contain.unsafe.url": ContentRejected,
    "contain.notAllowed.text": ContentRejected,
    "contain.notAllowed.picture": ContentRejected,
    "contain.notAllowed.content": ContentRejected,
    # Recall and read status of app-robot messages (protocol §11)
    "robot.processQueryKey.expired": QueryKeyExpired,
    "processQueryKey.expireTime": QueryKeyExpired,
    "not.allowed.robotCode": PermissionDenied,
    "unauthorized": InvalidAccessToken,
    "auth.error": InvalidAccessToken,
    # DING messages (protocol §14)
    "ding.serverquota.insufficient": DingQuotaExhausted,
    "phoneding.reachlimit": DingQuotaExhausted,
    "volume.lack": DingQuotaExhausted,
    "toomuch.msg": RateLimited,
    # Everything else of §11/§14 (invalid.processQueryKey, miss.staffId,
    # ding.receivercount.limit, recall.ding.exception …) is an InvalidRequest by its 400.
}


def error_from_reply(
    errcode: int | str,
    errmsg: str,
    *,
    request_id: str | None = None,
    status_code: int | None = None,
) -> DingPushError:
    """Build the exception for a non-zero ``errcode`` (oapi, webhook) or v1.0 ``code``."""
    cls = _ERRCODES.get(errcode)
    if cls is None:
        cls = _v1_family(errcode, status_code) if isinstance(errcode, str) else InvalidRequest
    if cls is BadCredentials:
        return BadCredentials(
            f"DingTalk refused the app credentials ({errcode} {errmsg}): check the AppKey and "
            "AppSecret under 'Credentials and basic info' of the app in the developer console "
            "(open-dev.dingtalk.com)",
            errcode=errcode,
            request_id=request_id,
        )
    if not issubclass(cls, APIError):
        return cls(f"DingTalk refused the request: {errcode} {errmsg}")
    return cls(errcode, errmsg, request_id=request_id, status_code=status_code)


def _v1_family(code: str, status_code: int | None) -> type[APIError]:
    if code.startswith("Forbidden.AccessDenied"):
        return PlatformThrottled if "Limit" in code else PermissionDenied
    if code.startswith("contain."):
        return ContentRejected
    if status_code is not None and status_code >= 500:
        return ServerBusy
    if status_code == 401:
        return InvalidAccessToken
    if status_code == 403:
        return PermissionDenied
    return InvalidRequest
