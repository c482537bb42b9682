"""A rate limiter whose send log lives in a SQLite file, shared by every process on the machine.

Many cron jobs, CI steps and scripts may post through one robot; each is a separate process
with its own memory, so only a shared file can keep them under DingTalk's 20 messages a minute
together. The file holds the same sliding-window log as ``MemoryRateLimiter`` (see
``_limiter.py``), stamped with wall-clock time because monotonic clocks are per boot, not per
file. ``BEGIN IMMEDIATE`` serialises the reservations of all processes; each takes a
millisecond.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import sqlite3
import threading
import time
import typing
from collections.abc import Iterator

from dingpush._errors import ConfigError

from ._clock import SYSTEM_CLOCK, Clock
from ._limiter import Rate, Reservation, check_weight, free_in

__all__ = ["FileRateLimiter", "default_limiter_path"]

#: Seconds a reservation may stay in flight before it counts as sent at the end of its lease:
#: a process killed mid-send must not hold a slot forever. Longer than any sane request.
LEASE = 120.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS slots ("
    " id INTEGER PRIMARY KEY, robot TEXT NOT NULL, stamp REAL NOT NULL,"
    " pending INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS slots_by_robot ON slots (robot, stamp)",
    "CREATE TABLE IF NOT EXISTS cooldowns (robot TEXT PRIMARY KEY, until REAL NOT NULL)",
)
_EXPIRE = "DELETE FROM slots WHERE robot = :robot AND stamp + :window <= :now"
_SLOTS = "SELECT stamp, pending FROM slots WHERE robot = :robot"
_COOLING = "SELECT until FROM cooldowns WHERE robot = :robot"
_RESERVE = "INSERT INTO slots (robot, stamp, pending) VALUES (:robot, :stamp, 1)"
_COMPLETE = "UPDATE slots SET stamp = :stamp, pending = 0 WHERE id = :id"
_COOL = (
    "INSERT INTO cooldowns (robot, until) VALUES (:robot, :until) "
    "ON CONFLICT (robot) DO UPDATE SET until = max(until, excluded.until)"
)


def default_limiter_path() -> pathlib.Path:
    """``$DINGPUSH_LIMITER_PATH``, else ``ratelimit.sqlite3`` in the user's cache directory."""
    explicit = os.environ.get("DINGPUSH_LIMITER_PATH")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(cache) / "dingpush" / "ratelimit.sqlite3"


class _FileReservation:
    __slots__ = ("_done", "_ids", "_limiter")

    def __init__(self, limiter: FileRateLimiter, slot_ids: list[int]) -> None:
        self._limiter = limiter
        self._ids = slot_ids
        self._done = False

    def complete(self, extra: float = 0.0) -> None:
        if self._done:
            return
        self._done = True
        limiter = self._limiter
        with limiter._transaction() as db:
            stamp = limiter.clock.time() + max(extra, 0.0)
            db.executemany(_COMPLETE, [{"stamp": stamp, "id": i} for i in self._ids])


class FileRateLimiter:
    """Per-robot send logs in a SQLite file, shared by all processes that open it.

    Args:
        path: The database file; ``None`` for :func:`default_limiter_path`
            (``$DINGPUSH_LIMITER_PATH``, ``$XDG_CACHE_HOME/dingpush/ratelimit.sqlite3`` or
            ``~/.cache/dingpush/ratelimit.sqlite3``). Its directory is created.
        clock: Where wall-clock time comes from (``FakeClock`` in tests).
        timeout: Seconds to wait for another process's transaction before failing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.path = pathlib.Path(path) if path is not None else default_limiter_path()
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"FileRateLimiter({str(self.path)!r})"

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        check_weight(weight, rate)
        with self._transaction() as db:
            now = self.clock.time()
            wait = self._wait(db, key, rate, now, weight)
            if wait > 0:
                return wait
            ids = []
            for _ in range(weight):
                cursor = db.execute(_RESERVE, {"robot": key, "stamp": now + LEASE})
                ids.append(typing.cast(int, cursor.lastrowid))
            return _FileReservation(self, ids)

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        check_weight(weight, rate)
        with self._transaction() as db:
            return self._wait(db, key, rate, self.clock.time(), weight)

    def cool_down(self, key: str, seconds: float) -> None:
        with self._transaction() as db:
            db.execute(_COOL, {"robot": key, "until": self.clock.time() + seconds})

    def cooldown_left(self, key: str) -> float:
        with self._transaction() as db:
            row = db.execute(_COOLING, {"robot": key}).fetchone()
        return 0.0 if row is None else max(row[0] - self.clock.time(), 0.0)

    def close(self) -> None:
        """Close this process's connection (it reopens on the next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _wait(
        self, db: sqlite3.Connection, key: str, rate: Rate, now: float, weight: int = 1
    ) -> float:
        # A pending row's stamp is the end of its lease; once the lease is over it counts as
        # a send completed then, so a process that died mid-send releases its slot.
        db.execute(_EXPIRE, {"robot": key, "window": rate.window, "now": now})
        stamps: list[float] = []
        pending = 0
        for stamp, is_pending in db.execute(_SLOTS, {"robot": key}):
            if is_pending and stamp > now:
                pending += 1
            else:
                stamps.append(stamp)
        row = db.execute(_COOLING, {"robot": key}).fetchone()
        cooling = 0.0 if row is None else row[0] - now
        return max(free_in(stamps, pending, rate, now, weight), cooling, 0.0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            else:
                db.commit()

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child opens its own.
        if self._db is not None and self._pid == os.getpid():
            return self._db
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                db = self._open()
            except sqlite3.OperationalError as exc:
                # Processes opening a new file together race to switch it to WAL; SQLite
                # answers "locked" at once rather than wait when waiting could deadlock.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._unusable(exc) from exc
                time.sleep(0.005 + random.random() * 0.02)
            except (OSError, sqlite3.Error) as exc:
                raise self._unusable(exc) from exc
            else:
                self._db, self._pid = db, os.getpid()
                return db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    def _unusable(self, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"cannot open the rate-limit file {self.path}: {exc}; give FileRateLimiter a "
            "writable path= (or set DINGPUSH_LIMITER_PATH)"
        )
