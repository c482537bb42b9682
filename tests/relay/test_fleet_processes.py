"""A fleet: three ``dingpush serve`` processes on one PostgreSQL schema, one of them killed.

Clients spread 3,000 messages over the three instances (no balancer), to 10 emulator robots
at ``20/1s``; one instance is ``kill -9``-ed mid-dispatch and started again. Every message
reaches the emulator exactly once (itself, or inside one digest: its ``msgUuid`` record), the
emulator never answers a throttle (the budget is shared), and no message is carried by two
digests. Three instances starting together on an empty schema migrate it once.

Nothing here asserts a duration: waits are for states, bounded so a broken fleet fails.
"""

from __future__ import annotations

import pathlib
import threading
import typing

import httpx
import psycopg
import pytest

from _pgsupport import DSN
from dingpush.testing import EmulatorServer

from ._support import RelayProcess, text, wait_until

ROBOTS = tuple(f"r{i}" for i in range(10))
MESSAGES = 3000


def _config(path: pathlib.Path, emulator: EmulatorServer, schema: str) -> pathlib.Path:
    lines = []
    for name in ROBOTS:
        lines += [f"[targets.{name}]", f'webhook = "{emulator.webhook_url(name)}"', ""]
    lines += [
        "[relay]",
        "port = 0",
        f'store = "{DSN}"',
        f'schema = "{schema}"',
        "pool_size = 4",
        'target_lease = "2s"',
        'lease = "3s"',
        'coalesce_after = "3s"',
        'shutdown_deadline = "1s"',
        'retry = { base_delay = "50ms", max_delay = "500ms" }',
        "",
    ]
    for name in ROBOTS:
        lines += [f"[relay.targets.{name}]", 'rate = "20/1s"', ""]
    config = path / "dingpush.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


def _start(config: pathlib.Path, count: int) -> list[RelayProcess]:
    """``count`` instances started at once (each from its own thread)."""
    started: list[RelayProcess | BaseException] = []

    def one() -> None:
        try:
            started.append(RelayProcess(config, serve=True))
        except BaseException as exc:  # reported below
            started.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    instances = [s for s in started if isinstance(s, RelayProcess)]
    failures = [s for s in started if not isinstance(s, RelayProcess)]
    if failures:
        for instance in instances:
            instance.stop()
        raise AssertionError(f"an instance did not start: {failures[0]!r}")
    return instances


def _rows(schema: str, query: str) -> list[tuple[typing.Any, ...]]:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
        return conn.execute(query).fetchall()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_instances_deliver_everything_once_through_a_kill_9(
    tmp_path: pathlib.Path, schema: str
) -> None:
    with EmulatorServer() as emulator:
        for name in ROBOTS:
            emulator.add_robot(name, rate_limit=20, rate_window=1, lockout=600)
        config = _config(tmp_path, emulator, schema)
        instances = _start(config, 3)  # on an empty schema, together
        restarted: RelayProcess | None = None
        try:
            # The migration ran once: each step recorded once, whoever applied it.
            steps = _rows(schema, "SELECT component, version FROM dingpush_migrations")
            assert len(steps) == len(set(steps)) and ("outbox", 1) in steps
            ids: list[str] = []
            clients = [httpx.Client(base_url=i.url, timeout=60) for i in instances]
            try:
                for n in range(MESSAGES // 100):  # the clients spread their batches
                    batch = [
                        {
                            "target": ROBOTS[(n * 100 + i) % len(ROBOTS)],
                            "message": text(f"message {n}-{i}"),
                        }
                        for i in range(100)
                    ]
                    reply = clients[n % 3].post("/v1/messages:batch", json={"messages": batch})
                    assert reply.status_code == 202, reply.text
                    ids += reply.json()["ids"]
            finally:
                for client in clients:
                    client.close()
            assert len(set(ids)) == MESSAGES
            wait_until(lambda: len(emulator.emulator.messages()) >= 40, 60, "dispatch to start")
            instances[0].kill()  # mid-dispatch: it held target leases and sends in flight
            restarted = RelayProcess(config, serve=True)

            def settled() -> bool:
                (row,) = _rows(
                    schema,
                    "SELECT count(*) FROM messages WHERE status NOT IN ('delivered', 'digested')",
                )
                return bool(row[0] == 0)

            wait_until(settled, 240, "every message settled")
        finally:
            for instance in [*instances[1:], *([restarted] if restarted else [])]:
                instance.stop()

        delivered = emulator.emulator.messages()
        uuids = [str(m.msg_uuid) for m in delivered]
        assert len(uuids) == len(set(uuids))  # nothing reached a robot twice
        rows = _rows(schema, "SELECT id, status, digest_id FROM messages")
        by_id = {row[0]: row for row in rows}
        # Each accepted message arrived once: itself, or inside the one digest that carries it.
        for message_id in ids:
            _, status, digest_id = by_id[message_id]
            if status == "delivered":
                assert message_id in uuids
            else:
                assert status == "digested" and digest_id in uuids
        digests = [row for row in rows if row[0] not in set(ids)]
        assert all(row[1] == "delivered" for row in digests)
        assert set(uuids) <= set(by_id)  # nothing was sent that was not accepted
        stats = emulator.emulator.stats()
        throttled = sum(r.rejected.get("throttled", 0) for r in stats.robots.values())
        assert throttled == 0  # one budget per robot across the fleet
        assert digests  # the backlog was merged (each original in one digest, checked above)
