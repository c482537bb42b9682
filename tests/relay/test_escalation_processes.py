"""Escalation across crashes and a fleet: real ``dingpush serve`` processes, the emulator.

``kill -9`` of a relay while an escalation waits: the restarted relay DINGs once. Two instances
on one PostgreSQL schema, many incidents due together: each gets one DING. Nothing here asserts
a duration: waits are for states, bounded so a broken relay fails.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import typing
from collections.abc import Iterator

import httpx
import pytest

from _pgsupport import DSN, drop_schema, scratch_schema
from dingpush.alerts import sample
from dingpush.testing import EmulatorServer

from ._support import RelayProcess, wait_until
from .test_fleet_processes import _rows, _start

DELAY = "2s"


@pytest.fixture
def schema() -> Iterator[str]:
    name = scratch_schema()
    yield name
    drop_schema(name)


def _config(path: pathlib.Path, emulator: EmulatorServer, store: list[str]) -> pathlib.Path:
    emulator.add_app(
        "ops",
        "dingescalation0123",
        "escalation-app-secret-0123456789abcdef0123",
        users=("alice", "bob"),
        groups=["Ops"],
    )
    cid = next(iter(emulator.emulator.app("ops").groups))
    lines = [
        "[apps.corp]",
        'app_key = "dingescalation0123"',
        'app_secret = "escalation-app-secret-0123456789abcdef0123"',
        f'api_base = "{emulator.url}"',
        f'oapi_base = "{emulator.url}"',
        "token_cache = false",
        "",
        "[targets.room]",
        'kind = "app-group"',
        'app = "corp"',
        f'open_conversation_id = "{cid}"',
        "",
        "[people.alice]",
        'user_id = "alice"',
        "",
        "[routes.ops]",
        'targets = ["room"]',
        'policy = "page"',
        "",
        "[policies.page]",
        f'steps = [{{after = "{DELAY}", ding = "alice", remind = "phone"}}]',
        "",
        "[relay]",
        "port = 0",
        *store,
        'lease = "3s"',
        'shutdown_deadline = "1s"',
        'escalation_poll = "100ms"',
        'escalation_lease = "3s"',
        'retry = { base_delay = "50ms", max_delay = "500ms" }',
        "",
    ]
    config = path / "dingpush.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


def _alert(group: int) -> dict[str, typing.Any]:
    _, body = sample("alertmanager-firing")
    body = typing.cast(dict[str, typing.Any], json.loads(json.dumps(body)))
    body["groupKey"] = f'{{}}:{{alertname="HighCPU",n="{group}"}}'
    body["commonLabels"]["n"] = str(group)
    for alert in body["alerts"]:
        alert["labels"]["n"] = str(group)
        alert["fingerprint"] = f"{group:016x}"
    return body


def _fire(url: str, groups: range) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        for group in groups:
            reply = http.post("/alertmanager/ops", json=_alert(group))
            assert reply.status_code == 200, reply.text


def _sqlite(path: pathlib.Path, query: str) -> list[tuple[typing.Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_relay_killed_while_an_escalation_waits_dings_once_after_restart(
    tmp_path: pathlib.Path,
) -> None:
    with EmulatorServer() as emulator:
        config = _config(tmp_path, emulator, ['store = "outbox.sqlite"'])
        outbox = tmp_path / "outbox.sqlite"
        relay = RelayProcess(config, serve=True)
        restarted: RelayProcess | None = None
        try:
            _fire(relay.url, range(1))  # the incident is committed: its step is due in 2 s
            relay.kill()
            restarted = RelayProcess(config, serve=True)
            wait_until(lambda: len(emulator.emulator.dings()) >= 1, 60, "the DING")
            query = "SELECT step FROM incidents"
            wait_until(lambda: _sqlite(outbox, query) == [(1,)], 60, "the incident to advance")
            settled = "SELECT count(*) FROM messages WHERE kind = 'ding' AND status = 'delivered'"
            wait_until(lambda: _sqlite(outbox, settled) == [(1,)], 60, "the DING's delivery")
            # The alert's own message, if the killed relay had claimed it, waits for its lease.
            done = "SELECT count(*) FROM messages WHERE status NOT IN ('delivered', 'failed')"
            wait_until(lambda: _sqlite(outbox, done) == [(0,)], 60, "every message settled")
        finally:
            for instance in [relay, *([restarted] if restarted else [])]:
                instance.stop()
        (ding,) = emulator.emulator.dings()
        assert (ding.remind_type, ding.receivers) == (3, ("alice",))
        kinds = [k for (k,) in _sqlite(outbox, "SELECT kind FROM incident_events")]
        # SENT is recorded after the delivery is settled, apart from it: a kill between the
        # two loses that line of the timeline (never the message, never a second DING).
        assert kinds.count("opened") == 1 and kinds.count("ding") == 1
        assert set(kinds) <= {"opened", "sent", "ding"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_instances_on_postgresql_ding_each_incident_once(
    tmp_path: pathlib.Path, schema: str
) -> None:
    incidents = 20
    with EmulatorServer() as emulator:
        store = [f'store = "{DSN}"', f'schema = "{schema}"', "pool_size = 4"]
        config = _config(tmp_path, emulator, store)
        instances = _start(config, 2)
        try:
            _fire(instances[0].url, range(incidents // 2))
            _fire(instances[1].url, range(incidents // 2, incidents))

            def advanced() -> bool:
                (row,) = _rows(schema, "SELECT count(*) FROM incidents WHERE step = 1")
                return bool(row[0] == incidents)

            wait_until(advanced, 120, "every incident's step")
            query = "SELECT count(*) FROM messages WHERE kind = 'ding' AND status = 'delivered'"
            wait_until(lambda: _rows(schema, query) == [(incidents,)], 120, "every DING delivered")
        finally:
            for instance in instances:
                instance.stop()
        dings = emulator.emulator.dings()
        assert len(dings) == incidents
        numbers = sorted(int(d.content.split()[0].lstrip("#")) for d in dings)
        assert numbers == sorted(r[0] for r in _rows(schema, "SELECT number FROM incidents"))
        holders = _rows(schema, "SELECT count(*) FROM incident_events WHERE kind = 'ding'")
        assert holders == [(incidents,)]
