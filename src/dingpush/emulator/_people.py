"""People talking to an app robot: the messages DingTalk sends it (protocol §12, §13).

A person posts in a group with ``@robot`` (or in the robot's one-to-one chat); the emulator
shows the message, builds DingTalk's robot-message body (§12.1) with a ``sessionWebhook`` of
its own (§12.4), and hands it to the app: over the Stream gateway (§13) or, when the app has a
``callback_url`` (HTTP mode), as a signed POST (§12.2) whose synchronous answer may be a reply
(§12.3). ``POST /robot/sendBySession`` takes replies while the session lives (90 minutes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._apps import AppConfig
from ._appstate import AppCall, Outcome
from ._json import loads
from ._records import Conversation

__all__ = ["PERSON_CHANNEL", "SESSION_CHANNEL", "Callback", "Session", "incoming_body"]

#: The channel of what people post (the chat view shows it on the people's side).
PERSON_CHANNEL = "person"
#: Replies through a sessionWebhook (§12.4).
SESSION_CHANNEL = "session-webhook"
#: §12.3/§12.4: what a reply may be (robot/send's types but link, whose support is [U]).
REPLY_TYPES = ("text", "markdown", "actionCard", "feedCard")


@dataclass(frozen=True, slots=True)
class Session:
    """A ``sessionWebhook``: the chat a reply goes to, until ``expires_at`` (§12.4)."""

    id: str
    app: str
    conversation: Conversation
    expires_at: float


@dataclass(frozen=True, slots=True)
class Callback:
    """One signed HTTP callback the emulator made (§12.1/§12.2) and how it was answered."""

    app: str
    url: str
    status: int | None
    error: str | None
    replied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "replied": self.replied,
        }


def _encrypted(value: str) -> str:
    """A stand-in for DingTalk's encrypted ids (``$:LWCP_v1:$…``)."""
    digest = hashlib.sha256(value.encode()).digest()[:18]
    return "$:LWCP_v1:$" + base64.b64encode(digest).decode("ascii")


def incoming_body(
    app: AppConfig,
    conversation: Conversation,
    user: str,
    text: str,
    *,
    group: bool,
    session_url: str,
    session_expires_at: float,
    now: float,
) -> dict[str, Any]:
    """The robot-message body of §12.1 (without ``timestamp``/``sign``, as Stream sends it)."""
    return {
        "msgtype": "text",
        # §12.1: the mention is stripped, a leading space kept.
        "text": {"content": " " + text},
        "msgId": "msg" + secrets.token_hex(12),
        "createAt": int(now * 1000),
        "conversationType": "2" if group else "1",
        "conversationId": conversation.id,
        "conversationTitle": conversation.title if group else "",
        "senderId": _encrypted(user),
        "senderNick": user,
        "senderStaffId": user,
        "senderCorpId": "dingemulatorcorp",
        "senderPlatform": "Web",
        "chatbotUserId": _encrypted(app.robot_code),
        "chatbotCorpId": "dingemulatorcorp",
        "robotCode": app.robot_code,
        "isAdmin": False,
        "isInAtList": group,
        "atUsers": [{"dingtalkId": _encrypted(app.robot_code)}] if group else [],
        "sessionWebhook": session_url,
        "sessionWebhookExpiredTime": int(session_expires_at * 1000),
    }


def callback_headers(app: AppConfig, now: float) -> dict[str, str]:
    """§12.1/§12.2: ``timestamp`` (ms) and ``sign`` keyed with the AppSecret, not URL-encoded.

    Computed here, not with the client's helper: the emulator checks the client, not itself.
    """
    timestamp = int(now * 1000)
    secret = app.app_secret.encode()
    digest = hmac.new(secret, f"{timestamp}\n{app.app_secret}".encode(), hashlib.sha256)
    return {
        "Content-Type": "application/json; charset=utf-8",
        "timestamp": str(timestamp),
        "sign": base64.b64encode(digest.digest()).decode("ascii"),
    }


def reply_payload(body: bytes) -> Mapping[str, Any] | None:
    """A synchronous reply (§12.3) or a sessionWebhook body: a robot/send message, or None
    for ``{"msgtype":"empty"}`` and anything not a message."""
    try:
        data = loads(body) if body else None
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("msgtype") not in REPLY_TYPES:
        return None
    return data


def judge_session(
    sessions: Mapping[str, Session], call: AppCall, now: float
) -> tuple[Session | None, Outcome | None]:
    """``POST /robot/sendBySession?session=…`` (§12.4): no token, no sign; 300001 once gone."""
    session = sessions.get(call.query_value("session") or "")
    if session is None or now >= session.expires_at:
        # §12.4 [OBS]: "300001 session 不存在" after expiry.
        return None, Outcome(200, {"errcode": 300001, "errmsg": "session 不存在"})
    return session, None
