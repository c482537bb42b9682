"""The emulator's ASGI app, assembled from per-area route lists, and serving it with uvicorn.

uvicorn is imported only to serve: in-process use through ``httpx.ASGITransport`` needs
Starlette alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._approutes import app_routes
from ._chat import chat_routes
from ._config import EmulatorOptions, RobotConfig
from ._control import control_routes
from ._robot import install_drop_log_filter, robot_routes
from ._state import Emulator

if TYPE_CHECKING:
    import uvicorn

__all__ = ["base_url", "bind_socket", "create_app", "make_server", "serve"]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Answer unknown routes and wrong methods with JSON rather than Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return JSONResponse({"error": detail, "path": request.url.path}, status_code=status)


def create_app(emulator: Emulator | None = None) -> Starlette:
    """Return the ASGI app serving ``emulator`` (a fresh one by default).

    Serve it with uvicorn, or call it in-process with ``httpx.ASGITransport(app=...)``.
    ``app.state.emulator`` holds the emulator.
    """
    emulator = emulator if emulator is not None else Emulator()
    # One list per protocol area; new areas (app robots, work notifications, media, the chat
    # view) add their own `…_routes(emulator)` here.
    routes = [
        *robot_routes(emulator),
        *app_routes(emulator),
        *control_routes(emulator),
        *chat_routes(emulator),
    ]
    install_drop_log_filter()
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error},
        middleware=[Middleware(_CountInFlight, emulator=emulator)],
    )
    app.state.emulator = emulator
    return app


class _CountInFlight:
    """Count DingTalk-side requests being answered, for :meth:`Emulator.wait_idle`.

    The emulator's own pages and API (``/``, ``/_emulator/…``) are not counted: the chat view's
    event stream stays open for as long as a page does.
    """

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self._app = app
        self._emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/" or path.startswith("/_emulator"):
            await self._app(scope, receive, send)
            return
        self._emulator.request_started()
        try:
            await self._app(scope, receive, send)
        finally:
            self._emulator.request_finished()


# Long enough for a `delay` fault in flight to finish its answer; short enough to never hang.
_GRACEFUL_SHUTDOWN_S = 5


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free port, read back with :func:`base_url`."""
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # TCP, and with Nagle on, every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Room for hundreds of clients connecting at once (a relay with 500 targets opens a
        # connection each): with 128, SYNs beyond the queue wait for retransmits, seconds.
        sock.listen(min(2048, socket.SOMAXCONN))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def base_url(sock: socket.socket) -> str:
    """Return ``http://host:port`` of a bound socket, with the real port."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def make_server(emulator: Emulator, *, log_config: bool = False) -> uvicorn.Server:
    """Return a quiet uvicorn server for the emulator app (no access log, warnings only).

    ``log_config=False`` leaves logging configuration to the host (pytest captures it);
    ``True`` lets uvicorn install its console handlers, as a standalone server wants.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    config = uvicorn.Config(
        create_app(emulator),
        log_level="warning",
        access_log=False,
        # The app sends DingTalk's own `Server` header; uvicorn's would be a second one.
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
        log_config=LOGGING_CONFIG if log_config else None,
    )
    # uvicorn configures logging while building its Config, which may replace the filter set.
    install_drop_log_filter()
    return uvicorn.Server(config)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    robots: Iterable[RobotConfig] = (),
    options: EmulatorOptions | None = None,
    ready: Callable[[str], None] | None = None,
    *,
    emulator: Emulator | None = None,
) -> None:
    """Serve an emulator until interrupted (Ctrl-C raises ``KeyboardInterrupt`` after shutdown).

    Args:
        host: Interface to listen on.
        port: TCP port; 0 picks a free one, and ``ready`` receives the real one.
        robots: Robots to register (ignored when ``emulator`` is given).
        options: Behaviour options (ignored when ``emulator`` is given).
        ready: Called once with the base URL (``http://127.0.0.1:43121``) when serving.
        emulator: An emulator to serve instead of a new one.
    """
    if emulator is None:
        emulator = Emulator(options=options, robots=robots)
    sock = bind_socket(host, port)
    try:
        server = make_server(emulator, log_config=True)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run_server(server, sock, ready))
    finally:
        sock.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when the ``emulator`` extra brought it (about 15% more requests a second)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run_server(
    server: uvicorn.Server, sock: socket.socket, ready: Callable[[str], None] | None
) -> None:
    """Serve on ``sock`` until ``server`` stops; ``ready`` gets the base URL once listening.

    The relay's ``serve()`` runs its server through here too.
    """
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started and ready is not None:
        ready(base_url(sock))
    await task
