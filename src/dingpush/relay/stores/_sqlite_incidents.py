"""``SQLiteIncidentStore``: the on-call loop's incidents in the SQLite outbox's own file.

The tables (``incidents``, ``incident_messages``, ``incident_events``) come with the outbox's
schema (version 3, ``_sqlite_schema.py``; ``chat_messages``, the chat messages the relay acted
on, with version 4). Writes go through the outbox's writer thread, which runs one operation at a
time inside its own savepoint: an operation reads the incident, applies the shared rule
(``_incidents_rules``) and writes back, with nobody in between. Reads use the outbox's reader
connections. ``SQLiteStore.incidents`` is the one to use; it lives and closes with its outbox.
"""

from __future__ import annotations

import json
import sqlite3
import typing
from collections.abc import Mapping, Sequence

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
    from ._sqlite import SQLiteStore

__all__ = ["SQLiteIncidentStore"]

_LIVE = "state <> 'resolved'"


class SQLiteIncidentStore(rules.LivesWithOutbox, rules.ChangesByRule):
    """Incidents in an :class:`SQLiteStore`'s file (``store.incidents``)."""

    _outbox: SQLiteStore

    def __repr__(self) -> str:
        return f"SQLiteIncidentStore({str(self._outbox.path)!r})"

    async def _change(
        self, number: int, rule: typing.Callable[[Incident], rules.Change]
    ) -> Incident:
        def operation(conn: sqlite3.Connection, now: float) -> Incident:
            incident = load(conn, number)
            if incident is None:
                raise IncidentNotFound(number)
            return save(conn, incident, rule(incident))

        return await self._outbox._write(operation)

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
        def operation(conn: sqlite3.Connection, _: float) -> Incident:
            row = conn.execute(
                f"SELECT number FROM incidents WHERE route = ? AND group_key = ? AND {_LIVE}",
                (route, group_key),
            ).fetchone()
            if row is not None:
                return typing.cast(Incident, load(conn, row[0]))
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
            number = conn.execute(
                "INSERT INTO incidents (route, group_key, title, labels, policy, state, "
                "opened_at, step, due_at, targets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING number",
                (
                    route,
                    group_key,
                    made.title,
                    _json(dict(made.labels)),
                    made.policy,
                    made.state.value,
                    made.opened_at,
                    made.step,
                    made.due_at,
                    _json(list(made.targets)),
                ),
            ).fetchone()[0]
            _insert_events(conn, number, 0, made.timeline)
            return typing.cast(Incident, load(conn, number))

        return await self._outbox._write(operation)

    async def resolve(self, *, route: str, group_key: str, now: float) -> Incident | None:
        def operation(conn: sqlite3.Connection, _: float) -> Incident | None:
            row = conn.execute(
                f"SELECT number FROM incidents WHERE route = ? AND group_key = ? AND {_LIVE}",
                (route, group_key),
            ).fetchone()
            if row is None:
                return None
            incident = typing.cast(Incident, load(conn, row[0]))
            return save(conn, incident, rules.resolved(incident, now))

        return await self._outbox._write(operation)

    async def get(self, number: int) -> Incident | None:
        return await self._outbox._read(lambda conn: load(conn, number))

    async def find_by_message(self, message_id: str) -> Incident | None:
        def operation(conn: sqlite3.Connection) -> Incident | None:
            row = conn.execute(
                "SELECT max(number) FROM incident_messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            return load(conn, row[0]) if row[0] is not None else None

        return await self._outbox._read(operation)

    async def list_incidents(
        self, *, states: Sequence[IncidentState] = (), target: str | None = None, limit: int = 100
    ) -> list[Incident]:
        rules.check_listing(limit)
        where: list[str] = ["1"]
        params: list[object] = []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(IncidentState(s).value for s in states)
        if target is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(targets) WHERE value = ?)")
            params.append(target)
        query = (
            f"SELECT number FROM incidents WHERE {' AND '.join(where)} ORDER BY number DESC LIMIT ?"
        )

        def operation(conn: sqlite3.Connection) -> list[Incident]:
            numbers = [r[0] for r in conn.execute(query, (*params, limit))]
            return load_many(conn, numbers)

        return await self._outbox._read(operation)

    async def claim_due(
        self, *, now: float, holder: str, lease: float, limit: int = 50
    ) -> list[Incident]:
        rules.check_claim(lease, limit)

        def operation(conn: sqlite3.Connection, _: float) -> list[Incident]:
            numbers = [
                r[0]
                for r in conn.execute(
                    "UPDATE incidents SET holder = ?, claimed_until = ? WHERE number IN ("
                    "  SELECT number FROM incidents WHERE state = 'open' AND due_at <= ?"
                    "     AND (claimed_until IS NULL OR claimed_until <= ?)"
                    "   ORDER BY due_at, number LIMIT ?"
                    ") RETURNING number",
                    (holder, now + lease, now, now, limit),
                )
            ]
            return rules.by_due(load_many(conn, numbers))

        return await self._outbox._write(operation)

    async def advance(
        self,
        number: int,
        *,
        from_step: int,
        to_step: int,
        due_at: float | None,
        event: TimelineEvent,
    ) -> Incident | None:
        def operation(conn: sqlite3.Connection, _: float) -> Incident | None:
            incident = load(conn, number)
            if incident is None:
                raise IncidentNotFound(number)
            change = rules.advanced(
                incident, from_step=from_step, to_step=to_step, due_at=due_at, event=event
            )
            if change is None:
                return None
            conn.execute(
                "UPDATE incidents SET holder = NULL, claimed_until = NULL WHERE number = ?",
                (number,),
            )
            return save(conn, incident, change)

        return await self._outbox._write(operation)

    async def claim_chat_message(self, key: str, *, now: float, ttl: float) -> ChatClaim:
        rules.check_chat_claim(key, ttl)

        def operation(conn: sqlite3.Connection, _: float) -> ChatClaim:
            conn.execute(
                "DELETE FROM chat_messages WHERE key IN (SELECT key FROM chat_messages"
                " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, rules.CHAT_PRUNE),
            )
            # A row still here after the prune may have expired too (beyond the prune's
            # limit): take it over then, as if it were not there.
            taken = conn.execute(
                "INSERT INTO chat_messages (key, claimed_at, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at,"
                " expires_at = excluded.expires_at, answer = NULL"
                " WHERE chat_messages.expires_at <= ? RETURNING key",
                (key, now, now + ttl, now),
            ).fetchone()
            if taken is not None:
                return ChatClaim(first=True)
            row = conn.execute("SELECT answer FROM chat_messages WHERE key = ?", (key,)).fetchone()
            return ChatClaim(first=False, answer=row[0])

        return await self._outbox._write(operation)

    async def answer_chat_message(self, key: str, answer: str | None) -> None:
        def operation(conn: sqlite3.Connection, _: float) -> None:
            if answer is None:
                conn.execute("DELETE FROM chat_messages WHERE key = ? AND answer IS NULL", (key,))
            else:
                conn.execute(
                    "UPDATE chat_messages SET answer = ? WHERE key = ? AND answer IS NULL",
                    (answer, key),
                )

        await self._outbox._write(operation)


# -- rows -------------------------------------------------------------------------------------


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def load(conn: sqlite3.Connection, number: int) -> Incident | None:
    found = load_many(conn, [number])
    return found[0] if found else None


def load_many(conn: sqlite3.Connection, numbers: Sequence[int]) -> list[Incident]:
    """The incidents with these numbers, in the order given (unknown ones left out)."""
    if not numbers:
        return []
    marks = ", ".join("?" * len(numbers))
    rows = {
        r["number"]: r
        for r in conn.execute(f"SELECT * FROM incidents WHERE number IN ({marks})", numbers)
    }
    messages: dict[int, list[str]] = {}
    for r in conn.execute(
        f"SELECT number, message_id FROM incident_messages WHERE number IN ({marks}) "
        "ORDER BY number, position",
        numbers,
    ):
        messages.setdefault(r[0], []).append(r[1])
    events: dict[int, list[TimelineEvent]] = {}
    for r in conn.execute(
        f"SELECT number, at, kind, who, detail FROM incident_events WHERE number IN ({marks}) "
        "ORDER BY number, position",
        numbers,
    ):
        events.setdefault(r[0], []).append(
            TimelineEvent(at=r[1], kind=EventKind(r[2]), who=r[3], detail=r[4])
        )
    return rules.assemble(numbers, rows, messages, events, _decode)


def _decode(row: sqlite3.Row) -> tuple[dict[str, str], list[str]]:
    return json.loads(row["labels"]), json.loads(row["targets"])


def save(conn: sqlite3.Connection, before: Incident, change: rules.Change) -> Incident:
    """Write what ``change`` made of ``before``; ``before`` itself when nothing changed."""
    if change is None:
        return before
    after, events = change
    released = "" if after.state.escalates else ", holder = NULL, claimed_until = NULL"
    conn.execute(
        "UPDATE incidents SET state = ?, step = ?, due_at = ?, acknowledged_by = ?, "
        f"closed_at = ?{released} WHERE number = ?",
        (
            after.state.value,
            after.step,
            after.due_at,
            after.acknowledged_by,
            after.closed_at,
            after.number,
        ),
    )
    added = after.message_ids[len(before.message_ids) :]
    conn.executemany(
        "INSERT INTO incident_messages (number, position, message_id) VALUES (?, ?, ?)",
        [(after.number, len(before.message_ids) + i, m) for i, m in enumerate(added)],
    )
    _insert_events(conn, after.number, len(before.timeline), events)
    return after


def _insert_events(
    conn: sqlite3.Connection, number: int, start: int, events: Sequence[TimelineEvent]
) -> None:
    conn.executemany(
        "INSERT INTO incident_events (number, position, at, kind, who, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (number, start + i, e.at, EventKind(e.kind).value, e.who, e.detail)
            for i, e in enumerate(events)
        ],
    )
