"""Acknowledge and silence from the chat: what the relay does with ``@robot ack`` and friends.

A message people send an app robot (over an HTTP callback or Stream mode, both an
:class:`~dingpush.IncomingMessage`) is read by :func:`~._commands.parse_command` and acted on
here, against the incident store:

* ``ack [N]``: :meth:`IncidentStore.acknowledge` (``via="chat"``), who = the person of the
  people directory whose ``user_id`` sent it, else the userId. Without ``N``, the newest open
  incident of the group the message was written in (the incidents of the targets that post
  there).
* ``silence [N] DURATION``: an Alertmanager silence for the incident's labels (the person as
  its creator), then :meth:`IncidentStore.silence` with the silence's id and end.
* ``status``: the group's open, acknowledged and silenced incidents.
* ``help``, and anything not understood: the commands.

:meth:`ChatCommands.handle` returns the answer's text; the receiving side
(``_receivers.py``) sends it into the chat the message came from.
"""

from __future__ import annotations

import datetime
import logging
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dingpush import IncomingMessage
from dingpush.lowlevel import SYSTEM_CLOCK

from ._commands import Command, format_duration, help_text, parse_command
from ._incidents import EventKind, Incident, IncidentState, IncidentStore, TimelineEvent
from ._silences import AlertmanagerError, Silences
from .stores import IncidentNotFound, StoreError

if typing.TYPE_CHECKING:
    from dingpush import Clock
    from dingpush.alerts import Person

    from ._targets import RelayTarget

__all__ = ["Answer", "ChatCommands", "SilenceWatch"]

log = logging.getLogger("dingpush.relay")


class Tell(typing.Protocol):
    async def __call__(
        self, incident: Incident, text: str, *, exclude: typing.Sequence[str] = ()
    ) -> None: ...


#: How many incidents ``status`` lists (the newest), and how much of each title it shows: the
#: answer must stay well within what DingTalk takes in a text message (20,000 bytes).
STATUS_LINES = 20
TITLE_MAX = 120
#: The states ``status`` lists and a bare ``silence`` may pick (not resolved).
LIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.SILENCED)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the robot answers, and the incident it acted on (if any)."""

    text: str
    command: Command
    incident: Incident | None = None


def _when(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


class ChatCommands:
    """Acts on chat commands against an incident store.

    Args:
        incidents: the relay's incident store (the one escalation and the dashboard use).
        targets: the relay's targets: which of them post into a conversation decides the
            incidents ``ack`` without a number and ``status`` see.
        people: the people directory (``[people.NAME]``), to name who acknowledged.
        silences: the Alertmanager client (``[relay] alertmanager_url``); without one,
            ``silence`` answers how to set it up.
        silence_max: the longest silence made from the chat, in seconds
            (``[relay] silence_max``).
        clock: where time comes from.
        tell: sends a text to an incident's targets but some (the relay's ``tell``): the
            other groups an alert went to learn that it was acknowledged or silenced.
    """

    def __init__(
        self,
        incidents: IncidentStore,
        *,
        targets: Mapping[str, RelayTarget],
        people: Iterable[Person] = (),
        silences: Silences | None = None,
        silence_max: float = 7 * 86400.0,
        clock: Clock | None = None,
        tell: Tell | None = None,
    ) -> None:
        self.incidents = incidents
        self.targets = targets
        self._names = {p.user_id: p.name for p in people if p.user_id}
        self.silences = silences
        self.silence_max = silence_max
        self.clock = clock or SYSTEM_CLOCK
        self.tell = tell

    async def _tell_others(self, message: IncomingMessage, incident: Incident, text: str) -> None:
        """Tell the incident's other targets what happened in this chat."""
        if self.tell is None:
            return
        try:
            await self.tell(incident, text, exclude=self.scope(message))
        except Exception as exc:  # the chat's own answer matters more; the log says why
            log.warning("telling #%d's other targets failed: %s", incident.number, exc)

    def person(self, message: IncomingMessage) -> str:
        """Who sent it: their name in the directory, else their userId, else their nick.

        A nick is whatever the sender calls themselves (an external user has no userId, nor
        does anyone before the robot is published): it is marked, so that a guest calling
        themselves "alice" is not recorded as the directory's alice.
        """
        user = message.sender_user_id
        if user and user in self._names:
            return self._names[user]
        if user:
            return user
        return f"{message.sender_nick or 'someone'} (no userId)"

    def scope(self, message: IncomingMessage) -> list[str]:
        """The targets that post into the conversation the message was written in."""
        names = []
        for name, target in self.targets.items():
            if message.is_group:
                here = target.kind == "app-group" and (
                    getattr(target, "open_conversation_id", None) == message.conversation_id
                )
            else:
                here = target.kind == "app-users" and (
                    message.sender_user_id in getattr(target, "user_ids", ())
                )
            if here:
                names.append(name)
        return names

    async def _newest(
        self, message: IncomingMessage, states: typing.Sequence[IncidentState]
    ) -> Incident | None:
        found: list[Incident] = []
        for target in self.scope(message):
            found += await self.incidents.list_incidents(states=states, target=target, limit=1)
        return max(found, key=lambda i: i.number) if found else None

    async def _listing(self, message: IncomingMessage) -> list[Incident]:
        seen: dict[int, Incident] = {}
        for target in self.scope(message):
            for incident in await self.incidents.list_incidents(states=LIVE, target=target):
                seen[incident.number] = incident
        return sorted(seen.values(), key=lambda i: i.number)

    async def handle(self, message: IncomingMessage) -> Answer:
        """Act on one message; the answer to send back into its chat."""
        command = parse_command(message.text)
        try:
            if command.name == "ack":
                return await self._ack(message, command)
            if command.name == "silence":
                return await self._silence(message, command)
            if command.name == "status":
                return await self._status(message, command)
        except StoreError as exc:
            log.warning("chat command %r failed: %s", command.name, exc)
            return Answer(
                "The relay cannot reach its incident store right now; try again in a moment.",
                command,
            )
        return Answer(help_text(command.problem), command)

    async def _pick(
        self, message: IncomingMessage, command: Command, states: typing.Sequence[IncidentState]
    ) -> Incident | str:
        """The incident a command names, or the answer that says why there is none."""
        if command.number is not None:
            incident = await self.incidents.get(command.number)
            return incident if incident is not None else f"There is no incident #{command.number}."
        if not self.scope(message):
            return (
                f"No alerts are sent to this chat, so {command.name} needs the incident's number "
                f"({command.name} 42)."
            )
        incident = await self._newest(message, states)
        if incident is None:
            return "No open incident in this chat."
        return incident

    async def _ack(self, message: IncomingMessage, command: Command) -> Answer:
        picked = await self._pick(message, command, (IncidentState.OPEN,))
        if isinstance(picked, str) and command.number is None and self.scope(message):
            # Two people typed "ack" at once: the second learns who took it, as "ack 42" does.
            taken = await self._newest(message, LIVE)
            if taken is not None:
                return Answer(_not_open(taken), command, taken)
        if isinstance(picked, str):
            return Answer(picked, command)
        who = self.person(message)
        try:
            incident = await self.incidents.acknowledge(
                picked.number, who=who, via="chat", now=self.clock.time()
            )
        except IncidentNotFound:
            return Answer(f"There is no incident #{picked.number}.", command)
        if picked.state is IncidentState.OPEN and incident.acknowledged_by == who:
            text = f"#{incident.number} acknowledged by {who}"
            await self._tell_others(message, incident, text)
            return Answer(text, command, incident)
        return Answer(_not_open(incident), command, incident)

    async def _silence(self, message: IncomingMessage, command: Command) -> Answer:
        picked = await self._pick(message, command, LIVE)
        if isinstance(picked, str):
            return Answer(picked, command)
        if picked.state is IncidentState.RESOLVED:
            return Answer(f"#{picked.number} is resolved already: nothing to silence.", command)
        if self.silences is None:
            return Answer(
                "Silences are not set up: the relay's admin sets alertmanager_url in [relay].",
                command,
                picked,
            )
        who = self.person(message)
        duration = typing.cast(float, command.duration)
        if duration > self.silence_max:  # "silence 99999h": a typo would mute it for years
            longest = format_duration(self.silence_max)
            return Answer(
                f"#{picked.number} was not silenced: a silence from the chat lasts at most "
                f"{longest}. Ask for {longest} or less, or make "
                "a longer one in Alertmanager's page (the relay's admin sets [relay] silence_max)",
                command,
                picked,
            )
        now = self.clock.time()
        try:
            silence = await self.silences.create(
                picked.labels,
                created_by=who,
                comment=f"dingpush incident #{picked.number}: {picked.title} (from the chat)",
                duration=duration,
                now=now,
            )
        except AlertmanagerError as exc:
            await self.incidents.record(
                picked.number,
                TimelineEvent(
                    at=now, kind=EventKind.NOTE, who=who, detail=f"silence failed: {exc}"
                ),
            )
            return Answer(f"#{picked.number} was not silenced: {exc}", command, picked)
        detail = f"silence {silence.id} until {_when(silence.ends_at)}"
        incident = await self.incidents.silence(picked.number, who=who, detail=detail, now=now)
        text = f"#{incident.number} silenced for {format_duration(duration)} by {who}"
        await self._tell_others(message, incident, text)
        return Answer(f"{text} (silence {silence.id})", command, incident)

    async def _status(self, message: IncomingMessage, command: Command) -> Answer:
        if not self.scope(message):
            return Answer("No alerts are sent to this chat.", command)
        incidents = await self._listing(message)
        if not incidents:
            return Answer("No open incidents in this chat.", command)
        now = self.clock.time()
        lines = [f"Open incidents ({len(incidents)}):"]
        # The newest STATUS_LINES, titles shortened: a reply DingTalk refuses shows nothing.
        for incident in incidents[-STATUS_LINES:]:
            minutes = max(0.0, now - incident.opened_at) // 60
            age = format_duration(minutes * 60) if minutes else "<1m"
            title = _short(incident.title, TITLE_MAX)
            lines.append(f"- #{incident.number} {title}: {_state(incident)}, {age} old")
        if len(incidents) > STATUS_LINES:
            hidden = len(incidents) - STATUS_LINES
            lines.append(f"… and {hidden} older (the relay's dashboard lists them all)")
        return Answer("\n".join(lines), command)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state(incident: Incident) -> str:
    if incident.state is IncidentState.ACKNOWLEDGED:
        return f"acknowledged by {incident.acknowledged_by}"
    if incident.state is IncidentState.SILENCED:
        who = next(
            (e.who for e in reversed(incident.timeline) if e.kind is EventKind.SILENCED), None
        )
        return f"silenced by {who}" if who else "silenced"
    return str(incident.state)


def _not_open(incident: Incident) -> str:
    """Why an ack changed nothing."""
    if incident.state is IncidentState.ACKNOWLEDGED:
        return f"#{incident.number} was already acknowledged by {incident.acknowledged_by}"
    if incident.state is IncidentState.SILENCED:
        return f"#{incident.number} is silenced already ({_state(incident)})"
    return f"#{incident.number} is resolved already"


class SilenceWatch:
    """Closes silenced incidents whose alerts are gone from Alertmanager.

    Alertmanager mutes every notification of a silenced alert, its resolution included, so a
    silenced incident would stay open forever. Every ``interval`` seconds the watch asks
    Alertmanager whether each silenced incident's alerts are still there; when none is, it
    notes why on the timeline, resolves the incident and tells its targets (``tell``).
    """

    def __init__(
        self,
        incidents: IncidentStore,
        silences: Silences,
        *,
        interval: float = 60.0,
        clock: Clock | None = None,
        tell: typing.Callable[[Incident, str], typing.Awaitable[None]] | None = None,
    ) -> None:
        self.incidents = incidents
        self.silences = silences
        self.interval = interval
        self.clock = clock or SYSTEM_CLOCK
        self.tell = tell

    async def sweep(self) -> list[Incident]:
        """One look: the incidents it resolved."""
        closed = []
        for incident in await self.incidents.list_incidents(states=(IncidentState.SILENCED,)):
            if not incident.labels or await self.silences.firing(incident.labels):
                continue
            now = self.clock.time()
            note = "its alerts resolved while silenced (Alertmanager sends no notification then)"
            await self.incidents.record(
                incident.number, TimelineEvent(at=now, kind=EventKind.NOTE, detail=note)
            )
            done = await self.incidents.resolve(
                route=incident.route, group_key=incident.group_key, now=now
            )
            if done is not None and done.number == incident.number:
                closed.append(done)
                if self.tell is not None:
                    await self.tell(done, f"#{done.number} resolved (while silenced)")
        return closed

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled; a failed sweep is logged."""
        import asyncio

        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except (AlertmanagerError, StoreError) as exc:
                log.warning("checking silenced incidents failed: %s", exc)
