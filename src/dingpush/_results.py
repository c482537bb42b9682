"""What sends and queries return: frozen results, DingTalk's lists surfaced.

``SendResult`` is a webhook robot's; the rest are an app's. The engine, the errors
(``PartialDelivery`` carries the results of the parts that went) and both client families
import them from here, which keeps the results below everything that produces them.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DingReadStatus",
    "DingResult",
    "GroupReadStatus",
    "GroupSendResult",
    "NoticeDelivery",
    "NoticeForbidden",
    "NoticeProgress",
    "NoticeSendResult",
    "RecallResult",
    "RemindType",
    "SendResult",
    "UserReadStatus",
    "UsersReadStatus",
    "UsersSendResult",
]

#: How a DING reaches its receivers (protocol §14.1 ``remindType`` 1/2/3): in the app (free),
#: by SMS or by a phone call (both paid, and 20 receivers a call).
RemindType = typing.Literal["app", "sms", "call"]

#: The flow-control codes of ``forbidden_list`` (protocol §4.3).
FORBIDDEN_REASONS: typing.Mapping[str, str] = {
    "143103": "the app's recipients-per-minute limit",
    "143104": "the organisation's recipients-per-minute limit",
    "143105": "the per-user daily limit (500 messages a user a day for an internal app)",
    "143106": "the same content already went to this user today",
    "143203": "the app's recipients-per-minute limit (third-party app)",
    "143204": "the organisation's recipients-per-minute limit (third-party app)",
    "143205": "the per-user daily limit (third-party app)",
    "143206": "the same content already went to this user today (third-party app)",
    "1430000": "no receivers",
    "1430002": "prohibited content",
    "1430003": "OAPI protection",
    "1430004": "senior-executive protection",
}


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
class GroupSendResult:
    """An app robot's message accepted into a group (protocol §3.1).

    ``msg_uuid`` is dingpush's idempotency key for the send; DingTalk's app-robot API has no
    such field, so it is not sent, but the relay keys redelivery on it. A message sent with
    ``split=True`` has one result per part in ``parts`` (the first part's key on top).
    """

    process_query_key: str
    open_conversation_id: str
    msg_key: str
    msg_uuid: str
    #: Requests it took, retries included.
    attempts: int = 1
    #: The result of each part, in order, when the message was split; empty otherwise.
    parts: tuple[GroupSendResult, ...] = ()


@dataclass(frozen=True, slots=True)
class UsersSendResult:
    """An app robot's one-to-one message, sent 20 users a call (protocol §3.2).

    ``invalid_user_ids`` are unknown to DingTalk; ``flow_controlled_user_ids`` were still
    throttled after the retry policy's resends and did not get the message (send to them again
    later); ``filtered_user_ids`` were filtered out by DingTalk. With ``split=True`` a user
    counts as delivered only when every part reached them; ``parts`` has each part's result.
    """

    process_query_keys: tuple[str, ...]
    user_ids: tuple[str, ...]
    invalid_user_ids: tuple[str, ...]
    flow_controlled_user_ids: tuple[str, ...]
    filtered_user_ids: tuple[str, ...]
    msg_key: str
    msg_uuid: str
    #: Requests it took: every chunk of 20 users, resends to flow-controlled users, retries.
    attempts: int = 1
    #: The result of each part, in order, when the message was split; empty otherwise.
    parts: tuple[UsersSendResult, ...] = ()

    @property
    def process_query_key(self) -> str:
        """The key of the first call (the only one for up to 20 users)."""
        return self.process_query_keys[0]

    @property
    def delivered_user_ids(self) -> tuple[str, ...]:
        """The users the message reached: asked for, minus invalid, throttled and filtered."""
        missed = {*self.invalid_user_ids, *self.flow_controlled_user_ids, *self.filtered_user_ids}
        return tuple(user for user in self.user_ids if user not in missed)


@dataclass(frozen=True, slots=True)
class NoticeSendResult:
    """A work notification DingTalk queued (protocol §4.1).

    Success only means the task was created: recipients over a limit are dropped silently.
    Ask :meth:`App.send_result` with the ``task_id`` who got it. More than 100 users or 20
    departments take several calls, hence several task ids (and a split message one set a part).
    """

    task_ids: tuple[int, ...]
    agent_id: int
    msgtype: str
    msg_uuid: str
    #: Requests it took, retries included.
    attempts: int = 1
    #: The result of each part, in order, when the message was split; empty otherwise.
    parts: tuple[NoticeSendResult, ...] = ()

    @property
    def task_id(self) -> int:
        """The task of the first call (the only one for up to 100 users and 20 departments)."""
        return self.task_ids[0]


@dataclass(frozen=True, slots=True)
class NoticeForbidden:
    """A recipient DingTalk's flow control dropped, with the code saying why (§4.3)."""

    user_id: str
    code: str
    count: int

    @property
    def reason(self) -> str:
        """The code in words, e.g. "the same content already went to this user today"."""
        return FORBIDDEN_REASONS.get(self.code, f"flow-control code {self.code}")


@dataclass(frozen=True, slots=True)
class NoticeDelivery:
    """Who a work notification reached (``getsendresult``, protocol §4.3)."""

    task_id: int
    agent_id: int
    invalid_user_ids: tuple[str, ...]
    forbidden_user_ids: tuple[str, ...]
    failed_user_ids: tuple[str, ...]
    read_user_ids: tuple[str, ...]
    unread_user_ids: tuple[str, ...]
    invalid_dept_ids: tuple[str, ...]
    forbidden: tuple[NoticeForbidden, ...]

    @property
    def delivered_user_ids(self) -> tuple[str, ...]:
        """The recipients who got it, read or not."""
        return (*self.read_user_ids, *self.unread_user_ids)


@dataclass(frozen=True, slots=True)
class NoticeProgress:
    """How far DingTalk is with a work-notification task (``getsendprogress``, §4.2)."""

    task_id: int
    agent_id: int
    percent: int
    status: int

    @property
    def state(self) -> typing.Literal["pending", "processing", "done"]:
        """``status`` in words: 0 pending, 1 processing, 2 done."""
        if self.status == 0:
            return "pending"
        return "processing" if self.status == 1 else "done"

    @property
    def done(self) -> bool:
        return self.status == 2


@dataclass(frozen=True, slots=True)
class RecallResult:
    """What a recall of app-robot messages did (protocol §11.1, §11.2).

    ``recalled`` lists the keys DingTalk recalled; ``failed`` maps each key it did not to
    DingTalk's reason (e.g. ``SYSTEM_ERROR``). Keys go 20 a call; ``attempts`` counts the calls.
    """

    recalled: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: The group's openConversationId for a group recall; ``None`` for one-to-one messages.
    open_conversation_id: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Whether every key was recalled."""
        return not self.failed


@dataclass(frozen=True, slots=True)
class GroupReadStatus:
    """Who in a group has read an app robot's message (``groupMessages/query``, §11.3).

    ``send_status`` is DingTalk's ``SUCCESS``, ``RECALLED`` or ``PROCESSING``; the read list
    comes in pages of up to 200, which dingpush fetches in turn (``pages`` of them).
    """

    process_query_key: str
    open_conversation_id: str
    send_status: str
    read_user_ids: tuple[str, ...]
    pages: int = 1

    @property
    def recalled(self) -> bool:
        return self.send_status == "RECALLED"


@dataclass(frozen=True, slots=True)
class UserReadStatus:
    """One recipient of a one-to-one message and whether they read it (§11.4)."""

    user_id: str
    name: str
    read: bool


@dataclass(frozen=True, slots=True)
class UsersReadStatus:
    """Who read an app robot's one-to-one message (``oToMessages/readStatus``, §11.4).

    A send to more than 20 users took several keys; their statuses are merged here.
    """

    process_query_keys: tuple[str, ...]
    send_status: str
    users: tuple[UserReadStatus, ...]

    @property
    def read_user_ids(self) -> tuple[str, ...]:
        return tuple(user.user_id for user in self.users if user.read)

    @property
    def unread_user_ids(self) -> tuple[str, ...]:
        return tuple(user.user_id for user in self.users if not user.read)

    @property
    def recalled(self) -> bool:
        return self.send_status == "RECALLED"


@dataclass(frozen=True, slots=True)
class DingResult:
    """A DING DingTalk accepted (``robot/ding/send``, protocol §14.1).

    ``failed`` maps DingTalk's reason to the users it did not reach. Receivers go 200 a call
    in the app and 20 by SMS or phone, so a long list takes several ``open_ding_ids``.
    ``fell_back_from`` names the reminder type asked for when the organisation had no quota
    for it and ``fallback=True`` sent an in-app DING instead.
    """

    open_ding_ids: tuple[str, ...]
    remind_type: RemindType
    user_ids: tuple[str, ...]
    failed: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    fell_back_from: RemindType | None = None

    @property
    def open_ding_id(self) -> str:
        """The id of the first call (the only one up to 200 in-app or 20 SMS/phone receivers)."""
        return self.open_ding_ids[0]

    @property
    def failed_user_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(user for users in self.failed.values() for user in users))

    @property
    def reached_user_ids(self) -> tuple[str, ...]:
        failed = set(self.failed_user_ids)
        return tuple(user for user in self.user_ids if user not in failed)


@dataclass(frozen=True, slots=True)
class DingReadStatus:
    """Who has read a DING (``robot/ding/readStatuses/query``, protocol §14.3).

    DingTalk reports *read*, not *confirmed* (§14.4): a person who opened the DING counts as
    read whether or not they confirmed it. ``statuses`` keeps DingTalk's value per user.
    """

    open_ding_ids: tuple[str, ...]
    statuses: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def read_user_ids(self) -> tuple[str, ...]:
        return tuple(user for user, status in self.statuses.items() if status != "UNREAD")

    @property
    def unread_user_ids(self) -> tuple[str, ...]:
        return tuple(user for user, status in self.statuses.items() if status == "UNREAD")
