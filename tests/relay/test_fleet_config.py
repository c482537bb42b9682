"""``[relay] store = "postgresql://…"``: the relay as one instance of a fleet on PostgreSQL.

The configuration's settings of a PostgreSQL store, the errors when they are misplaced or
wrong, the password of the URL masked everywhere, and what the instance builds from the one
URL: the outbox, the robots' budgets and the apps' token cache, all shared through the
database (two instances' targets read one budget).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import typing

import psycopg.conninfo
import pytest

from _pgsupport import DSN
from dingpush import (
    ConfigError,
    LimiterUnavailable,
    PostgresRateLimiter,
    PostgresTokenCache,
    Rate,
    Reservation,
)
from dingpush.relay import AppTarget, Relay
from dingpush.relay._config import load_relay
from dingpush.relay._fleet import GuardedLimiter
from dingpush.relay.stores import PostgresStore, SQLiteStore

pytestmark = pytest.mark.anyio

WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123"
PASSWORD = "pw-never-shown-4711"


def _url() -> str:
    # Trust authentication ignores the password; the relay must still never show it.
    return psycopg.conninfo.make_conninfo(DSN, password=PASSWORD)


def _as_url() -> str:
    parts = psycopg.conninfo.conninfo_to_dict(_url())
    return (
        f"postgresql://{parts.get('user', 'postgres')}:{PASSWORD}@{parts.get('host')}:"
        f"{parts.get('port', 5432)}/{parts.get('dbname')}"
    )


def _write(tmp_path: pathlib.Path, relay: str, extra: str = "") -> str:
    path = tmp_path / "dingpush.toml"
    path.write_text(
        f'[targets.ops]\nwebhook = "{WEBHOOK}"\n{extra}\n[relay]\n{relay}\n', encoding="utf-8"
    )
    return str(path)


def _load(path: str, store: str | None = None) -> Relay:
    loaded = load_relay(path, store=store)
    assert loaded is not None
    return loaded[0]


async def test_a_database_url_makes_the_relay_an_instance_of_a_fleet(
    tmp_path: pathlib.Path, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", _as_url())
    path = _write(
        tmp_path,
        f'store = "${{DATABASE_URL}}"\nschema = "{schema}"\npool_size = 3\n'
        'statement_timeout = "5s"\ntarget_lease = "7s"',
        extra='[apps.corp]\napp_key = "dingappkey0123456789"\n'
        'app_secret = "app-secret-0123456789-abcdefghijklmnop"\n'
        '[targets.group]\nkind = "app-group"\napp = "corp"\n'
        'open_conversation_id = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="\n',
    )
    relay = _load(path)
    try:
        assert relay.fleet is not None
        assert isinstance(relay.store, PostgresStore) and relay.store.schema == schema
        shared = relay.fleet.shared_limiter
        assert isinstance(shared, PostgresRateLimiter) and shared.schema == schema
        assert relay.limiter is relay.fleet.limiter and relay.fleet.limiter.limiter is shared
        assert all(target.limiter is relay.limiter for target in relay.targets.values())
        group = relay.targets["group"]
        assert isinstance(group, AppTarget)
        cache = group.app._core.token_cache
        assert isinstance(cache, PostgresTokenCache) and cache is relay.fleet.tokens
        assert relay.settings.target_lease == 7.0
        shown = repr(relay) + repr(relay.store) + repr(relay.limiter) + repr(relay.fleet)
        assert PASSWORD not in shown
        assert PASSWORD not in relay.redact(f"could not connect with {_as_url()}")
        async with relay:  # it opens, migrates and takes writes
            assert await relay.outbox_problem() is None
    finally:
        await relay.aclose()


async def test_two_instances_share_one_budget_per_robot(
    tmp_path: pathlib.Path, schema: str
) -> None:
    path = _write(tmp_path, f'schema = "{schema}"\n[relay.targets.ops]\nrate = "3/60s"')
    one, two = _load(path, store=DSN), _load(path, store=DSN)
    try:
        ops_one, ops_two = one.targets["ops"], two.targets["ops"]
        (key,) = ops_one.keys()
        for _ in range(3):
            reservation = one.limiter.reserve(key, Rate(3, 60))
            assert not isinstance(reservation, float)
            reservation.complete()
        # The other instance sees the robot's window spent, and a cool-down recorded by one.
        assert ops_two.delay() > 55
        two.limiter.cool_down(key, 600)
        assert ops_one.cooldown_left() > 590
    finally:
        await one.aclose()
        await two.aclose()


def test_store_on_the_command_line_replaces_the_file_s(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, 'store = "memory"')
    relay = _load(path, store=str(tmp_path / "elsewhere.sqlite"))
    assert isinstance(relay.store, SQLiteStore)
    assert relay.store.path == tmp_path / "elsewhere.sqlite" and relay.fleet is None


@pytest.mark.parametrize(
    ("relay_table", "key", "message"),
    [
        ("pool_size = 4", "relay.pool_size", "applies to a PostgreSQL store only"),
        ('store = "memory"\nschema = "x"', "relay.schema", "applies to a PostgreSQL store only"),
        ('statement_timeout = "5s"', "relay.statement_timeout", "PostgreSQL store only"),
        ('store = "postgresql://h/db"\npool_size = 0', "relay.pool_size", "at least 1"),
        ('target_lease = "0s"', "relay.target_lease", "must be longer than zero"),
        (
            'store = "postgresql://h/db"\nschema = "Not A Schema!"',
            "relay.store",
            "schema",
        ),
    ],
)
def test_store_settings_are_checked_with_the_line_and_the_fix(
    tmp_path: pathlib.Path, relay_table: str, key: str, message: str
) -> None:
    path = _write(tmp_path, relay_table)
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    text = str(caught.value)
    assert f": {key}: " in text and message in text, text


def test_a_bad_url_is_a_problem_that_never_shows_its_password(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, f'store = "postgresql://u:{PASSWORD}@h/db?nosuch=1"')
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    assert "relay.store" in str(caught.value) and PASSWORD not in str(caught.value)


class _Away:
    """A limiter whose database is unreachable: every call fails, and is counted."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> typing.NoReturn:
        self.calls += 1
        raise LimiterUnavailable("the rate limiter's database cannot be used now")

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        self._fail()

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        self._fail()

    def cool_down(self, key: str, seconds: float) -> None:
        self._fail()

    def cooldown_left(self, key: str) -> float:
        self._fail()


def test_an_unreachable_limiter_fails_fast_instead_of_holding_the_event_loop() -> None:
    away = _Away()
    guarded = GuardedLimiter(away, rest=60)
    with pytest.raises(LimiterUnavailable):
        guarded.delay("robot", Rate(20, 60))
    for _ in range(5):  # no round trip while it rests
        with pytest.raises(LimiterUnavailable, match="cannot be used now"):
            guarded.reserve("robot", Rate(20, 60))
        assert guarded.cooldown_left("robot") == 0.0  # a view: nothing to show
        guarded.cool_down("robot", 600)  # best effort: a warning, no round trip
    assert away.calls == 1
    guarded = GuardedLimiter(away, rest=0)
    with pytest.raises(LimiterUnavailable):
        guarded.delay("robot", Rate(20, 60))
    assert away.calls == 2  # after its rest it asks the database again


def test_dingpush_serve_store_runs_an_instance_and_never_prints_the_password(
    tmp_path: pathlib.Path, schema: str
) -> None:
    config = _write(tmp_path, f'port = 0\nschema = "{schema}"')
    process = subprocess.Popen(
        [sys.executable, "-m", "dingpush", "--config", config, "serve", "--store", _as_url()],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip().startswith("outbox:"):
                break
        output = "".join(lines)
        assert "dingpush relay listening on " in output, output
        assert "PostgresStore(" in output and f"schema '{schema}'" in output
        assert PASSWORD not in output
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and PASSWORD not in rest
