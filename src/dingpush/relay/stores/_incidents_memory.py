"""``MemoryIncidentStore``: incidents in a dict, for tests and a single relay without a disk.

It keeps the whole :class:`~dingpush.relay._incidents.IncidentStore` contract (the suite in
``tests/relay/test_incidents_contract.py`` runs against it as against SQLite and PostgreSQL)
except durability. Every operation runs under one lock and never awaits, so each is atomic.
"""

from __future__ import annotations

import itertools
import threading
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dingpush.relay._incidents import ChatClaim, Incident, IncidentState, TimelineEvent

from . import _incidents_rules as rules
from ._errors import IncidentNotFound, StoreUnavailable

__all__ = ["MemoryIncidentStore"]

R = typing.TypeVar("R")


@dataclass(slots=True)
class _Slot:
    incident: Incident
    holder: str | None = None
    claimed_until: float | None = None


class MemoryIncidentStore:
    """An in-memory incident store with the full contract, minus durability."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot] = {}
        self._open: dict[tuple[str, str], int] = {}
        self._by_message: dict[str, int] = {}
        self._numbers = itertools.count(1)
        #: Chat messages claimed: key -> (expires at, answer), oldest claim first.
        self._chat: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryIncidentStore(<{len(self._slots)} incidents>)"

    async def open(self) -> None:
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> typing.Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _run(self, operation: Callable[[], R]) -> R:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the incident store is closed")
            return operation()

    def _slot(self, number: int) -> _Slot:
        try:
            return self._slots[number]
        except KeyError:
            raise IncidentNotFound(number) from None

    def _apply(self, slot: _Slot, change: rules.Change) -> Incident:
        if change is not None:
            for message_id in change[0].message_ids[len(slot.incident.message_ids) :]:
                self._by_message[message_id] = slot.incident.number
            slot.incident = change[0]
            if not slot.incident.state.escalates:
                slot.holder = slot.claimed_until = None
            if slot.incident.state is IncidentState.RESOLVED:
                self._open.pop(slot.incident.key, None)
        return slot.incident

    # -- the contract ---------------------------------------------------------------------------

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
        def operation() -> Incident:
            number = self._open.get((route, group_key))
            if number is not None:
                return self._slots[number].incident
            incident = rules.new_incident(
                next(self._numbers),
                route=route,
                group_key=group_key,
                title=title,
                labels=labels,
                policy=policy,
                targets=targets,
                due_at=due_at,
                now=now,
            )
            self._slots[incident.number] = _Slot(incident)
            self._open[incident.key] = incident.number
            return incident

        return self._run(operation)

    async def attach_messages(self, number: int, message_ids: Sequence[str]) -> Incident:
        def operation() -> Incident:
            slot = self._slot(number)
            return self._apply(slot, rules.with_messages(slot.incident, message_ids))

        return self._run(operation)

    async def resolve(self, *, route: str, group_key: str, now: float) -> Incident | None:
        def operation() -> Incident | None:
            number = self._open.get((route, group_key))
            if number is None:
                return None
            slot = self._slots[number]
            return self._apply(slot, rules.resolved(slot.incident, now))

        return self._run(operation)

    async def acknowledge(self, number: int, *, who: str, via: str, now: float) -> Incident:
        def operation() -> Incident:
            slot = self._slot(number)
            return self._apply(slot, rules.acknowledged(slot.incident, who=who, via=via, now=now))

        return self._run(operation)

    async def silence(self, number: int, *, who: str, detail: str, now: float) -> Incident:
        def operation() -> Incident:
            slot = self._slot(number)
            change = rules.silenced(slot.incident, who=who, detail=detail, now=now)
            return self._apply(slot, change)

        return self._run(operation)

    async def record(self, number: int, event: TimelineEvent) -> Incident:
        def operation() -> Incident:
            slot = self._slot(number)
            return self._apply(slot, rules.recorded(slot.incident, event))

        return self._run(operation)

    async def get(self, number: int) -> Incident | None:
        def operation() -> Incident | None:
            slot = self._slots.get(number)
            return slot.incident if slot is not None else None

        return self._run(operation)

    async def find_by_message(self, message_id: str) -> Incident | None:
        def operation() -> Incident | None:
            number = self._by_message.get(message_id)
            return self._slots[number].incident if number is not None else None

        return self._run(operation)

    async def list_incidents(
        self, *, states: Sequence[IncidentState] = (), target: str | None = None, limit: int = 100
    ) -> list[Incident]:
        rules.check_listing(limit)

        def operation() -> list[Incident]:
            chosen = [
                s.incident
                for s in self._slots.values()
                if rules.matches(s.incident, states, target)
            ]
            return sorted(chosen, key=lambda i: i.number, reverse=True)[:limit]

        return self._run(operation)

    async def claim_due(
        self, *, now: float, holder: str, lease: float, limit: int = 50
    ) -> list[Incident]:
        rules.check_claim(lease, limit)

        def operation() -> list[Incident]:
            due = sorted(
                (
                    s
                    for s in self._slots.values()
                    if s.incident.state.escalates
                    and s.incident.due_at is not None
                    and s.incident.due_at <= now
                    and (s.claimed_until is None or s.claimed_until <= now)
                ),
                key=lambda s: (typing.cast(float, s.incident.due_at), s.incident.number),
            )[:limit]
            for slot in due:
                slot.holder, slot.claimed_until = holder, now + lease
            return [slot.incident for slot in due]

        return self._run(operation)

    async def advance(
        self,
        number: int,
        *,
        from_step: int,
        to_step: int,
        due_at: float | None,
        event: TimelineEvent,
    ) -> Incident | None:
        def operation() -> Incident | None:
            slot = self._slot(number)
            change = rules.advanced(
                slot.incident, from_step=from_step, to_step=to_step, due_at=due_at, event=event
            )
            if change is None:
                return None
            slot.holder = slot.claimed_until = None
            return self._apply(slot, change)

        return self._run(operation)

    async def claim_chat_message(self, key: str, *, now: float, ttl: float) -> ChatClaim:
        rules.check_chat_claim(key, ttl)

        def operation() -> ChatClaim:
            # Claims are kept in claim order with one ttl, so the expired ones come first.
            for _ in range(rules.CHAT_PRUNE):
                oldest = next(iter(self._chat.items()), None)
                if oldest is None or oldest[1][0] > now:
                    break
                del self._chat[oldest[0]]
            found = self._chat.get(key)
            if found is not None and found[0] > now:
                return ChatClaim(first=False, answer=found[1])
            self._chat.pop(key, None)
            self._chat[key] = (now + ttl, None)
            return ChatClaim(first=True)

        return self._run(operation)

    async def answer_chat_message(self, key: str, answer: str | None) -> None:
        def operation() -> None:
            found = self._chat.get(key)
            if found is None or found[1] is not None:
                return
            if answer is None:
                del self._chat[key]
            else:
                self._chat[key] = (found[0], answer)

        self._run(operation)
