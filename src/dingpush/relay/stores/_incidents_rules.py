"""The incident transitions every incident store applies, as pure functions on snapshots.

Memory, SQLite and PostgreSQL keep incidents differently but must agree on what each operation
does to one (the contract suite checks that). Each store loads the incident inside its own
atomic section (a lock, a transaction, a row lock), applies the function here and writes back
the new snapshot and the events it added.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence

from dingpush.relay._incidents import EventKind, Incident, IncidentState, TimelineEvent

from ._base import check_limit, check_positive

__all__ = [
    "CHAT_PRUNE",
    "Change",
    "ChangesByRule",
    "LivesWithOutbox",
    "acknowledged",
    "advanced",
    "assemble",
    "by_due",
    "check_chat_claim",
    "check_claim",
    "check_listing",
    "matches",
    "new_incident",
    "recorded",
    "resolved",
    "silenced",
    "with_messages",
]

#: A new snapshot and the events appended to its timeline (``None``: nothing changes).
Change = tuple[Incident, tuple[TimelineEvent, ...]] | None


def new_incident(
    number: int,
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
    return Incident(
        number=number,
        route=route,
        group_key=group_key,
        title=title,
        labels=dict(labels),
        policy=policy,
        state=IncidentState.OPEN,
        opened_at=now,
        step=0,
        due_at=due_at if policy is not None else None,
        targets=tuple(dict.fromkeys(targets)),
        timeline=(TimelineEvent(at=now, kind=EventKind.OPENED, detail=title),),
    )


def _with(incident: Incident, events: tuple[TimelineEvent, ...], **changes: object) -> Change:
    return (
        dataclasses.replace(incident, timeline=incident.timeline + events, **changes),  # type: ignore[arg-type]
        events,
    )


def with_messages(incident: Incident, message_ids: Sequence[str]) -> Change:
    added = tuple(m for m in dict.fromkeys(message_ids) if m not in incident.message_ids)
    if not added:
        return None
    return _with(incident, (), message_ids=incident.message_ids + added)


def resolved(incident: Incident, now: float) -> Change:
    if incident.state is IncidentState.RESOLVED:
        return None
    event = TimelineEvent(at=now, kind=EventKind.RESOLVED)
    return _with(incident, (event,), state=IncidentState.RESOLVED, closed_at=now, due_at=None)


def acknowledged(incident: Incident, *, who: str, via: str, now: float) -> Change:
    # Idempotent: the first acker keeps it; a silenced or resolved incident stays as it is.
    if incident.state is not IncidentState.OPEN:
        return None
    event = TimelineEvent(at=now, kind=EventKind.ACKNOWLEDGED, who=who, detail=via)
    return _with(
        incident, (event,), state=IncidentState.ACKNOWLEDGED, acknowledged_by=who, due_at=None
    )


def silenced(incident: Incident, *, who: str, detail: str, now: float) -> Change:
    # A second silence (a longer one, say) is recorded too; a resolved incident stays closed.
    if incident.state is IncidentState.RESOLVED:
        return None
    event = TimelineEvent(at=now, kind=EventKind.SILENCED, who=who, detail=detail)
    return _with(incident, (event,), state=IncidentState.SILENCED, due_at=None)


def recorded(incident: Incident, event: TimelineEvent) -> Change:
    return _with(incident, (event,))


def advanced(
    incident: Incident, *, from_step: int, to_step: int, due_at: float | None, event: TimelineEvent
) -> Change:
    if incident.state is not IncidentState.OPEN or incident.step != from_step:
        return None
    return _with(incident, (event,), step=to_step, due_at=due_at)


def check_claim(lease: float, limit: int) -> None:
    check_positive("lease", lease)
    check_limit(limit)


#: How many expired chat messages one ``claim_chat_message`` drops at most: each claim adds
#: one entry and removes up to this many stale ones, so the table stays near one ttl's worth.
CHAT_PRUNE = 100


def check_chat_claim(key: str, ttl: float) -> None:
    if not key or "\x00" in key:  # PostgreSQL's text cannot hold NUL: refused everywhere
        raise ValueError(
            f"a chat message's key must be a non-empty text without NUL, not {key[:40]!r}"
        )
    check_positive("ttl", ttl)


def check_listing(limit: int) -> None:
    check_limit(limit)


def matches(incident: Incident, states: Sequence[IncidentState], target: str | None) -> bool:
    return (not states or incident.state in states) and (
        target is None or target in incident.targets
    )


def by_due(claimed: Sequence[Incident]) -> list[Incident]:
    """Claimed incidents in the order ``claim_due`` promises: oldest due first, then by number."""
    return sorted(claimed, key=lambda i: (i.due_at or 0.0, i.number))


def assemble(
    numbers: Sequence[int],
    rows: Mapping[int, typing.Any],
    messages: Mapping[int, Sequence[str]],
    events: Mapping[int, Sequence[TimelineEvent]],
    decode: Callable[[typing.Any], tuple[Mapping[str, str], Sequence[str]]],
) -> list[Incident]:
    """The incidents with these numbers, in the order given (those without a row left out).

    ``rows`` are a store's ``incidents`` rows by number; ``decode`` reads a row's labels and
    targets as that store keeps them (JSON text in SQLite, JSONB and an array in PostgreSQL).
    """
    return [
        _from_row(rows[n], decode(rows[n]), messages.get(n, ()), events.get(n, ()))
        for n in numbers
        if n in rows
    ]


def _from_row(
    row: typing.Any,
    decoded: tuple[Mapping[str, str], Sequence[str]],
    messages: Sequence[str],
    events: Sequence[TimelineEvent],
) -> Incident:
    labels, targets = decoded
    return Incident(
        number=row["number"],
        route=row["route"],
        group_key=row["group_key"],
        title=row["title"],
        labels=dict(labels),
        policy=row["policy"],
        state=IncidentState(row["state"]),
        opened_at=row["opened_at"],
        step=row["step"],
        due_at=row["due_at"],
        targets=tuple(targets),
        message_ids=tuple(messages),
        acknowledged_by=row["acknowledged_by"],
        closed_at=row["closed_at"],
        timeline=tuple(events),
    )


class ChangesByRule:
    """The contract's operations that apply one rule to one incident, for the SQL stores.

    A store supplies ``_change``: load the incident inside its atomic section (or raise
    ``IncidentNotFound``), apply the rule and write back what it made.
    """

    async def _change(self, number: int, rule: Callable[[Incident], Change]) -> Incident:
        raise NotImplementedError

    async def attach_messages(self, number: int, message_ids: Sequence[str]) -> Incident:
        ids = list(message_ids)
        return await self._change(number, lambda i: with_messages(i, ids))

    async def acknowledge(self, number: int, *, who: str, via: str, now: float) -> Incident:
        return await self._change(number, lambda i: acknowledged(i, who=who, via=via, now=now))

    async def silence(self, number: int, *, who: str, detail: str, now: float) -> Incident:
        return await self._change(number, lambda i: silenced(i, who=who, detail=detail, now=now))

    async def record(self, number: int, event: TimelineEvent) -> Incident:
        return await self._change(number, lambda i: recorded(i, event))


class _Outbox(typing.Protocol):
    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


class LivesWithOutbox:
    """A SQL incident store kept in its outbox's database, opened and closed with it.

    The outbox opens and closes the connections; these let the store be used on its own in tests.
    """

    _outbox: _Outbox  # each store names its own outbox class

    def __init__(self, outbox: _Outbox) -> None:
        self._outbox = outbox

    async def open(self) -> None:
        await self._outbox.open()

    async def aclose(self) -> None:
        await self._outbox.aclose()

    async def __aenter__(self) -> typing.Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
