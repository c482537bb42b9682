"""What relay instances on one PostgreSQL database share: the outbox, the budgets, the tokens.

``[relay] store = "postgresql://…"`` makes a relay one instance of a fleet. From the one URL
and schema this module builds, for that instance:

- the outbox, :class:`~dingpush.relay.stores.PostgresStore` (one queue for every instance);
- the robots' budgets, :class:`dingpush.PostgresRateLimiter` (a robot's 20 messages a
  minute shared by all instances; a cool-down after a throttle reply rests it everywhere);
- the apps' tokens, :class:`dingpush.PostgresTokenCache` (one token fetch per app for the
  fleet).

A path, ``sqlite:PATH`` or ``memory`` keeps the single-machine relay: its own limiter in
memory and the apps' token files. The URL's password is a secret like any other: the relay's
redactor masks it, and reprs and messages name only ``host:port/dbname``.
"""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass

from dingpush import Clock, ConfigError, LimiterUnavailable, Rate, RateLimiter, Reservation

if typing.TYPE_CHECKING:
    from dingpush import PostgresRateLimiter, PostgresTokenCache

    from ._leases import TargetLeases
    from .stores import PostgresStore

__all__ = ["Fleet", "GuardedLimiter", "StoreChoice", "is_postgres_url"]

log = logging.getLogger("dingpush.relay")

#: Seconds the relay stops asking an unreachable limiter database: its calls are synchronous,
#: and each could hold the event loop (every request, every target) up to its timeout.
LIMITER_REST = 1.0

_SCHEMES = ("postgresql://", "postgres://")
#: Settings that only a PostgreSQL store reads.
POSTGRES_ONLY = ("pool_size", "statement_timeout", "schema")


def is_postgres_url(value: str) -> bool:
    """Whether ``[relay] store`` (or ``--store``) names a PostgreSQL database."""
    return value.strip().lower().startswith(_SCHEMES)


def dsn_password(dsn: str) -> str | None:
    """The password written in a DSN (URL or ``key=value``), for the redactor; None without."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(dsn).get("password")
    except ProgrammingError:
        return None
    return str(password) if password else None


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """``[relay] store`` and the settings of a PostgreSQL store, as read from the file."""

    store: str | None = None
    pool_size: int | None = None
    statement_timeout: float | None = None
    schema: str | None = None

    @property
    def postgres(self) -> bool:
        return self.store is not None and is_postgres_url(self.store)

    def misplaced(self) -> list[str]:
        """The PostgreSQL-only settings given for a store that is not PostgreSQL."""
        if self.postgres:
            return []
        return [name for name in POSTGRES_ONLY if getattr(self, name) is not None]


class GuardedLimiter:
    """``PostgresRateLimiter`` as a relay's event loop can bear it when the database is away.

    Its calls are synchronous round trips. After one fails (``LimiterUnavailable``), calls for
    the next ``LIMITER_REST`` seconds fail at once, without a round trip: the loop keeps
    answering requests (503s, ``/readyz``) instead of waiting out a connect timeout per call.
    ``cooldown_left`` answers 0.0 meanwhile (a view); ``reserve``/``delay`` raise, so the
    dispatcher pauses and nothing is sent.
    """

    def __init__(self, limiter: RateLimiter, *, rest: float = LIMITER_REST) -> None:
        self.limiter = limiter
        self._rest = rest
        self._down_until = 0.0
        self._why = ""

    def __repr__(self) -> str:
        return f"GuardedLimiter({self.limiter!r})"

    def _check(self) -> None:
        if time.monotonic() < self._down_until:
            raise LimiterUnavailable(self._why)

    def _failed(self, exc: LimiterUnavailable) -> None:
        self._down_until = time.monotonic() + self._rest
        self._why = str(exc)

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        self._check()
        try:
            return self.limiter.reserve(key, rate, weight)
        except LimiterUnavailable as exc:
            self._failed(exc)
            raise

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        self._check()
        try:
            return self.limiter.delay(key, rate, weight)
        except LimiterUnavailable as exc:
            self._failed(exc)
            raise

    def cool_down(self, key: str, seconds: float) -> None:
        if time.monotonic() < self._down_until:  # the database is away: do not wait for it
            log.warning("could not record the cool-down of a robot: %s", self._why)
            return
        self.limiter.cool_down(key, seconds)  # best effort: it logs what it cannot record

    def cooldown_left(self, key: str) -> float:
        try:
            self._check()
            return self.limiter.cooldown_left(key)
        except LimiterUnavailable as exc:
            if time.monotonic() >= self._down_until:
                self._failed(exc)
            return 0.0


class Fleet:
    """One relay instance's share of a fleet on PostgreSQL: store, limiter, token cache.

    Args:
        dsn: The database (``postgresql://user:password@host:5432/dbname``).
        schema: The schema every instance of the fleet uses (``dingpush`` by default).
        pool_size: The store's most connections.
        statement_timeout: Seconds after which the server cancels a statement.
        clock: Where time comes from. None: the system clock for the outbox and the
            database's clock for the budgets (one clock for the whole fleet); tests inject one.
        lock_timeout: Seconds an operation waits for a connection or a lock (the store's
            ``lock_timeout``, the limiter's and token cache's ``timeout``).
        application_name: How the instance's sessions show in ``pg_stat_activity`` (the
            limiter's and token cache's get ``-limiter``/``-tokens`` appended).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int | None = None,
        statement_timeout: float | None = None,
        clock: Clock | None = None,
        lock_timeout: float | None = None,
        application_name: str = "dingpush-relay",
    ) -> None:
        from dingpush import PostgresRateLimiter, PostgresTokenCache

        from .stores import PostgresStore

        self.dsn = dsn
        options: dict[str, typing.Any] = {}
        if schema is not None:
            options["schema"] = schema
        store_options = dict(options)
        if pool_size is not None:
            store_options["pool_size"] = pool_size
        if statement_timeout is not None:
            store_options["statement_timeout"] = statement_timeout
        if lock_timeout is not None:
            store_options["lock_timeout"] = lock_timeout
            options["timeout"] = lock_timeout
        self.store: PostgresStore = PostgresStore(
            dsn, clock=clock, application_name=application_name, **store_options
        )
        self.schema: str = self.store.schema
        self.shared_limiter: PostgresRateLimiter = PostgresRateLimiter(
            dsn, clock=clock, application_name=f"{application_name}-limiter", **options
        )
        #: What the relay's targets use: the shared limiter, failing fast while it is away.
        self.limiter = GuardedLimiter(self.shared_limiter)
        self.tokens: PostgresTokenCache = PostgresTokenCache(
            dsn, application_name=f"{application_name}-tokens", **options
        )

    def __repr__(self) -> str:
        return f"<Fleet {self.store!r}>"

    def leases(self, seconds: float) -> TargetLeases:
        """This instance's target leases, ``seconds`` long, in the fleet's outbox."""
        from ._leases import TargetLeases

        return TargetLeases(self.store, seconds=seconds)

    def secrets(self) -> list[str]:
        """The password of the database URL, for the relay's redactor."""
        password = dsn_password(self.dsn)
        return [password] if password else []

    def close(self) -> None:
        """Close the limiter's and the token cache's connections (the store closes itself)."""
        self.shared_limiter.close()
        self.tokens.close()


def postgres_store(choice: StoreChoice) -> PostgresStore:
    """The outbox alone of a PostgreSQL ``StoreChoice`` (``dingpush outbox …``)."""
    from .stores import PostgresStore

    assert choice.store is not None and choice.postgres
    options: dict[str, typing.Any] = {
        name: getattr(choice, name) for name in POSTGRES_ONLY if getattr(choice, name) is not None
    }
    try:
        return PostgresStore(choice.store, application_name="dingpush-outbox-cli", **options)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def fleet_from_choice(choice: StoreChoice, clock: Clock | None = None) -> Fleet:
    """The fleet of a PostgreSQL ``StoreChoice``; ``ConfigError`` for a URL psycopg refuses."""
    assert choice.store is not None and choice.postgres
    try:
        return Fleet(
            choice.store,
            schema=choice.schema,
            pool_size=choice.pool_size,
            statement_timeout=choice.statement_timeout,
            clock=clock,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
