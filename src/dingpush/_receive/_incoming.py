"""Incoming messages to an app robot and the HTTP-callback check (protocol §12).

Sans-I/O: :func:`parse_incoming` reads the body DingTalk sends (the same over HTTP callbacks
and Stream mode, §12.1, §13.2) into a typed :class:`IncomingMessage`; :func:`verify_callback`
checks an HTTP callback's ``timestamp`` and ``sign`` headers (§12.2) before parsing it.
"""

from __future__ import annotations

import dataclasses
import hmac
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from dingpush._errors import CallbackRejected
from dingpush._messages._json import load_json
from dingpush._robot._signing import sign

__all__ = [
    "CALLBACK_WINDOW_MS",
    "IncomingMessage",
    "callback_sign",
    "parse_incoming",
    "verify_callback",
]

#: §12.2: a callback is accepted only if its timestamp is within one hour of our clock.
CALLBACK_WINDOW_MS = 3_600_000

ConversationType = typing.Literal["group", "oto"]


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message a person sent to the app's robot: an @-mention in a group, or a 1:1 message.

    ``text`` is the text without the mention (DingTalk strips it and leaves a leading space,
    trimmed here). ``sender_user_id`` is the org userId (``senderStaffId``; empty for external
    users and before the robot is published, §12.1). ``conversation_id`` is the group's
    openConversationId, which ``App.group()`` takes. ``session_webhook`` answers into the same
    chat until ``session_webhook_expires_at`` (epoch seconds; 90 minutes after the message):
    ``App.reply()`` uses it while it lives and the app's robot API after.
    """

    msg_id: str
    msgtype: str
    text: str
    sender_user_id: str
    sender_nick: str
    conversation_id: str
    conversation_type: ConversationType
    conversation_title: str
    robot_code: str
    session_webhook: str = dataclasses.field(repr=False)
    session_webhook_expires_at: float
    created_at: float
    is_admin: bool = False
    #: The body as DingTalk sent it.
    raw: Mapping[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False, hash=False)

    @property
    def is_group(self) -> bool:
        return self.conversation_type == "group"

    def session_alive(self, now: float) -> bool:
        """Whether the session webhook may still be used at ``now`` (epoch seconds)."""
        return bool(self.session_webhook) and now < self.session_webhook_expires_at


def _ms(value: object) -> float:
    """Epoch ms as a number or a string (§12.1 types ``createAt`` both ways) → seconds."""
    try:
        return float(str(value)) / 1000.0
    except ValueError:
        return 0.0


def _text(body: Mapping[str, typing.Any]) -> str:
    text = body.get("text")
    if isinstance(text, Mapping) and isinstance(text.get("content"), str):
        return str(text["content"]).strip()
    content = body.get("content")
    if isinstance(content, Mapping):  # richText: the text parts, joined
        parts = content.get("richText")
        if isinstance(parts, list):
            return "".join(
                str(p["text"]) for p in parts if isinstance(p, Mapping) and "text" in p
            ).strip()
        if isinstance(content.get("recognition"), str):  # audio: DingTalk's transcript
            return str(content["recognition"]).strip()
    if isinstance(content, str):  # one guide's HTTP example has a top-level content [U]
        return content.strip()
    return ""


def parse_incoming(data: bytes | str | Mapping[str, typing.Any]) -> IncomingMessage:
    """Read a robot-message body (§12.1) into an :class:`IncomingMessage`."""
    if isinstance(data, bytes | str):
        try:  # bounded nesting, no lone surrogate (InvalidMessage is a ValueError)
            body = load_json(data.decode("utf-8") if isinstance(data, bytes) else data)
        except ValueError as exc:
            raise CallbackRejected(f"the robot message is not JSON: {exc}", reason="body") from None
    else:
        body = data
    if not isinstance(body, Mapping):
        raise CallbackRejected("the robot message is not a JSON object", reason="body")
    kind = "group" if str(body.get("conversationType", "")) == "2" else "oto"
    return IncomingMessage(
        # DingTalk's msgId is a string; anything else (null, a number) is no id at all, so
        # that null does not become the id "None" shared by every such message.
        msg_id=msg_id if isinstance(msg_id := body.get("msgId"), str) else "",
        msgtype=str(body.get("msgtype", "text")),
        text=_text(body),
        sender_user_id=str(body.get("senderStaffId") or ""),
        sender_nick=str(body.get("senderNick") or ""),
        conversation_id=str(body.get("conversationId") or ""),
        conversation_type=typing.cast(ConversationType, kind),
        conversation_title=str(body.get("conversationTitle") or ""),
        robot_code=str(body.get("robotCode") or ""),
        session_webhook=str(body.get("sessionWebhook") or ""),
        session_webhook_expires_at=_ms(body.get("sessionWebhookExpiredTime", 0)),
        created_at=_ms(body.get("createAt", 0)),
        is_admin=body.get("isAdmin") is True,
        raw=dict(body),
    )


def callback_sign(app_secret: str, timestamp_ms: int) -> str:
    """§12.2: ``Base64(HMAC-SHA256(appSecret, timestamp + "\\n" + appSecret))``, not URL-encoded."""
    return sign(app_secret, timestamp_ms)


def verify_callback(
    headers: Mapping[str, str],
    body: bytes | str,
    app_secret: str,
    *,
    now: float,
    window_ms: int = CALLBACK_WINDOW_MS,
) -> IncomingMessage:
    """Check an HTTP callback (§12.2) and read its message; raise ``CallbackRejected``.

    ``headers`` are the request's (any case); ``now`` is epoch seconds. The ``sign`` header
    must be the HMAC of its ``timestamp`` keyed with the app's AppSecret, and the timestamp
    within ``window_ms`` of ``now``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lowered.get("timestamp"), lowered.get("sign")
    if not timestamp or not signature:
        raise CallbackRejected(
            "the callback has no timestamp/sign headers: it did not come from DingTalk",
            reason="missing",
        )
    # Epoch milliseconds are 13 ASCII digits: anything else (a sign, spaces, 400 digits that
    # no float holds) is refused here rather than failing further down.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        raise CallbackRejected(
            f"the callback's timestamp {timestamp[:20]!r} is not epoch milliseconds",
            reason="timestamp",
        )
    timestamp_ms = int(timestamp)
    if abs(now * 1000 - timestamp_ms) > window_ms:
        raise CallbackRejected(
            f"the callback's timestamp is {abs(now * 1000 - timestamp_ms) / 1000:.0f} s away "
            f"from this host's clock, over the {window_ms // 1000} s allowed (§12.2): a replay, "
            "or a clock out of sync (check NTP)",
            reason="timestamp",
        )
    # Bytes: compare_digest refuses str with non-ASCII characters (a header may carry any).
    expected = callback_sign(app_secret, timestamp_ms).encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise CallbackRejected(
            "the callback's sign does not match: it was not signed with this app's AppSecret "
            "(check the secret, or the request is forged)",
            reason="signature",
        )
    return parse_incoming(body)
