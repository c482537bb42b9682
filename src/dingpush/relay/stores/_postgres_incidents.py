"""``PostgresIncidentStore``: the on-call loop's incidents in the PostgreSQL outbox's schema.

The tables come with the outbox's schema (version 3, ``_postgres_schema.py``), so a fleet that
shares an outbox shares its incidents. Each change runs in one short transaction that locks the
incident's row (``FOR UPDATE``), applies the shared rule (``_incidents_rules``) and writes back:
two instances acknowledging or advancing one incident take turns, and the second sees the
first's result. :meth:`claim_due` is one ``UPDATE … RETURNING`` over rows picked ``FOR UPDATE
SKIP LOCKED``: an incident another instance is claiming is skipped, never waited for, and one
claimed and committed meanwhile is re-checked on its newest version and dropped (its claim has
not run out), so a due step goes to one instance. :meth:`claim_chat_message` is one upsert on
``chat_messages`` (version 4): of two instances claiming one message, the second waits for the
first's commit and finds its row. ``PostgresStore.incidents`` is the one to use.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from dingpush.relay._incidents import (
    ChatClaim,
    EventKind,
    Incident,
    IncidentState,
    TimelineEvent,
)

from . import _incidents_rules as rules
from ._errors import IncidentNotFound

if typing.TYPE_CHECKING:
    from ._postgres import PostgresStore

__all__ = ["PostgresIncidentStore"]

Conn = AsyncConnection[DictRow]

_LIVE_NUMBER = """
SELECT number FROM incidents
 WHERE route = %(route)s AND group_key = %(group_key)s AND state <> 'resolved'
   FOR UPDATE
"""
_INSERT = """
INSERT INTO incidents (route, group_key, title, labels, policy, state, opened_at, step, due_at,
                       targets)
VALUES (%(route)s, %(group_key)s, %(title)s, %(labels)s, %(policy)s, %(state)s, %(opened_at)s,
        %(step)s, %(due_at)s, %(targets)s)
ON CONFLICT (route, group_key) WHERE state <> 'resolved' DO NOTHING
RETURNING number
"""
# Oldest due first. SKIP LOCKED: a row another instance is claiming or changing is left to it.
# A row claimed and committed since this statement's snapshot is re-checked on its newest
# version (READ COMMITTED) and dropped, because its claim has not run out.
_CLAIM = """
WITH picked AS (
    SELECT number FROM incidents
     WHERE state = 'open' AND due_at <= %(now)s
       AND (claimed_until IS NULL OR claimed_until <= %(now)s)
     ORDER BY due_at, number
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE incidents AS i
   SET holder = %(holder)s, claimed_until = %(until)s
  FROM picked
 WHERE i.number = picked.number
RETURNING i.number
"""
# Expired chat messages, a bounded batch: rows another instance is dropping are left to it.
_CHAT_PRUNE = """
DELETE FROM chat_messages
 WHERE key IN (SELECT key FROM chat_messages WHERE expires_at <= %(now)s
                ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""
# A row of the key that has expired (one the prune left) is taken over as if it were not
# there. A second instance claiming the key meanwhile waits for this transaction, then finds
# the row live (the WHERE is checked on its newest version) and returns nothing.
_CHAT_CLAIM = """
INSERT INTO chat_messages AS c (key, claimed_at, expires_at)
VALUES (%(key)s, %(now)s, %(until)s)
ON CONFLICT (key) DO UPDATE
   SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at, answer = NULL
 WHERE c.expires_at <= %(now)s
RETURNING key
"""
_SAVE = """
UPDATE incidents
   SET state = %(state)s, step = %(step)s, due_at = %(due_at)s,
       acknowledged_by = %(acknowledged_by)s, closed_at = %(closed_at)s,
       holder = CASE WHEN %(release)s THEN NULL ELSE holder END,
       claimed_until = CASE WHEN %(release)s THEN NULL ELSE claimed_until END
 WHERE number = %(number)s
"""
_INSERT_MESSAGES = """
INSERT INTO incident_messages (number, position, message_id)
SELECT %(number)s, %(start)s + m.n - 1, m.id
  FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS m(id, n)
"""
_INSERT_EVENTS = """
INSERT INTO incident_events (number, position, at, kind, who, detail)
SELECT %(number)s, %(start)s + e.n - 1, e.at, e.kind, e.who, e.detail
  FROM unnest(%(at)s::double precision[], %(kind)s::text[], %(who)s::text[],
              %(detail)s::text[]) WITH ORDINALITY AS e(at, kind, who, detail, n)
"""


class PostgresIncidentStore(rules.LivesWithOutbox, rules.ChangesByRule):
    """Incidents in a :class:`PostgresStore`'s schema (``store.incidents``)."""

    _outbox: PostgresStore

    def __repr__(self) -> str:
        return f"PostgresIncidentStore(schema {self.schema!r})"

    @property
    def schema(self) -> str:
        return self._outbox.schema

    async def _change(self, number: int, rule: Callable[[Incident], rules.Change]) -> Incident:
        async def operation(conn: Conn, _: float) -> Incident:
            incident = await _load_locked(conn, number)
            return await _save(conn, incident, rule(incident))

        return await self._outbox._transaction(operation)

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
        made = rules.new_incident(
            0,
            route=route,
            group_key=group_key,
            title=title,
            labels=labels,
            policy=policy,
            targets=targets,
            due_at=due_at,
            now=now,
        )
        key = {"route": route, "group_key": group_key}

        async def operation(conn: Conn, _: float) -> Incident:
            for _attempt in range(3):
                row = await (await conn.execute(_LIVE_NUMBER, key)).fetchone()
                if row is not None:
                    return (await _load(conn, [row["number"]]))[0]
                params = {
                    **key,
                    "title": made.title,
                    "labels": Jsonb(dict(made.labels)),
                    "policy": made.policy,
                    "state": made.state.value,
                    "opened_at": made.opened_at,
                    "step": made.step,
                    "due_at": made.due_at,
                    "targets": list(made.targets),
                }
                row = await (await conn.execute(_INSERT, params)).fetchone()
                if row is not None:
                    await _insert_events(conn, row["number"], 0, made.timeline)
                    return (await _load(conn, [row["number"]]))[0]
                # Another instance opened it between our look and our insert: look again.
            raise AssertionError("the live incident kept vanishing")  # pragma: no cover

        return await self._outbox._transaction(operation)

    async def resolve(self, *, route: str, group_key: str, now: float) -> Incident | None:
        async def operation(conn: Conn, _: float) -> Incident | None:
            row = await (
                await conn.execute(_LIVE_NUMBER, {"route": route, "group_key": group_key})
            ).fetchone()
            if row is None:
                return None
            incident = await _load_locked(conn, row["number"])
            return await _save(conn, incident, rules.resolved(incident, now))

        return await self._outbox._transaction(operation)

    async def get(self, number: int) -> Incident | None:
        async def operation(conn: Conn, _: float) -> Incident | None:
            found = await _load(conn, [number])
            return found[0] if found else None

        return await self._outbox._run(operation)

    async def find_by_message(self, message_id: str) -> Incident | None:
        async def operation(conn: Conn, _: float) -> Incident | None:
            row = await (
                await conn.execute(
                    "SELECT max(number) AS number FROM incident_messages WHERE message_id = %s",
                    (message_id,),
                )
            ).fetchone()
            if row is None or row["number"] is None:
                return None
            return (await _load(conn, [row["number"]]))[0]

        return await self._outbox._run(operation)

    async def list_incidents(
        self, *, states: Sequence[IncidentState] = (), target: str | None = None, limit: int = 100
    ) -> list[Incident]:
        rules.check_listing(limit)
        params = {
            "states": [IncidentState(s).value for s in states] or None,
            "target": target,
            "limit": limit,
        }

        async def operation(conn: Conn, _: float) -> list[Incident]:
            rows = await (
                await conn.execute(
                    "SELECT number FROM incidents"
                    " WHERE (%(states)s::text[] IS NULL OR state = ANY(%(states)s::text[]))"
                    "   AND (%(target)s::text IS NULL OR %(target)s::text = ANY(targets))"
                    " ORDER BY number DESC LIMIT %(limit)s",
                    params,
                )
            ).fetchall()
            return await _load(conn, [r["number"] for r in rows])

        return await self._outbox._run(operation)

    async def claim_due(
        self, *, now: float, holder: str, lease: float, limit: int = 50
    ) -> list[Incident]:
        rules.check_claim(lease, limit)
        params = {"now": now, "holder": holder, "until": now + lease, "limit": limit}

        async def operation(conn: Conn, _: float) -> list[Incident]:
            rows = await (await conn.execute(_CLAIM, params)).fetchall()
            return rules.by_due(await _load(conn, [r["number"] for r in rows]))

        return await self._outbox._run(operation)

    async def advance(
        self,
        number: int,
        *,
        from_step: int,
        to_step: int,
        due_at: float | None,
        event: TimelineEvent,
    ) -> Incident | None:
        async def operation(conn: Conn, _: float) -> Incident | None:
            incident = await _load_locked(conn, number)
            change = rules.advanced(
                incident, from_step=from_step, to_step=to_step, due_at=due_at, event=event
            )
            if change is None:
                return None
            return await _save(conn, incident, change, release=True)

        return await self._outbox._transaction(operation)

    async def claim_chat_message(self, key: str, *, now: float, ttl: float) -> ChatClaim:
        rules.check_chat_claim(key, ttl)
        params = {"key": key, "now": now, "until": now + ttl, "limit": rules.CHAT_PRUNE}

        async def operation(conn: Conn, _: float) -> ChatClaim:
            await conn.execute(_CHAT_PRUNE, params)
            if await (await conn.execute(_CHAT_CLAIM, params)).fetchone() is not None:
                return ChatClaim(first=True)
            row = await (
                await conn.execute("SELECT answer FROM chat_messages WHERE key = %(key)s", params)
            ).fetchone()
            return ChatClaim(first=False, answer=None if row is None else row["answer"])

        return await self._outbox._transaction(operation)

    async def answer_chat_message(self, key: str, answer: str | None) -> None:
        async def operation(conn: Conn, _: float) -> None:
            if answer is None:
                await conn.execute(
                    "DELETE FROM chat_messages WHERE key = %s AND answer IS NULL", (key,)
                )
            else:
                await conn.execute(
                    "UPDATE chat_messages SET answer = %s WHERE key = %s AND answer IS NULL",
                    (answer, key),
                )

        await self._outbox._transaction(operation)


# -- rows -------------------------------------------------------------------------------------


async def _load_locked(conn: Conn, number: int) -> Incident:
    row = await (
        await conn.execute("SELECT number FROM incidents WHERE number = %s FOR UPDATE", (number,))
    ).fetchone()
    if row is None:
        raise IncidentNotFound(number)
    return (await _load(conn, [number]))[0]


async def _load(conn: Conn, numbers: Sequence[int]) -> list[Incident]:
    """The incidents with these numbers, in the order given (unknown ones left out)."""
    if not numbers:
        return []
    wanted = {"numbers": list(numbers)}
    rows = {
        r["number"]: r
        for r in await (
            await conn.execute("SELECT * FROM incidents WHERE number = ANY(%(numbers)s)", wanted)
        ).fetchall()
    }
    messages: dict[int, list[str]] = {}
    for r in await (
        await conn.execute(
            "SELECT number, message_id FROM incident_messages WHERE number = ANY(%(numbers)s)"
            " ORDER BY number, position",
            wanted,
        )
    ).fetchall():
        messages.setdefault(r["number"], []).append(r["message_id"])
    events: dict[int, list[TimelineEvent]] = {}
    for r in await (
        await conn.execute(
            "SELECT number, at, kind, who, detail FROM incident_events"
            " WHERE number = ANY(%(numbers)s) ORDER BY number, position",
            wanted,
        )
    ).fetchall():
        events.setdefault(r["number"], []).append(
            TimelineEvent(at=r["at"], kind=EventKind(r["kind"]), who=r["who"], detail=r["detail"])
        )
    return rules.assemble(numbers, rows, messages, events, _decode)


def _decode(row: DictRow) -> tuple[dict[str, str], list[str]]:
    return row["labels"], row["targets"]


async def _save(
    conn: Conn, before: Incident, change: rules.Change, *, release: bool = False
) -> Incident:
    if change is None:
        return before
    after, events = change
    await conn.execute(
        _SAVE,
        {
            "number": after.number,
            "state": after.state.value,
            "step": after.step,
            "due_at": after.due_at,
            "acknowledged_by": after.acknowledged_by,
            "closed_at": after.closed_at,
            "release": release or not after.state.escalates,
        },
    )
    added = list(after.message_ids[len(before.message_ids) :])
    if added:
        await conn.execute(
            _INSERT_MESSAGES,
            {"number": after.number, "start": len(before.message_ids), "ids": added},
        )
    await _insert_events(conn, after.number, len(before.timeline), events)
    return after


async def _insert_events(
    conn: Conn, number: int, start: int, events: Sequence[TimelineEvent]
) -> None:
    if not events:
        return
    await conn.execute(
        _INSERT_EVENTS,
        {
            "number": number,
            "start": start,
            "at": [e.at for e in events],
            "kind": [EventKind(e.kind).value for e in events],
            "who": [e.who for e in events],
            "detail": [e.detail for e in events],
        },
    )
