"""App access tokens in PostgreSQL, so that a fleet fetches one token per app.

Every relay instance or worker of an app that uses the same DSN and schema reads the token
another one fetched. When none is fresh, the first to look promises to fetch one (a row lock
and a short lease decide who, in one statement); the others wait a moment for it instead of
fetching their own, and fetch themselves only if it does not come (its fetcher died). Like
``FileTokenCache`` it holds access tokens keyed by AppKey, host and a digest of the secret,
never an AppSecret; grant the schema to the relay's database user only.

A database error makes the cache look empty (load) or forgetful (store): it saves requests,
it is never a reason for a send to fail.
"""

from __future__ import annotations

import logging
import time
import typing
import uuid

from dingpush._apps._tokens import AccessToken
from dingpush._engine._clock import SYSTEM_CLOCK, Clock

from ._migrations import POSTGRES_SCHEMA, Migration, Session, require_psycopg

if typing.TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresTokenCache"]

log = logging.getLogger("dingpush")

#: Seconds a promise to fetch a token holds: longer than a token request takes.
FETCH_LEASE = 15.0
_POLL = 0.05

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "access tokens by app, and who is fetching the next one",
        (
            """
            CREATE TABLE access_tokens (
                key            text PRIMARY KEY,
                token          text,
                expires_at     double precision,
                obtained_at    double precision,
                fetching_by    text,
                fetching_until double precision
            )
            """,
        ),
    ),
)

_LOAD = "SELECT token, expires_at, obtained_at FROM access_tokens WHERE key = %(key)s"
# Take the promise to fetch unless another client holds it; no row: someone else is fetching.
_PROMISE = """
INSERT INTO access_tokens AS t (key, fetching_by, fetching_until)
VALUES (%(key)s, %(me)s, %(until)s)
ON CONFLICT (key) DO UPDATE
   SET fetching_by = excluded.fetching_by, fetching_until = excluded.fetching_until
 WHERE t.fetching_until IS NULL OR t.fetching_until <= %(now)s OR t.fetching_by = %(me)s
RETURNING fetching_by
"""
# A newer token never gives way to an older one stored late.
_STORE = """
INSERT INTO access_tokens AS t (key, token, expires_at, obtained_at)
VALUES (%(key)s, %(token)s, %(expires_at)s, %(obtained_at)s)
ON CONFLICT (key) DO UPDATE
   SET token = excluded.token, expires_at = excluded.expires_at,
       obtained_at = excluded.obtained_at, fetching_by = NULL, fetching_until = NULL
 WHERE t.expires_at IS NULL OR excluded.expires_at >= t.expires_at
"""
_DISCARD = "DELETE FROM access_tokens WHERE key = %(key)s"


class PostgresTokenCache:
    """App access tokens in a PostgreSQL schema, shared by every client that uses it.

    Pass it as ``token_cache=`` to ``App``/``AsyncApp`` on every instance of a fleet.

    Args:
        dsn: The database, as ``postgresql://user@host:5432/dbname`` or ``host=… dbname=…``.
        schema: The schema holding the table (created when missing).
        clock: Where wall-clock time comes from (``FakeClock`` in tests); use the clients'.
        wait: Seconds a client waits for a token another one is fetching before fetching
            its own. The wait blocks the calling thread (an async client's event loop too),
            and only happens while another instance is fetching.
        timeout: Seconds to wait for the database.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = POSTGRES_SCHEMA,
        clock: Clock | None = None,
        wait: float = 2.0,
        timeout: float = 5.0,
        application_name: str = "dingpush-tokens",
    ) -> None:
        require_psycopg("PostgresTokenCache")
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._wait = max(float(wait), 0.0)
        self._me = uuid.uuid4().hex
        self._session = Session(
            dsn,
            schema=schema,
            component="tokens",
            steps=MIGRATIONS,
            what="PostgresTokenCache",
            timeout=timeout,
            application_name=application_name,
        )

    @property
    def schema(self) -> str:
        """The schema holding its table(s)."""
        return self._session.schema

    def __repr__(self) -> str:
        return f"PostgresTokenCache({self._session.where})"

    def load(self, key: str) -> AccessToken | None:
        deadline = time.monotonic() + self._wait
        while True:
            token = self._read(key)
            if token is not None and token.fresh(self.clock.time()):
                return token
            if self._promise(key) or time.monotonic() >= deadline:
                return None  # this client fetches (or gives up waiting and fetches)
            time.sleep(_POLL)

    def store(self, key: str, token: AccessToken) -> None:
        params = {
            "key": key,
            "token": token.value,
            "expires_at": token.expires_at,
            "obtained_at": token.obtained_at,
        }
        self._quietly(lambda conn: conn.execute(_STORE, params), None)

    def discard(self, key: str) -> None:
        self._quietly(lambda conn: conn.execute(_DISCARD, {"key": key}), None)

    def close(self) -> None:
        """Close this process's connection (it reopens on the next use)."""
        self._session.close()

    def _read(self, key: str) -> AccessToken | None:
        row = self._quietly(lambda conn: conn.execute(_LOAD, {"key": key}).fetchone(), None)
        if row is None or row[0] is None:
            return None
        return AccessToken(str(row[0]), float(row[1]), float(row[2]))

    def _promise(self, key: str) -> bool:
        """Whether this client is the one to fetch (True too when the database is away)."""
        now = self.clock.time()
        params = {"key": key, "me": self._me, "until": now + FETCH_LEASE, "now": now}
        row = self._quietly(lambda conn: conn.execute(_PROMISE, params).fetchone(), ("",))
        return row is not None

    def _quietly(
        self,
        operation: typing.Callable[[psycopg.Connection[typing.Any]], typing.Any],
        failed: typing.Any,
    ) -> typing.Any:
        import psycopg

        try:
            return self._session.run(operation)
        except psycopg.Error as exc:
            log.warning("the token cache %s cannot be used now: %s", self._session.where, exc)
            return failed
