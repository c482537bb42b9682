"""App access tokens against the emulator over loopback HTTP: cache, refresh, single flight."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import stat
import threading

import pytest

import dingpush
from _appsupport import APP_KEY, APP_SECRET, add_ops_app, cid
from dingpush import App, AsyncApp, BadCredentials, FileTokenCache, InvalidAccessToken
from dingpush.testing import EmulatorServer, FakeClock

TOKEN_PATH = "/v1.0/oauth2/accessToken"


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer) -> EmulatorServer:
    return add_ops_app(dingtalk_emulator)


def test_token_is_cached(server: EmulatorServer) -> None:
    with server.app_client("ops") as app:
        first = app.access_token()
        for _ in range(3):
            app.group(cid(server)).send("hello")
        assert app.access_token() == first
    assert server.emulator.token_requests("ops") == 1


def test_token_is_refreshed_early_and_dingtalk_returns_the_same_one(
    server: EmulatorServer,
) -> None:
    clock = FakeClock()
    server.emulator.clock = clock
    with server.app_client("ops", clock=clock) as app:
        token = app.access_token()
        clock.advance(7200 - 601)  # more than ten minutes left: still fresh
        assert app.access_token() == token
        assert server.emulator.token_requests("ops") == 1
        clock.advance(2)  # inside the ten-minute margin, not expired yet
        app.group(cid(server)).send("refreshed early")
        assert server.emulator.token_requests("ops") == 2
        # Fetching within the validity period returns the same token, its life extended (§2.4).
        assert app.access_token() == token
        clock.advance(7000)
        app.group(cid(server)).send("still good: the life was extended")
    assert [r.reason for r in server.emulator.requests(robot="ops") if r.code] == []


def test_short_lifetimes_refresh_a_tenth_early(server: EmulatorServer) -> None:
    server.emulator.update_app("ops", token_lifetime=60)
    clock = FakeClock()
    server.emulator.clock = clock
    with server.app_client("ops", clock=clock) as app:
        app.access_token()
        clock.advance(53)
        app.access_token()
        assert server.emulator.token_requests("ops") == 1
        clock.advance(2)  # 55 s: within 6 s of expiry
        app.access_token()
    assert server.emulator.token_requests("ops") == 2


def test_refresh_after_forced_expiry(server: EmulatorServer) -> None:
    with server.app_client("ops") as app:
        app.group(cid(server)).send("one")
        server.emulator.expire_tokens("ops")
        result = app.group(cid(server)).send("two")  # refused once, refreshed, sent
    assert result.process_query_key
    codes = [r.code for r in server.emulator.requests(robot=None) if r.path.endswith("send")]
    assert codes == [None, "InvalidAuthentication", None]
    assert server.emulator.token_requests("ops") == 2
    assert len(server.emulator.messages(robot="ops")) == 2


def test_expiry_by_the_emulator_clock_alone(server: EmulatorServer) -> None:
    # The server's clock moves, the client's does not: the client learns it from the refusal.
    clock = FakeClock()
    server.emulator.clock = clock
    server.emulator.update_app("ops", token_lifetime=60)
    with server.app_client("ops") as app:
        app.group(cid(server)).send("one")
        clock.advance(61)
        app.group(cid(server)).send("two")
    assert server.emulator.token_requests("ops") == 2


def test_oapi_invalid_token_is_retried_once(server: EmulatorServer) -> None:
    agent_id = server.emulator.app("ops").agent_id
    with server.app_client("ops") as app:
        app.access_token()
        server.emulator.expire_tokens()
        result = app.notify(agent_id, users=["alice"]).send("hello")
    assert result.task_id
    errcodes = [r.errcode for r in server.emulator.requests() if "asyncsend" in r.path]
    assert errcodes == [40014, 0]


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/v1.0/robot/groupMessages/send", {"errmsg": "InvalidAuthentication"}),
        ("/topapi/message/corpconversation/asyncsend_v2", {"errcode": 40014}),
    ],
)
def test_invalid_token_is_retried_only_once(
    server: EmulatorServer, path: str, fault: dict[str, object]
) -> None:
    server.emulator.inject_fault("errcode", path=path, count=None, **fault)  # type: ignore[arg-type]
    agent_id = server.emulator.app("ops").agent_id
    with server.app_client("ops") as app, pytest.raises(InvalidAccessToken):
        if "robot" in path:
            app.group(cid(server)).send("x")
        else:
            app.notify(agent_id, users=["alice"]).send("x")
    assert len([r for r in server.emulator.requests() if r.path == path]) == 2
    assert server.emulator.token_requests("ops") == 2


def _slow_token_endpoint(server: EmulatorServer) -> None:
    # Hold the first token answer back so every caller arrives while it is in flight.
    server.emulator.inject_fault("delay", path=TOKEN_PATH, delay=0.3)


def test_single_flight_across_50_threads(server: EmulatorServer) -> None:
    _slow_token_endpoint(server)
    barrier = threading.Barrier(50)
    tokens: list[str] = []
    errors: list[BaseException] = []
    with server.app_client("ops") as app:
        group = app.group(cid(server))

        def worker(i: int) -> None:
            try:
                barrier.wait()
                tokens.append(app.access_token())
                group.send(f"message {i}")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(set(tokens)) == 1 and len(tokens) == 50
    assert server.emulator.token_requests("ops") == 1
    assert len(server.emulator.messages(robot="ops")) == 50


@pytest.mark.anyio
async def test_single_flight_across_50_tasks(server: EmulatorServer) -> None:
    _slow_token_endpoint(server)
    config = server.emulator.app("ops")
    async with AsyncApp(config.app_key, config.app_secret, api_base=server.url) as app:
        group = app.group(cid(server))
        tokens = await asyncio.gather(*(app.access_token() for _ in range(50)))
        await asyncio.gather(*(group.send(f"m{i}") for i in range(50)))
    assert len(set(tokens)) == 1
    assert server.emulator.token_requests("ops") == 1
    assert len(server.emulator.messages(robot="ops")) == 50


@pytest.mark.anyio
async def test_async_refresh_after_forced_expiry(server: EmulatorServer) -> None:
    config = server.emulator.app("ops")
    async with AsyncApp(
        config.app_key, config.app_secret, api_base=server.url, oapi_base=server.url
    ) as app:
        await app.group(cid(server)).send("one")
        server.emulator.expire_tokens("ops")
        await app.notify(config.agent_id, users=["alice"]).send("two")
        server.emulator.expire_tokens("ops")
        await app.group(cid(server)).send("three")
    assert server.emulator.token_requests("ops") == 3
    assert len(server.emulator.messages(robot="ops")) == 3


class TestDiskCache:
    def test_a_second_process_reuses_the_token(
        self, server: EmulatorServer, tmp_path: pathlib.Path
    ) -> None:
        path = tmp_path / "cache" / "tokens.json"
        with server.app_client("ops", token_cache=path) as app:
            token = app.access_token()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        text = path.read_text()
        assert APP_SECRET not in text and APP_KEY in text and token in text
        with server.app_client("ops", token_cache=str(path)) as again:
            assert again.access_token() == token
            again.group(cid(server)).send("no new token needed")
        assert server.emulator.token_requests("ops") == 1

    def test_a_refused_token_is_dropped_from_the_file(
        self, server: EmulatorServer, tmp_path: pathlib.Path
    ) -> None:
        cache = FileTokenCache(tmp_path / "tokens.json")
        with server.app_client("ops", token_cache=cache) as app:
            old = app.access_token()
            server.emulator.expire_tokens("ops")
            app.group(cid(server)).send("x")
        entries = json.loads(cache.path.read_text())["tokens"]
        (entry,) = entries.values()
        assert entry["access_token"] != old

    def test_a_new_secret_does_not_reuse_the_old_entry(
        self, server: EmulatorServer, tmp_path: pathlib.Path
    ) -> None:
        path = tmp_path / "tokens.json"
        with server.app_client("ops", token_cache=path) as app:
            app.access_token()
        server.emulator.update_app("ops", app_secret="rotated-secret-value-0123456789")
        with server.app_client("ops", token_cache=path) as app:
            app.access_token()
        assert server.emulator.token_requests("ops") == 2
        assert len(json.loads(path.read_text())["tokens"]) == 2

    def test_default_location_honours_xdg_cache_home(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
    ) -> None:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert dingpush.default_token_cache_path() == tmp_path / "dingpush" / "tokens.json"
        assert FileTokenCache().path == tmp_path / "dingpush" / "tokens.json"
        monkeypatch.delenv("XDG_CACHE_HOME")
        home = pathlib.Path(os.path.expanduser("~"))
        assert dingpush.default_token_cache_path() == home / ".cache/dingpush/tokens.json"

    def test_a_damaged_file_is_an_empty_cache(self, tmp_path: pathlib.Path) -> None:
        path = tmp_path / "tokens.json"
        path.write_text("{not json")
        assert FileTokenCache(path).load("any") is None


class TestBadCredentials:
    def test_wrong_secret(self, server: EmulatorServer) -> None:
        with App(APP_KEY, "wrong-secret-0123456789", api_base=server.url) as app:
            with pytest.raises(BadCredentials) as info:
                app.access_token()
        exc = info.value
        assert exc.errcode == "invalidClientIdOrSecret" and exc.request_id
        assert exc.exit_code == 3 and isinstance(exc, dingpush.ConfigError)
        assert "open-dev.dingtalk.com" in str(exc) and "Client Secret" in str(exc)
        assert "wrong-secret-0123456789" not in str(exc)

    @pytest.mark.parametrize(
        ("app_key", "app_secret", "credential", "words"),
        [
            ("6c2a" * 16, APP_SECRET, "app_key", "webhook access_token"),
            (APP_KEY, "SEC0123456789abcdef", "app_secret", "signing secret"),
            (APP_SECRET, APP_KEY, "app_key", "swapped"),
            ("myapp", APP_SECRET, "app_key", "does not start with 'ding'"),
            # A well-formed AppKey: the secret is named, not the key (issue 15).
            (APP_KEY, "wrong-secret-0123456789", "app_secret", "AppSecret is most likely wrong"),
        ],
    )
    def test_says_which_credential_is_wrong(
        self, server: EmulatorServer, app_key: str, app_secret: str, credential: str, words: str
    ) -> None:
        with App(app_key, app_secret, api_base=server.url) as app:
            with pytest.raises(BadCredentials, match=words) as info:
                app.group("cidX").send("x")
        assert info.value.credential == credential
        assert server.emulator.messages() == []

    @pytest.mark.parametrize(
        ("app_key", "app_secret", "match"),
        [
            ("", "s", "app_key is empty"),
            ("k", " ", "app_secret is empty"),
            ("https://oapi.dingtalk.com/robot/send?access_token=x", "s", "Robot"),
        ],
    )
    def test_refused_before_any_request(self, app_key: str, app_secret: str, match: str) -> None:
        with pytest.raises(BadCredentials, match=match):
            App(app_key, app_secret)


def test_hosts_come_from_the_environment(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DINGPUSH_API_BASE", server.url)
    monkeypatch.setenv("DINGPUSH_OAPI_BASE", server.url + "/")
    with App(APP_KEY, APP_SECRET) as app:
        assert repr(app) == (f"App({APP_KEY!r}, api_base={server.url!r}, oapi_base={server.url!r})")
        app.notify(server.emulator.app("ops").agent_id, users=["alice"]).send("from env")
    with pytest.raises(dingpush.ConfigError, match="not an http"):
        App(APP_KEY, APP_SECRET, api_base="api.dingtalk.com")


def test_default_hosts_are_dingtalks() -> None:
    with App(APP_KEY, APP_SECRET) as app:
        assert "https://api.dingtalk.com" in repr(app)
        assert "https://oapi.dingtalk.com" in repr(app)
