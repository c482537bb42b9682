"""Test helpers: a DingTalk emulator on a real loopback port, a fake clock, and pytest fixtures.

This module is a pytest plugin (through an entry point), so importing it must stay cheap: the
emulator, Starlette and uvicorn are imported only when a server is actually started.

    def test_alert(dingtalk_emulator):
        robot = dingtalk_emulator.add_robot("ops", keywords=("alert",))
        send(dingtalk_emulator.webhook_url("ops"), "alert: disk full")
        assert dingtalk_emulator.emulator.messages(robot="ops")
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    import socket

    from dingpush import App
    from dingpush.emulator import (
        AppConfig,
        Clock,
        Emulator,
        EmulatorOptions,
        RobotConfig,
        RobotStatus,
    )
    from dingpush.serving import BackgroundServer

__all__ = [
    "EmulatorServer",
    "FakeClock",
    "dingtalk_emulator",
    "dingtalk_emulator_server",
]

#: 2023-11-14 22:13:20 UTC: the timestamp of the protocol's signing test vector (§1.2).
FAKE_CLOCK_START = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when told to: ``sleep``, ``asleep`` and ``advance`` move it.

    Give it to ``Emulator(clock=...)`` (and to a client's sleeper) to test rate windows,
    lock-outs and signature expiry without waiting. Thread-safe.
    """

    def __init__(self, start: float = FAKE_CLOCK_START) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        self._monotonic = 0.0

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"

    def time(self) -> float:
        """Return the fake wall-clock time in seconds."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return seconds elapsed since creation; unlike :meth:`time` it never jumps."""
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: both clocks move forward."""
        if seconds < 0:
            raise ValueError("time cannot pass backwards; use set() to jump the wall clock")
        with self._lock:
            self._now += seconds
            self._monotonic += seconds

    def set(self, now: float) -> None:
        """Jump the wall clock to ``now``, backwards too (as NTP may); monotonic time stays."""
        with self._lock:
            self._now = float(now)

    def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping."""
        self.advance(max(seconds, 0.0))

    async def asleep(self, seconds: float) -> None:
        """Advance instead of sleeping, for async code."""
        self.advance(max(seconds, 0.0))


class EmulatorServer:
    """An emulator served by uvicorn on a loopback port in a background thread.

    Use it as a context manager; ``url`` is the base URL with the real port.

    Args:
        emulator: The emulator to serve; a new one (with ``options`` and ``clock``) by default.
        host: Interface to listen on.
        port: TCP port; 0 (the default) picks a free one.
        options: Behaviour options for a new emulator.
        clock: Clock for a new emulator.
        startup_timeout: Seconds to wait for the server to accept connections.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: EmulatorOptions | None = None,
        clock: Clock | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        from dingpush.emulator import Emulator

        self.emulator: Emulator = emulator or Emulator(options=options, clock=clock)
        self._host = host
        self._port = port
        self._startup_timeout = startup_timeout
        self._server: BackgroundServer | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        return f"<EmulatorServer {self._url or 'stopped'}>"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121``."""
        if self._url is None:
            raise RuntimeError("the emulator server is not running; use it as a context manager")
        return self._url

    def start(self) -> EmulatorServer:
        """Start serving and wait until the port accepts connections."""
        from dingpush.emulator._app import serve_on
        from dingpush.serving import BackgroundServer, bind_socket

        if self._server is not None:
            raise RuntimeError("the emulator server is already running")
        sock = self._socket = bind_socket(self._host, self._port)
        emulator = self.emulator

        def run(ready: Callable[[str], None], control: Callable[[Any], None]) -> None:
            # Logging is left to the host: pytest captures it.
            serve_on(emulator, sock, ready=ready, control=control, console_logging=False)

        self._server = BackgroundServer(
            run, name="dingpush-emulator", startup_timeout=self._startup_timeout
        )
        try:
            self._url = self._server.start()
        except RuntimeError:
            self.stop()
            raise RuntimeError("the emulator server did not start") from None
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to finish (idempotent)."""
        if self._server is not None:
            self._server.stop()
        if self._socket is not None:
            self._socket.close()
        self._server = self._socket = None
        self._url = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_robot(
        self,
        name: str,
        token: str | None = None,
        *,
        secret: str | None = None,
        keywords: tuple[str, ...] = (),
        ip_allowlist: tuple[str, ...] = (),
        group: str = "",
        rate_limit: int = 20,
        rate_window: float = 60.0,
        lockout: float = 600.0,
        status: RobotStatus = "active",
    ) -> RobotConfig:
        """Register a robot (a 64-hex token is generated when none is given) and return it."""
        from dingpush.emulator import RobotConfig

        robot = RobotConfig(
            name,
            token or secrets.token_hex(32),
            secret=secret,
            keywords=keywords,
            ip_allowlist=ip_allowlist,
            group=group,
            rate_limit=rate_limit,
            rate_window=rate_window,
            lockout=lockout,
            status=status,
        )
        return self.emulator.add_robot(robot)

    def add_app(
        self,
        name: str,
        app_key: str | None = None,
        app_secret: str | None = None,
        *,
        agent_id: int = 0,
        robot_code: str = "",
        users: Iterable[str] = (),
        departments: Mapping[str | int, Iterable[str]] | None = None,
        groups: Iterable[str] | Mapping[str, str] = (),
        permissions: Iterable[str] | None = None,
        token_lifetime: float = 7200.0,
        flow_controlled_users: Iterable[str] = (),
        notice_daily_cap: int = 500,
        api_qps: int = 20,
        oto_user_limit: int = 0,
        oto_user_window: float = 60.0,
        notice_recipients_per_minute: int = 5000,
        paid_ding: bool = True,
    ) -> AppConfig:
        """Register an enterprise app and return it (credentials are generated when not given).

        ``groups`` are group titles (or ``{openConversationId: title}``) the app's robot is in;
        read their ids from ``app.groups``. Point a client at it with :meth:`app_client`.
        """
        from dingpush.emulator import DING_PERMISSION, ROBOT_PERMISSION, AppConfig

        granted = (ROBOT_PERMISSION, DING_PERMISSION) if permissions is None else permissions

        app = AppConfig(
            name,
            app_key or "ding" + secrets.token_hex(8),
            app_secret or secrets.token_urlsafe(48),
            agent_id=agent_id,
            robot_code=robot_code,
            users=tuple(users),
            # AppConfig normalises these (ids to str, titles to {openConversationId: title}).
            departments=cast(Any, dict(departments or {})),
            groups=cast(Any, groups if isinstance(groups, Mapping) else tuple(groups)),
            permissions=tuple(granted),
            token_lifetime=token_lifetime,
            flow_controlled_users=tuple(flow_controlled_users),
            notice_daily_cap=notice_daily_cap,
            api_qps=api_qps,
            oto_user_limit=oto_user_limit,
            oto_user_window=oto_user_window,
            notice_recipients_per_minute=notice_recipients_per_minute,
            paid_ding=paid_ding,
        )
        return self.emulator.add_app(app)

    def app_client(self, app: str, **options: Any) -> App:
        """Return a :class:`dingpush.App` for a registered app, pointed at this server."""
        from dingpush import App

        config = self.emulator.app(app)
        options.setdefault("api_base", self.url)
        options.setdefault("oapi_base", self.url)
        return App(config.app_key, config.app_secret, **options)

    def webhook_url(self, robot: str) -> str:
        """Return the full webhook URL of a registered robot (``…/robot/send?access_token=…``)."""
        return self.emulator.robot(robot).webhook_url(self.url)


@pytest.fixture(scope="session")
def dingtalk_emulator_server() -> Iterator[EmulatorServer]:
    """One emulator server for the whole test session; prefer ``dingtalk_emulator``."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def dingtalk_emulator(dingtalk_emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session's emulator server, emptied: no robots, messages, faults; default options.

    dingpush's process-wide rate limiters are emptied too, like the emulator's windows.
    """
    _restore(dingtalk_emulator_server)
    yield dingtalk_emulator_server
    _restore(dingtalk_emulator_server)


def _restore(server: EmulatorServer) -> None:
    from dingpush.emulator import EmulatorOptions
    from dingpush.lowlevel import reset_default_limiters

    # A request a client gave up on (a timeout) is still being answered: let it finish before
    # forgetting, or it would land in the next test.
    server.emulator.wait_idle()
    # The emulator forgets its rate windows; the clients' shared send logs must too, or a
    # test would wait for slots an earlier test used on a robot with the same token.
    reset_default_limiters()
    server.emulator.reset(robots=True)
    server.emulator.options = EmulatorOptions()
    server.emulator.clock = None
