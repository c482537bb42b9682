"""Fixtures for the relay's tests: every outbox store, on a fake clock.

``STORES`` is where a backend joins the contract suite: one line that builds it. The PostgreSQL
store gets a schema of its own per test (``tests/_pgsupport.py``), dropped after the test; the
server must be reachable, or the test fails saying how to fix that.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable

import pytest

from _pgsupport import DSN, drop_schema, scratch_schema
from dingpush.relay.stores import MemoryStore, OutboxStore, PostgresStore, SQLiteStore
from dingpush.testing import FakeClock

StoreFactory = Callable[[pathlib.Path, FakeClock], OutboxStore]

STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp_path, clock: MemoryStore(clock=clock),
    "sqlite": lambda tmp_path, clock: SQLiteStore(tmp_path / "outbox.sqlite", clock=clock),
    "postgres": lambda tmp_path, clock: PostgresStore(
        DSN, schema=scratch_schema(), clock=clock, pool_size=4
    ),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(STORES))
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, clock: FakeClock
) -> AsyncIterator[OutboxStore]:
    made = STORES[request.param](tmp_path, clock)
    try:
        async with made as opened:
            yield opened
    finally:
        if isinstance(made, PostgresStore):
            drop_schema(made.schema)
