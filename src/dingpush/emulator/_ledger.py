"""The ledger every part of the emulator records into: clock, options, ids, conversations,
messages, the request log, faults, and the requests still being answered.

The robot area and the app area both write here, so app messages land in the conversations
webhook robots post into and every request of either is in ``/_emulator/requests``. The ledger
is not thread-safe on its own: :class:`~dingpush.emulator.Emulator` holds :attr:`Ledger.lock`
around every call into its parts.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from typing import Any

from ._config import Clock, EmulatorOptions
from ._faults import FaultBook
from ._records import (
    AtTargets,
    Conversation,
    ConversationKind,
    Message,
    RequestRecord,
    conversation_id,
)

__all__ = ["Ledger", "SystemClock"]


class SystemClock:
    """Wall-clock time, for an emulator given no clock."""

    def time(self) -> float:
        return time.time()


class Ledger:
    """Records, clock, ids and faults, shared by the emulator's areas under one lock."""

    def __init__(self, options: EmulatorOptions, clock: Clock) -> None:
        #: The one lock: the HTTP app (uvicorn's loop in a thread) and tests reading the
        #: emulator from the main thread take it; nothing awaits while holding it.
        self.lock = threading.Lock()
        self.options = options
        self.clock = clock
        self.conversations: dict[str, Conversation] = {}
        self.messages: list[Message] = []
        self.requests: list[RequestRecord] = []
        self.faults = FaultBook()
        # Ids keep counting across resets so a chat view polling with since_id never goes back.
        self._next_message_id = 1
        self._next_request_id = 1
        # Bumped by changes that allocate no id (robots, apps, resets), for `version`.
        self._changes = 0
        # DingTalk-side requests still being answered (a `delay` fault keeps one open after
        # its client gave up); `wait_idle` lets a test's teardown wait for them.
        self._in_flight = 0
        self._idle = threading.Condition(self.lock)

    def now(self) -> float:
        return self.clock.time()

    def changed(self) -> None:
        """Note a change that allocates no id (a robot added, a reset), for :attr:`version`."""
        self._changes += 1

    @property
    def version(self) -> str:
        """Moves whenever a view of the emulator may change (see ``Emulator.version``)."""
        return f"{self._changes}.{self._next_message_id}.{self._next_request_id}"

    # -- conversations and messages -------------------------------------------------------

    def conversation(self, kind: ConversationKind, title: str) -> Conversation:
        """The conversation of ``title``, created (and listed) on first use."""
        cid = conversation_id(kind, title)
        found = self.conversations.get(cid)
        if found is None:
            found = self.conversations[cid] = Conversation(cid, kind, title)
        return found

    def add_conversation(self, conversation: Conversation) -> Conversation:
        """List ``conversation`` unless one with its id is listed; return the listed one."""
        return self.conversations.setdefault(conversation.id, conversation)

    def peek_conversation(self, kind: ConversationKind, title: str) -> Conversation:
        """The conversation of ``title``, without listing it until a message lands in it."""
        cid = conversation_id(kind, title)
        return self.conversations.get(cid) or Conversation(cid, kind, title)

    def deliver(
        self,
        conversation: Conversation,
        *,
        sender: str,
        channel: str,
        msgtype: str,
        payload: Mapping[str, Any],
        now: float,
        msg_uuid: str | None = None,
        at: AtTargets | None = None,
    ) -> Message:
        """Record an accepted message into ``conversation`` (listing it if it was not)."""
        self.conversations.setdefault(conversation.id, conversation)
        message = Message(
            id=self._next_message_id,
            conversation_id=conversation.id,
            sender=sender,
            channel=channel,
            msgtype=msgtype,
            payload=copy.deepcopy(dict(payload)),
            time=now,
            msg_uuid=msg_uuid,
            at=at or AtTargets(),
        )
        self._next_message_id += 1
        self.messages.append(message)
        return message

    def find_messages(
        self,
        *,
        sender: str | None = None,
        conversation: str | None = None,
        since_id: int | None = None,
    ) -> list[Message]:
        """Messages oldest first; ``conversation`` matches a conversation's id or title."""
        cids = {c.id for c in self.conversations.values() if conversation in (c.id, c.title)}
        return [
            m
            for m in self.messages
            if (sender is None or m.sender == sender)
            and (conversation is None or m.conversation_id in cids)
            and (since_id is None or m.id > since_id)
        ]

    # -- the request log ------------------------------------------------------------------

    def record(self, **fields: Any) -> RequestRecord:
        """Append a request record (every field but its id) and return it."""
        record = RequestRecord(id=self._next_request_id, **fields)
        self._next_request_id += 1
        self.requests.append(record)
        return record

    def find_requests(
        self, *, sender: str | None = None, accepted: bool | None = None
    ) -> list[RequestRecord]:
        return [
            r
            for r in self.requests
            if (sender is None or r.robot == sender)
            and (accepted is None or r.accepted == accepted)
        ]

    # -- requests in flight ---------------------------------------------------------------

    def started(self) -> None:
        self._in_flight += 1

    def finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (holding :attr:`lock`, which the wait releases) until nothing is in flight."""
        return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- reset ----------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget messages, requests, faults and conversations; ids keep counting."""
        self.changed()
        self.messages.clear()
        self.requests.clear()
        self.faults.clear()
        self.conversations = {}
