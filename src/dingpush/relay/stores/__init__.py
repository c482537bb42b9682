"""Outbox stores: where the relay keeps every message until DingTalk has accepted it.

``OutboxStore`` is the contract; ``SQLiteStore`` is the embedded default (one file, group
commit), ``MemoryStore`` keeps everything in memory for tests and ``immediate`` use. Both need the
standard library only. ``PostgresStore`` lets several relay instances share one outbox; it needs
the ``postgres`` extra and is imported on first use. ``MemoryIncidentStore`` and its SQLite and
PostgreSQL peers keep the on-call loop's incidents (the contract: ``dingpush.relay._incidents``).

    from dingpush.relay.stores import NewMessage, SQLiteStore

    async with SQLiteStore("outbox.sqlite") as store:
        accepted = await store.enqueue(NewMessage(target="ops", kind="text", payload=body))
"""

from __future__ import annotations

import typing

from ._base import (
    Attempt,
    Claim,
    DeadLetterFilter,
    Enqueued,
    ErrCode,
    NewMessage,
    OutboxMessage,
    OutboxStats,
    OutboxStore,
    Outcome,
    Page,
    Status,
    TargetStats,
)
from ._errors import (
    IncidentNotFound,
    IncompatibleOutbox,
    InvalidTransition,
    LeaseLost,
    MessageNotFound,
    StoreError,
    StoreUnavailable,
)
from ._incidents_memory import MemoryIncidentStore
from ._memory import MemoryStore
from ._sqlite import SQLiteStore
from ._sqlite_writer import WriteStats

if typing.TYPE_CHECKING:
    from ._postgres import PostgresStore

__all__ = [
    "Attempt",
    "Claim",
    "DeadLetterFilter",
    "Enqueued",
    "ErrCode",
    "IncidentNotFound",
    "IncompatibleOutbox",
    "InvalidTransition",
    "LeaseLost",
    "MemoryIncidentStore",
    "MemoryStore",
    "MessageNotFound",
    "NewMessage",
    "OutboxMessage",
    "OutboxStats",
    "OutboxStore",
    "Outcome",
    "Page",
    "PostgresStore",
    "SQLiteStore",
    "Status",
    "StoreError",
    "StoreUnavailable",
    "TargetStats",
    "WriteStats",
]

# Show the public names as dingpush.relay.stores.X in reprs and tracebacks.
for _name in __all__:
    _obj = globals().get(_name)
    if getattr(_obj, "__module__", "").startswith("dingpush.relay.stores."):
        _obj.__module__ = __name__
del _name, _obj


def __getattr__(name: str) -> typing.Any:
    # PostgresStore loads psycopg: only for those who use it, with a hint when it is missing.
    if name == "PostgresStore":
        from dingpush.lowlevel import require_psycopg

        require_psycopg("PostgresStore", pool=True)
        from ._postgres import PostgresStore

        PostgresStore.__module__ = __name__
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
