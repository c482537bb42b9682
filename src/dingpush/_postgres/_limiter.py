"""A rate limiter whose send logs live in PostgreSQL: one budget per robot for a whole fleet.

Several relay instances, or workers on many machines, posting through one robot must stay
under DingTalk's 20 messages a minute together: two instances each keeping their own budget
trip the robot's 10-minute throttle. ``PostgresRateLimiter`` keeps the same sliding-window log
as ``MemoryRateLimiter`` (see ``_limiter.py``) in two tables, and each reservation is one
statement: a call of the ``rate_reserve`` function, which locks the robot's row (so the fleet's
reservations for one robot take turns, and other robots' go on), drops the stamps the window has
passed, and either records the slot or answers how long to wait. Cool-downs after a throttle
are a column of the same row, so every instance rests the robot.

Time comes from the database's clock, so the fleet's machines need not agree on the time to
the second (a slot freed one second early can cost a 10-minute throttle); tests inject a clock.
Like ``FileRateLimiter`` it is synchronous, a round trip per call, and serves the sync and async
clients alike.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable

from dingpush._engine._clock import Clock
from dingpush._engine._limiter import Rate, Reservation, check_weight
from dingpush._errors import LimiterUnavailable

from ._migrations import POSTGRES_SCHEMA, Migration, Session, require_psycopg

if typing.TYPE_CHECKING:
    import psycopg

__all__ = ["LimiterUnavailable", "PostgresRateLimiter"]

log = logging.getLogger("dingpush")

R = typing.TypeVar("R")

#: Seconds a reservation may stay in flight before it counts as sent at the end of its lease:
#: a process killed mid-send must not hold a slot forever (as in ``FileRateLimiter``).
LEASE = 120.0

_NOW = "coalesce(%(now)s::double precision, extract(epoch FROM clock_timestamp()))"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "per-key send logs and cool-downs, and the reservation function",
        (
            """
            CREATE TABLE rate_keys (
                key        text PRIMARY KEY,
                cool_until double precision
            )
            """,
            # stamp: when the answer came back, or while pending the end of the slot's lease.
            """
            CREATE TABLE rate_slots (
                id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key     text NOT NULL,
                stamp   double precision NOT NULL,
                weight  integer NOT NULL,
                pending boolean NOT NULL
            )
            """,
            "CREATE INDEX rate_slots_key ON rate_slots (key, stamp)",
            # One call = one reservation, atomic. p_take false only answers the wait (delay()).
            # A slot in flight counts as sent now (its slot frees a window from now at best);
            # one whose lease ran out counts as sent at the end of its lease.
            """
            CREATE FUNCTION rate_reserve(
                p_key text, p_limit integer, p_window double precision, p_weight integer,
                p_take boolean, p_now double precision, p_lease double precision)
            RETURNS TABLE (slot bigint, wait double precision)
            LANGUAGE plpgsql
            SET search_path FROM CURRENT
            AS $$
            DECLARE
                v_now  double precision := coalesce(p_now, extract(epoch FROM clock_timestamp()));
                v_cool double precision;
                v_used bigint;
                v_free double precision := 0;
            BEGIN
                IF p_take THEN
                    -- The fleet's reservations for this key take turns on its row's lock,
                    -- held until this statement commits; each statement after it sees the
                    -- slots the previous holder committed.
                    INSERT INTO rate_keys (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
                    SELECT cool_until INTO v_cool FROM rate_keys WHERE key = p_key FOR UPDATE;
                    DELETE FROM rate_slots WHERE key = p_key AND stamp + p_window <= v_now;
                ELSE
                    SELECT cool_until INTO v_cool FROM rate_keys WHERE key = p_key;
                END IF;
                SELECT coalesce(sum(weight), 0) INTO v_used
                  FROM rate_slots WHERE key = p_key AND stamp + p_window > v_now;
                IF v_used + p_weight > p_limit THEN
                    -- The moment enough slots free: the earliest stamp by which the slots
                    -- freed add up to what is missing.
                    SELECT s.at + p_window - v_now INTO v_free
                      FROM (SELECT live.at,
                                   sum(live.weight) OVER (ORDER BY live.at, live.id) AS upto
                              FROM (SELECT id, weight,
                                           CASE WHEN pending AND stamp > v_now THEN v_now
                                                ELSE stamp END AS at
                                      FROM rate_slots
                                     WHERE key = p_key AND stamp + p_window > v_now) AS live
                           ) AS s
                     WHERE s.upto >= v_used + p_weight - p_limit
                     ORDER BY s.upto
                     LIMIT 1;
                END IF;
                wait := greatest(v_free, coalesce(v_cool, v_now) - v_now, 0);
                slot := NULL;
                IF p_take AND wait = 0 THEN
                    INSERT INTO rate_slots (key, stamp, weight, pending)
                    VALUES (p_key, v_now + p_lease, p_weight, true)
                    RETURNING id INTO slot;
                END IF;
                RETURN NEXT;
            END
            $$
            """,
        ),
    ),
)

_RESERVE = (
    "SELECT slot, wait FROM rate_reserve("
    "%(key)s, %(limit)s, %(window)s, %(weight)s, %(take)s, %(now)s, %(lease)s)"
)
_COMPLETE = (
    f"UPDATE rate_slots SET stamp = {_NOW} + %(extra)s, pending = false"
    " WHERE id = %(slot)s AND pending"
)
_COOL = (
    f"INSERT INTO rate_keys (key, cool_until) VALUES (%(key)s, {_NOW} + %(seconds)s)"
    " ON CONFLICT (key) DO UPDATE"
    " SET cool_until = greatest(rate_keys.cool_until, excluded.cool_until)"
)
_COOLING = f"SELECT greatest(cool_until - {_NOW}, 0) FROM rate_keys WHERE key = %(key)s"


class _PostgresReservation:
    __slots__ = ("_done", "_limiter", "_slot")

    def __init__(self, limiter: PostgresRateLimiter, slot: int) -> None:
        self._limiter = limiter
        self._slot = slot
        self._done = False

    def complete(self, extra: float = 0.0) -> None:
        if self._done:
            return
        self._done = True
        self._limiter._complete(self._slot, extra)


class PostgresRateLimiter:
    """Per-robot send logs in a PostgreSQL schema, shared by every process that uses it.

    Give every client of a fleet the same DSN and schema (the relay instances, workers on
    other machines), and they share each robot's 20 messages a minute and its cool-downs.

    Args:
        dsn: The database, as ``postgresql://user@host:5432/dbname`` or ``host=… dbname=…``.
        schema: The schema holding the limiter's tables (created when missing).
        clock: Where time comes from; by default the database's clock, one for the whole
            fleet. Tests inject ``dingpush.testing.FakeClock``.
        timeout: Seconds to wait for the database (connecting, a busy robot's row) before
            :class:`LimiterUnavailable`.
        application_name: How its session shows in ``pg_stat_activity``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = POSTGRES_SCHEMA,
        clock: Clock | None = None,
        timeout: float = 5.0,
        application_name: str = "dingpush-limiter",
    ) -> None:
        require_psycopg("PostgresRateLimiter")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.clock = clock
        self._session = Session(
            dsn,
            schema=schema,
            component="ratelimit",
            steps=MIGRATIONS,
            what="PostgresRateLimiter",
            timeout=timeout,
            application_name=application_name,
        )

    @property
    def schema(self) -> str:
        """The schema holding its table(s)."""
        return self._session.schema

    def __repr__(self) -> str:
        return f"PostgresRateLimiter({self._session.where})"

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        check_weight(weight, rate)
        slot, wait = self._reserve(key, rate, weight, take=True)
        return wait if slot is None else _PostgresReservation(self, slot)

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        check_weight(weight, rate)
        return self._reserve(key, rate, weight, take=False)[1]

    def cool_down(self, key: str, seconds: float) -> None:
        # Best effort: failing here would hide DingTalk's throttle behind a database error.
        # Reservations need the database too, so the robot rests while it is unreachable.
        params = {"key": key, "seconds": float(seconds), "now": self._now()}
        try:
            self._call(lambda conn: conn.execute(_COOL, params))
        except LimiterUnavailable as exc:
            log.warning("could not record the cool-down of a robot: %s", exc)

    def cooldown_left(self, key: str) -> float:
        params = {"key": key, "now": self._now()}
        row = self._call(lambda conn: conn.execute(_COOLING, params).fetchone())
        return 0.0 if row is None or row[0] is None else float(row[0])

    def close(self) -> None:
        """Close this process's connection (it reopens on the next use)."""
        self._session.close()

    def _now(self) -> float | None:
        return None if self.clock is None else self.clock.time()

    def _reserve(
        self, key: str, rate: Rate, weight: int, *, take: bool
    ) -> tuple[int | None, float]:
        params = {
            "key": key,
            "limit": rate.limit,
            "window": float(rate.window),
            "weight": weight,
            "take": take,
            "now": self._now(),
            "lease": LEASE,
        }
        row = self._call(lambda conn: conn.execute(_RESERVE, params).fetchone())
        assert row is not None
        return row[0], float(row[1])

    def _complete(self, slot: int, extra: float) -> None:
        # Never raises: the send is done; a slot left pending counts until its lease ends.
        params = {"slot": slot, "extra": max(float(extra), 0.0), "now": self._now()}
        try:
            self._call(lambda conn: conn.execute(_COMPLETE, params))
        except LimiterUnavailable as exc:
            log.warning("could not stamp a sent message's slot (it expires by itself): %s", exc)

    def _call(self, operation: Callable[[psycopg.Connection[typing.Any]], R]) -> R:
        import psycopg

        try:
            return self._session.run(operation)
        except psycopg.Error as exc:
            raise LimiterUnavailable(
                f"the rate limiter's database {self._session.where} cannot be used now "
                f"({_first_line(exc)}): nothing was sent; check that PostgreSQL is up"
            ) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
