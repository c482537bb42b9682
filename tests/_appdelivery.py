"""Shared pieces of the app delivery tests: the app on a fake clock, flaky transports."""

from __future__ import annotations

import typing
from collections.abc import Iterable

import httpx

from _appsupport import APP_KEY, APP_SECRET, add_ops_app
from dingpush import App, AsyncApp, RetryPolicy
from dingpush.testing import EmulatorServer, FakeClock

GROUP_PATH = "/v1.0/robot/groupMessages/send"
OTO_PATH = "/v1.0/robot/oToMessages/batchSend"
NOTICE_PATH = "/topapi/message/corpconversation/asyncsend_v2"
UPLOAD_PATH = "/media/upload"
TOKEN_PATH = "/v1.0/oauth2/accessToken"

#: Quick back-off: the fake clock makes waiting free, but the numbers stay readable.
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, jitter=0)

Failure = Exception | None


def register(server: EmulatorServer, clock: FakeClock, **settings: typing.Any) -> None:
    """The app "ops" (users, a group, department 42), on the emulator's fake clock."""
    server.emulator.clock = clock
    add_ops_app(server, departments={42: ["carol", "dave"]}, **settings)


def agent(server: EmulatorServer) -> int:
    return server.emulator.app("ops").agent_id


def app(server: EmulatorServer, clock: FakeClock, **options: typing.Any) -> App:
    return server.app_client("ops", clock=clock, **options)


def async_app(server: EmulatorServer, clock: FakeClock, **options: typing.Any) -> AsyncApp:
    return AsyncApp(
        APP_KEY, APP_SECRET, api_base=server.url, oapi_base=server.url, clock=clock, **options
    )


def calls(server: EmulatorServer, path: str) -> list[typing.Any]:
    return [r for r in server.emulator.requests() if r.path == path]


def refused(server: EmulatorServer, reason: str) -> int:
    return sum(1 for r in server.emulator.requests() if r.reason == reason)


class _Failures:
    def __init__(self, failures: dict[str, Iterable[Failure]]) -> None:
        self.queues = {path: list(queue) for path, queue in failures.items()}

    def next(self, request: httpx.Request) -> None:
        queue = self.queues.get(request.url.path)
        if queue:
            failure = queue.pop(0)
            if failure is not None:
                raise failure


class Flaky(httpx.BaseTransport):
    """Real loopback HTTP, except that chosen requests to a path fail first (in order).

    ``{path: [ConnectError(...), None, ReadError(...)]}`` fails the first request to ``path``
    before it leaves, lets the second through, fails the third. Injected, not patched.
    """

    def __init__(self, failures: dict[str, Iterable[Failure]]) -> None:
        self._failures = _Failures(failures)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._failures.next(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class AsyncFlaky(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`Flaky`."""

    def __init__(self, failures: dict[str, Iterable[Failure]]) -> None:
        self._failures = _Failures(failures)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._failures.next(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def refused_connection(request_path: str) -> httpx.ConnectError:
    return httpx.ConnectError(f"[Errno 111] Connection refused ({request_path})")
