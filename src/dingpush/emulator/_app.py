"""The emulator's ASGI app, assembled from per-area route lists, and serving it.

Serving goes through :mod:`dingpush.serving` (binding, uvicorn, signals), which imports
uvicorn only to serve: in-process use through ``httpx.ASGITransport`` needs Starlette alone.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dingpush.serving import ServerSettings, bind_socket
from dingpush.serving import serve as serve_app

from ._approutes import app_routes
from ._chat import chat_routes
from ._config import EmulatorOptions, RobotConfig
from ._control import control_routes
from ._robot import DropFilter, install_drop_log_filter, robot_routes
from ._samples import sample_routes
from ._state import Emulator

__all__ = ["SERVER_SETTINGS", "create_app", "serve", "serve_on"]


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
        *sample_routes(),
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

#: How the emulator is served: quiet (warnings only, no access log), no lifespan.
SERVER_SETTINGS = ServerSettings(log_level="warning", graceful_timeout=_GRACEFUL_SHUTDOWN_S)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    robots: Iterable[RobotConfig] = (),
    options: EmulatorOptions | None = None,
    ready: Callable[[str], None] | None = None,
    *,
    emulator: Emulator | None = None,
) -> None:
    """Serve an emulator until SIGTERM or Ctrl-C stops it (with ``dingpush.serving``).

    SIGTERM stops it gracefully and ``serve()`` returns; Ctrl-C (SIGINT) stops it the same
    way, then raises ``KeyboardInterrupt``. A port already in use raises
    :class:`dingpush.serving.PortInUse` (a ``ConfigError``) naming the port and its holder.

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
        stopped_by = serve_on(emulator, sock, ready=ready)
    finally:
        sock.close()
    if stopped_by == signal.SIGINT:
        raise KeyboardInterrupt


def serve_on(
    emulator: Emulator,
    sock: socket.socket,
    *,
    ready: Callable[[str], None] | None = None,
    control: Callable[[Any], None] | None = None,
    console_logging: bool = True,
) -> signal.Signals | None:
    """Serve ``emulator`` on a bound socket until stopped; return the signal that stopped it.

    ``dingpush.testing.EmulatorServer`` runs this in a thread (``control`` receives the
    uvicorn server to stop; ``console_logging=False`` leaves logging to pytest).
    """
    settings = dataclasses.replace(SERVER_SETTINGS, console_logging=console_logging)

    def served(url: str) -> None:
        emulator.base_url = url  # sessionWebhooks (§12.4) point here
        if ready is not None:
            ready(url)

    try:
        return serve_app(
            create_app(emulator),
            sock,
            settings=settings,
            ready=served,
            control=control,
            log_filters=(DropFilter(),),
        )
    finally:
        emulator.close()
