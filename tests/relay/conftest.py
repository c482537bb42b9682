"""Fixtures for the relay's tests: every outbox store, on a fake clock.

``STORES`` is where a backend joins the contract suite: one line that builds it. The PostgreSQL
store (its own issue) adds ``"postgres": lambda tmp_path, clock: PostgresStore(DSN, clock=clock)``
here and must pass ``test_store_contract.py`` unchanged.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable

import pytest

from dingpush.relay.stores import MemoryStore, OutboxStore, SQLiteStore
from dingpush.testing import FakeClock

StoreFactory = Callable[[pathlib.Path, FakeClock], OutboxStore]

STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp_path, clock: MemoryStore(clock=clock),
    "sqlite": lambda tmp_path, clock: SQLiteStore(tmp_path / "outbox.sqlite", clock=clock),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(STORES))
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, clock: FakeClock
) -> AsyncIterator[OutboxStore]:
    async with STORES[request.param](tmp_path, clock) as opened:
        yield opened
