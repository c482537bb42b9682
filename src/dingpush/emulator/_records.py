"""What the emulator remembers: conversations, accepted messages and every request's verdict.

The model is channel-neutral on purpose: a conversation is a group or a one-to-one chat, and a
message says which channel delivered it, so app robots and work notifications can record into
the same conversations as webhook robots and one chat view can show them all.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AtTargets",
    "Conversation",
    "EmulatorStats",
    "Message",
    "RequestRecord",
    "RobotStats",
    "conversation_id",
]

ConversationKind = Literal["group", "user"]


def conversation_id(kind: ConversationKind, title: str) -> str:
    """Return a stable id shaped like DingTalk's ``openConversationId`` (``cid…==``).

    Derived from the title, not a counter, so ids survive resets and restarts; the URL-safe
    alphabet lets the id sit in a query string or a path unencoded.
    """
    digest = hashlib.sha256(f"{kind}\n{title}".encode()).digest()[:16]
    return "cid" + base64.urlsafe_b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat that messages land in: a group (webhook robots) or a one-to-one chat."""

    id: str
    kind: ConversationKind
    title: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API."""
        return {"id": self.id, "kind": self.kind, "title": self.title}


@dataclass(frozen=True, slots=True)
class AtTargets:
    """The ``at`` object of a text or markdown message (§1.3), legacy ``atDingtalkIds`` kept."""

    mobiles: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    dingtalk_ids: tuple[str, ...] = ()
    all: bool = False

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AtTargets:
        """Read the top-level ``at`` object, ignoring malformed parts as a lenient server would."""
        at = payload.get("at")
        if not isinstance(at, Mapping):
            return cls()
        return cls(
            mobiles=_strings(at.get("atMobiles")),
            user_ids=_strings(at.get("atUserIds")),
            dingtalk_ids=_strings(at.get("atDingtalkIds")),
            all=at.get("isAtAll") is True,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API."""
        return {
            "mobiles": list(self.mobiles),
            "user_ids": list(self.user_ids),
            "dingtalk_ids": list(self.dingtalk_ids),
            "all": self.all,
        }


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value if isinstance(item, str | int))


@dataclass(frozen=True, slots=True)
class Message:
    """A message the emulator accepted and shows in a conversation.

    ``payload`` is the request body as sent, minus ``msgUuid``; treat it as read-only.
    """

    id: int
    conversation_id: str
    sender: str
    channel: str
    msgtype: str
    payload: Mapping[str, Any]
    time: float
    msg_uuid: str | None = None
    at: AtTargets = field(default_factory=AtTargets)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of ``GET /_emulator/messages`` entries."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "sender": self.sender,
            "channel": self.channel,
            "msgtype": self.msgtype,
            "payload": self.payload,
            "time": self.time,
            "msg_uuid": self.msg_uuid,
            "at": self.at.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request and its verdict, accepted or not.

    ``errcode``/``errmsg``/``http_status`` are what the client was answered (``None`` when a
    fault gave it no JSON, or no answer at all); ``reason`` is what processing decided and
    ``fault`` names the injected fault that changed the answer, if any. ``token`` is masked.
    """

    id: int
    time: float
    path: str
    robot: str | None
    token: str
    client_ip: str | None
    msgtype: str | None
    msg_uuid: str | None
    errcode: int | None
    errmsg: str | None
    reason: str
    accepted: bool
    body_size: int
    http_status: int | None = 200
    fault: str | None = None
    message_id: int | None = None
    #: The v1.0 error ``code`` (``InvalidAuthentication``…) of an api.dingtalk.com answer,
    #: whose refusals carry a string code instead of an ``errcode``.
    code: str | None = None
    #: What the emulator noticed about an accepted request that DingTalk documents but does
    #: not answer with an error (more @-mentions than the cap, §1.3).
    findings: tuple[str, ...] = ()

    @property
    def rejected(self) -> bool:
        """Whether the request was refused: not accepted, and not a de-duplicated retry."""
        return not self.accepted and self.reason != "duplicate"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of ``/_emulator/requests`` and ``/_emulator/rejections`` entries."""
        return {
            "id": self.id,
            "time": self.time,
            "path": self.path,
            "robot": self.robot,
            "token": self.token,
            "client_ip": self.client_ip,
            "msgtype": self.msgtype,
            "msg_uuid": self.msg_uuid,
            "errcode": self.errcode,
            "errmsg": self.errmsg,
            "reason": self.reason,
            "accepted": self.accepted,
            "body_size": self.body_size,
            "http_status": self.http_status,
            "fault": self.fault,
            "message_id": self.message_id,
            "code": self.code,
            "findings": list(self.findings),
        }


@dataclass(frozen=True, slots=True)
class RobotStats:
    """Per-robot counters: accepted messages, refusals by reason, de-duplicated retries."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)
    locked_until: float | None = None
    in_window: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``GET /_emulator/stats``."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(self.rejected),
            "locked_until": self.locked_until,
            "in_window": self.in_window,
        }


@dataclass(frozen=True, slots=True)
class EmulatorStats:
    """Totals across the emulator: per-robot stats, requests with an unknown token, all requests."""

    robots: Mapping[str, RobotStats]
    unknown_token: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of ``GET /_emulator/stats``."""
        return {
            "robots": {name: stats.to_dict() for name, stats in self.robots.items()},
            "unknown_token": self.unknown_token,
            "requests": self.requests,
        }
