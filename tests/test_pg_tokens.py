"""The PostgreSQL token cache: a fleet of app clients fetches one access token per app.

Each ``App`` here has a cache object of its own, as separate processes would; they share the
database schema only. The emulator counts token requests (protocol §2).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from _appsupport import add_ops_app
from _pgsupport import DSN
from dingpush import AccessToken, App, AsyncApp, PostgresTokenCache
from dingpush.testing import EmulatorServer, FakeClock

TOKEN_PATH = "/v1.0/oauth2/accessToken"


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer) -> EmulatorServer:
    add_ops_app(dingtalk_emulator)
    # Hold each token answer back, so every client asks while a fetch is in flight.
    dingtalk_emulator.emulator.inject_fault("delay", path=TOKEN_PATH, delay=0.3, count=None)
    return dingtalk_emulator


def cache(schema: str, clock: FakeClock | None = None) -> PostgresTokenCache:
    return PostgresTokenCache(DSN, schema=schema, clock=clock)


def test_store_load_discard(schema: str) -> None:
    clock = FakeClock()
    one, two = cache(schema, clock), cache(schema, clock)
    now = clock.time()
    assert one.load("app") is None  # and one now promises to fetch it
    one.store("app", AccessToken("t-1", now + 7200, now))
    assert two.load("app") == AccessToken("t-1", now + 7200, now)
    two.store("app", AccessToken("t-0", now + 3600, now - 3600))  # older: does not replace
    assert one.load("app") == AccessToken("t-1", now + 7200, now)
    two.discard("app")
    assert one.load("app") is None
    assert "t-1" not in repr(one)
    one.close()
    two.close()


def test_a_fleet_of_threads_fetches_one_token(server: EmulatorServer, schema: str) -> None:
    clients = [server.app_client("ops", token_cache=cache(schema)) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    tokens: list[str] = []

    def worker(app: App) -> None:
        barrier.wait()
        tokens.append(app.access_token())

    threads = [threading.Thread(target=worker, args=(app,)) for app in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokens) == 6 and len(set(tokens)) == 1
    assert server.emulator.token_requests("ops") == 1
    for app in clients:
        app.close()


def test_a_fleet_refreshes_the_token_once(server: EmulatorServer, schema: str) -> None:
    clock = FakeClock()
    server.emulator.clock = clock
    clients = [
        server.app_client("ops", clock=clock, token_cache=cache(schema, clock)) for _ in range(4)
    ]
    first = {app.access_token() for app in clients}
    assert len(first) == 1 and server.emulator.token_requests("ops") == 1
    clock.advance(7200 - 599)  # every client's token is now due for its early refresh
    barrier = threading.Barrier(len(clients))
    tokens: list[str] = []

    def worker(app: App) -> None:
        barrier.wait()
        tokens.append(app.access_token())
        app.group(next(iter(server.emulator.app("ops").groups))).send("after the refresh")

    threads = [threading.Thread(target=worker, args=(app,)) for app in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.emulator.token_requests("ops") == 2  # one refresh for the fleet
    assert len(server.emulator.messages(robot="ops")) == 4
    for app in clients:
        app.close()


@pytest.mark.anyio
async def test_async_clients_share_the_token_too(server: EmulatorServer, schema: str) -> None:
    config = server.emulator.app("ops")
    clients = [
        AsyncApp(config.app_key, config.app_secret, api_base=server.url, token_cache=cache(schema))
        for _ in range(3)
    ]
    tokens = [await clients[0].access_token()]
    tokens += await asyncio.gather(*(app.access_token() for app in clients[1:]))
    assert len(set(tokens)) == 1
    assert server.emulator.token_requests("ops") == 1
    for app in clients:
        await app.aclose()


def test_a_fetcher_that_never_stores_is_replaced(server: EmulatorServer, schema: str) -> None:
    clock = FakeClock()
    quitter = cache(schema, clock)
    assert quitter.load(_key(server)) is None  # promised to fetch, then died
    waiting = PostgresTokenCache(DSN, schema=schema, clock=clock, wait=0.2)
    assert waiting.load(_key(server)) is None  # waited briefly, then fetches itself
    clock.advance(60)  # the promise has lapsed: a newcomer may fetch at once
    with server.app_client("ops", clock=clock, token_cache=cache(schema, clock)) as app:
        app.access_token()
    assert server.emulator.token_requests("ops") == 1


def test_an_unreachable_database_only_costs_a_fetch(
    server: EmulatorServer, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = PostgresTokenCache("postgresql://postgres@127.0.0.1:1/test", timeout=2)
    with caplog.at_level(logging.WARNING, logger="dingpush"):
        with server.app_client("ops", token_cache=broken) as app:
            token = app.access_token()
            app.group(next(iter(server.emulator.app("ops").groups))).send("still sent")
    assert token not in caplog.text  # the token is never logged
    assert "token cache" in caplog.text
    assert server.emulator.token_requests("ops") == 1


def _key(server: EmulatorServer) -> str:
    from dingpush._apps._tokens import cache_key

    config = server.emulator.app("ops")
    return cache_key(config.app_key, config.app_secret, server.url)
