"""Incidents: what the on-call loop knows about an alert group, shared by the whole relay.

An *incident* is one alert group on one route (``route`` + the sender's ``group_key``) from its
first firing notification until it is resolved. It has a short number (``42``, what people type
in ``@robot ack 42``), the outbox messages that told the group about it (and, for app targets,
their ``processQueryKey``), the escalation policy it follows and the step it is at, and a
timeline: sent, read by, DING'd, notified, acknowledged, silenced, resolved, recalled.

The escalation engine (``_escalation.py``) opens, advances and resolves incidents; the chat
commands and the signed ack links (``_chat.py``) acknowledge and silence them; the dashboard and
the API show and recall them. They all go through :class:`IncidentStore`, which the memory,
SQLite and PostgreSQL stores implement, so escalation state survives restarts and a fleet
fires each step once (:meth:`IncidentStore.claim_due` hands a due incident to one instance).
The store also remembers the chat messages the relay acted on (:meth:`IncidentStore.
claim_chat_message`), so a message DingTalk delivers twice is acted on once, by one instance.

This module holds the contract and the value types only; nothing here talks to DingTalk.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ChatClaim",
    "EventKind",
    "Incident",
    "IncidentState",
    "IncidentStore",
    "TimelineEvent",
]


class IncidentState(enum.StrEnum):
    """Where an incident is in its life."""

    #: Firing, nobody has taken it: escalation steps run.
    OPEN = "open"
    #: Someone took it (chat, dashboard, signed link): escalation stops.
    ACKNOWLEDGED = "acknowledged"
    #: Silenced in Alertmanager from the chat: escalation stops.
    SILENCED = "silenced"
    #: The sender said it is resolved: escalation stops; the incident is closed.
    RESOLVED = "resolved"

    @property
    def escalates(self) -> bool:
        return self is IncidentState.OPEN


class EventKind(enum.StrEnum):
    """The kinds of entries on an incident's timeline (the dashboard shows them in order)."""

    OPENED = "opened"  # first firing notification accepted
    SENT = "sent"  # a message about it was delivered (detail: target, message id)
    READ = "read"  # someone read the group message (who: the person)
    DING = "ding"  # an escalation step DING'd someone (who; detail: remind type)
    NOTIFIED = "notified"  # an escalation step sent a message to another target
    ACKNOWLEDGED = "acknowledged"  # who took it, and how (detail: chat, dashboard, link)
    SILENCED = "silenced"  # an Alertmanager silence was made (detail: silence id, until)
    RESOLVED = "resolved"
    RECALLED = "recalled"  # its message was recalled (who; detail: target)
    NOTE = "note"  # anything else worth showing (a failed step, a fallback to an in-app DING)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One entry on an incident's timeline."""

    at: float
    kind: EventKind
    #: The person (a name of the people directory, or a DingTalk userId) where one is involved.
    who: str | None = None
    #: A short human text (``"phone DING to alice"``, ``"via chat"``, ``"silence 8f2c… until …"``).
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    """A snapshot of one incident (stores return fresh snapshots; they are never mutated)."""

    number: int
    route: str
    group_key: str
    title: str
    #: The alert group's common labels: the matchers a silence is made from.
    labels: Mapping[str, str]
    #: The escalation policy's name (``None``: the route has none; nothing escalates).
    policy: str | None
    state: IncidentState
    opened_at: float
    #: The index of the next escalation step to run, and when it is due (``None``: none left).
    step: int = 0
    due_at: float | None = None
    #: The targets the alert went to, and the outbox ids of the messages about it.
    targets: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    acknowledged_by: str | None = None
    closed_at: float | None = None
    timeline: tuple[TimelineEvent, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str]:
        return (self.route, self.group_key)


@dataclass(frozen=True, slots=True)
class ChatClaim:
    """What :meth:`IncidentStore.claim_chat_message` found for one chat message.

    ``first``: this caller took it, and acts on it. Otherwise ``answer`` is the answer stored
    for it, or ``None`` while the caller that took it is still acting.
    """

    first: bool
    answer: str | None = None


class IncidentStore(typing.Protocol):
    """Where incidents live: memory (tests, single process), SQLite, PostgreSQL (a fleet).

    Every method is atomic; every time is a UNIX time the caller passes (an injected clock).
    A method given a number no incident has raises ``IncidentNotFound``
    (``dingpush.relay.stores``); ``get`` answers ``None``. Each outbox store has its own
    (``store.incidents``: the same file or schema); ``Relay.incidents`` is the relay's.
    """

    async def open_incident(
        self,
        *,
        route: str,
        group_key: str,
        title: str,
        labels: Mapping[str, str],
        policy: str | None,
        targets: Sequence[str],
        due_at: float | None,
        now: float,
    ) -> Incident:
        """The open incident of ``(route, group_key)``, made (with the next number) if none is."""

    async def attach_messages(self, number: int, message_ids: Sequence[str]) -> Incident:
        """Add outbox message ids to the incident (the group message, digests, notifications)."""

    async def resolve(self, *, route: str, group_key: str, now: float) -> Incident | None:
        """Close the open incident of ``(route, group_key)``; ``None`` when there was none."""

    async def acknowledge(self, number: int, *, who: str, via: str, now: float) -> Incident:
        """Mark an open incident acknowledged (idempotent: a second ack keeps the first one)."""

    async def silence(self, number: int, *, who: str, detail: str, now: float) -> Incident:
        """Mark an open or acknowledged incident silenced."""

    async def record(self, number: int, event: TimelineEvent) -> Incident:
        """Append an event to the timeline."""

    async def get(self, number: int) -> Incident | None: ...

    async def find_by_message(self, message_id: str) -> Incident | None:
        """The incident one of whose messages is ``message_id`` (a chat reply to an alert)."""

    async def list_incidents(
        self, *, states: Sequence[IncidentState] = (), target: str | None = None, limit: int = 100
    ) -> list[Incident]:
        """Incidents newest first, optionally only those in ``states`` or sent to ``target``."""

    async def claim_due(
        self, *, now: float, holder: str, lease: float, limit: int = 50
    ) -> list[Incident]:
        """Open incidents whose step is due at ``now``, each handed to one caller in a fleet.

        A claimed incident is not handed out again for ``lease`` seconds unless
        :meth:`advance` is called; a holder that dies loses the claim when the lease ends, so
        the step then runs on another instance (at most once per step: :meth:`advance`
        checks the step it moves from).
        """

    async def advance(
        self,
        number: int,
        *,
        from_step: int,
        to_step: int,
        due_at: float | None,
        event: TimelineEvent,
    ) -> Incident | None:
        """Move an incident from ``from_step`` to ``to_step`` and record ``event``.

        Returns ``None`` when the incident is no longer at ``from_step`` or no longer open
        (another instance ran the step, or it was acknowledged meanwhile): the caller then
        does not act.
        """

    async def claim_chat_message(self, key: str, *, now: float, ttl: float) -> ChatClaim:
        """Take a chat message (``key``: its app and ``msgId``) to act on, once in a fleet.

        The first caller gets ``ChatClaim(first=True)`` and must then call
        :meth:`answer_chat_message`; every later caller gets the stored answer, or
        ``answer=None`` while the first is still acting. A message is remembered for ``ttl``
        seconds from its claim; expired entries are dropped by later claims (a bounded number
        each), so the store holds about the messages of one ``ttl``.
        """

    async def answer_chat_message(self, key: str, answer: str | None) -> None:
        """Store the answer to a message this caller claimed (later claims get it).

        ``None`` gives the claim up (acting on it raised, so there is no answer to give): the
        next delivery of the message may claim it again.
        """
