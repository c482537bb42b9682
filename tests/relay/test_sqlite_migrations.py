"""Schema migrations of the SQLite outbox: from an empty file, from the previous version, and
the files it must refuse."""

from __future__ import annotations

import json
import pathlib
import sqlite3
from collections.abc import Callable

import pytest

from dingpush import ConfigError
from dingpush.relay.stores import IncompatibleOutbox, NewMessage, SQLiteStore
from dingpush.relay.stores._sqlite_schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    connect,
    migrate,
)
from dingpush.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "outbox.sqlite"


def pragma(path: pathlib.Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def test_the_versions_are_a_sequence() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    assert SCHEMA_VERSION >= 2


async def test_an_empty_file_gets_the_current_schema(path: pathlib.Path) -> None:
    async with SQLiteStore(path) as store:
        assert store.opened_at_version == 0
        await store.enqueue(NewMessage(target="ops", kind="text", payload="{}"))
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID
    async with SQLiteStore(path) as store:
        assert store.opened_at_version == SCHEMA_VERSION
        assert len((await store.list_messages()).items) == 1


def write_version_1_file(path: pathlib.Path, now: float) -> dict[str, str]:
    """A file as dingpush wrote it at schema version 1, holding messages in every state."""
    conn = connect(path, lock_timeout=1.0)
    migrate(conn, path, up_to=1)
    assert pragma(path, "user_version") == 1
    rows = {
        "queued": ("queued", "key-1", None, None, None, None),
        "queued_later": ("queued", None, None, None, None, None),
        "sending": ("sending", None, "tok", now - 1, None, None),
        "delivered": ("delivered", None, None, None, now - 30, None),
        "failed": ("failed", "key-2", None, None, None, "errcode 400102"),
    }
    ids = {}
    for seq, (name, (status, key, token, lease, delivered, error)) in enumerate(rows.items()):
        ids[name] = f"00000000-0000-4000-8000-00000000000{seq}"
        conn.execute(
            "INSERT INTO messages (id, target, kind, payload, status, idempotency_key,"
            " created_at, updated_at, due_at, attempts, lease_token, lease_until, claimed_at,"
            " delivered_at, last_error, last_errcode)"
            " VALUES (?, 'ops', 'text', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ids[name],
                json.dumps({"msgtype": "text", "text": {"content": name}}),
                status,
                key,
                now - 100 + seq,
                now - 50 + seq,
                now - 100 + seq,
                1 if error else 0,
                token,
                lease,
                None if lease is None else lease - 30,
                delivered,
                error,
                400102 if error else None,
            ),
        )
    conn.close()
    return ids


async def test_a_version_1_file_is_upgraded_without_losing_a_message(path: pathlib.Path) -> None:
    clock = FakeClock()
    ids = write_version_1_file(path, clock.time())
    async with SQLiteStore(path, clock=clock) as store:
        assert store.opened_at_version == 1
        page = await store.list_messages()
        assert {m.id for m in page.items} == set(ids.values())
        for name, message_id in ids.items():
            message = await store.get(message_id)
            assert json.loads(message.payload)["text"]["content"] == name
            assert (message.digest_id, message.carries, message.reply) == (None, 0, None)
        assert (await store.get(ids["failed"])).last_errcode == 400102
        # Everything the relay does works on the old messages:
        again = await store.enqueue(
            NewMessage(target="ops", kind="text", payload="{}", idempotency_key="key-1")
        )
        assert again.id == ids["queued"] and not again.created
        assert await store.requeue_expired() == [ids["sending"]]
        digest = await store.digest(
            [ids["queued"], ids["queued_later"]],
            NewMessage(target="ops", kind="markdown", payload="{}"),
        )
        assert digest.carries == 2
        await store.retry(ids["failed"])
        stats = await store.stats()
        assert stats.targets["ops"].last_error is not None  # seeded from the version 1 rows
        claims = await store.claim(10, lease=30)
        assert {c.id for c in claims} == {ids["sending"], ids["failed"], digest.id}
        for claim in claims:
            await store.mark_delivered(claim)
        assert [a.number for a in await store.attempts(ids["failed"])] == [1]
    assert pragma(path, "user_version") == SCHEMA_VERSION


async def test_a_version_2_file_gains_incidents_and_keeps_its_messages(
    path: pathlib.Path,
) -> None:
    conn = connect(path, lock_timeout=1.0)
    migrate(conn, path, up_to=2)
    conn.execute(
        "INSERT INTO messages (id, target, kind, payload, status, created_at, updated_at, "
        "due_at) VALUES ('m-1', 'ops', 'text', '{}', 'queued', 1, 1, 1)"
    )
    conn.close()
    async with SQLiteStore(path) as store:
        assert store.opened_at_version == 2
        assert (await store.get("m-1")).target == "ops"
        made = await store.incidents.open_incident(
            route="ops",
            group_key="g",
            title="t",
            labels={},
            policy=None,
            targets=["ops"],
            due_at=None,
            now=1.0,
        )
        await store.incidents.attach_messages(made.number, ["m-1"])
        assert (await store.incidents.find_by_message("m-1")) is not None
    assert pragma(path, "user_version") == SCHEMA_VERSION


async def test_a_version_3_file_gains_the_chat_memory_and_keeps_its_incidents(
    path: pathlib.Path,
) -> None:
    conn = connect(path, lock_timeout=1.0)
    migrate(conn, path, up_to=3)
    conn.execute(
        "INSERT INTO incidents (route, group_key, title, labels, policy, state, opened_at, "
        "targets) VALUES ('ops', 'g', 'DiskFull', '{}', NULL, 'open', 1, '[\"ops\"]')"
    )
    conn.close()
    async with SQLiteStore(path) as store:
        assert store.opened_at_version == 3
        (kept,) = await store.incidents.list_incidents()
        assert (kept.title, kept.targets) == ("DiskFull", ("ops",))
        key = '["ops","msg-1"]'
        assert (await store.incidents.claim_chat_message(key, now=1.0, ttl=60)).first
        await store.incidents.answer_chat_message(key, "done")
        assert (await store.incidents.claim_chat_message(key, now=2.0, ttl=60)).answer == "done"
    assert pragma(path, "user_version") == SCHEMA_VERSION == 4


async def test_a_file_from_a_newer_dingpush_is_refused(path: pathlib.Path) -> None:
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(IncompatibleOutbox, match="newer dingpush") as caught:
        async with SQLiteStore(path):
            pass
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("prepare", "match"),
    [
        (lambda c: c.execute("PRAGMA application_id = 7"), "another application"),
        (lambda c: c.execute("CREATE TABLE invoices (id INTEGER)"), "no dingpush outbox"),
    ],
    ids=["other-application", "other-tables"],
)
async def test_other_sqlite_files_are_refused(
    path: pathlib.Path, prepare: Callable[[sqlite3.Connection], object], match: str
) -> None:
    conn = sqlite3.connect(path)
    prepare(conn)
    conn.commit()
    conn.close()
    with pytest.raises(IncompatibleOutbox, match=match):
        async with SQLiteStore(path):
            pass


async def test_a_file_that_is_no_database_is_refused(path: pathlib.Path) -> None:
    path.write_bytes(b"these are not the bytes of an SQLite database\n" * 100)
    with pytest.raises(IncompatibleOutbox, match="not a usable SQLite database"):
        async with SQLiteStore(path):
            pass


async def test_a_missing_directory_is_a_configuration_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        async with SQLiteStore(tmp_path / "nope" / "outbox.sqlite"):
            pass


def test_memory_paths_point_to_the_memory_store() -> None:
    with pytest.raises(ValueError, match="MemoryStore"):
        SQLiteStore(":memory:")


async def test_a_store_that_failed_to_open_can_be_opened_later(path: pathlib.Path) -> None:
    path.write_bytes(b"x" * 4096)
    store = SQLiteStore(path)
    with pytest.raises(IncompatibleOutbox):
        await store.open()
    path.unlink()
    async with store:
        await store.ping()
