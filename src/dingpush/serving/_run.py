"""Running a server: the event loop, start-wait-ready, signals and a graceful stop.

``serve()`` is the one loop both the relay and the emulator run, in the foreground (a command)
or in a thread (:class:`BackgroundServer`, for tests and the demo):

1. an event loop from :func:`loop_factory` (uvloop when the extra brought it);
2. SIGINT and SIGTERM handled by :func:`stop_on_signals` for the server's whole life, around
   whatever the app must open before and close after serving (the relay's outbox);
3. uvicorn started on an already bound socket, ``ready(url)`` called once it accepts;
4. the first signal stops accepting, open requests get the graceful timeout; a second one
   cuts them and calls ``hurry`` (the relay then releases its in-flight sends at once).

``serve()`` returns the signal that stopped it (``None`` when stopped by ``should_exit``), so a
command exits 0 instead of dying by the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ._settings import ServerSettings
from ._socket import base_url

if typing.TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

__all__ = [
    "SIGNALS",
    "BackgroundServer",
    "Stops",
    "loop_factory",
    "run_server",
    "serve",
    "stop_on_signals",
]

log = logging.getLogger("dingpush.serving")

#: The signals that stop a server gracefully (Ctrl+C; ``kill``, systemd, ``docker stop``).
SIGNALS = (signal.SIGINT, signal.SIGTERM)

Ready = Callable[[str], None]
Control = Callable[["uvicorn.Server"], None]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when the extra brought it (about 15% more requests a second)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@dataclass
class Stops:
    """The signals received while :func:`stop_on_signals` was in force, in order."""

    received: list[signal.Signals] = field(default_factory=list)

    @property
    def first(self) -> signal.Signals | None:
        """The signal that stopped the server, if one did."""
        return self.received[0] if self.received else None


@contextlib.contextmanager
def stop_on_signals(
    server: uvicorn.Server, *, hurry: Callable[[], None] | None = None
) -> Iterator[Stops]:
    """While inside, SIGINT/SIGTERM stop ``server``; a second one cuts open requests too.

    ``hurry`` runs on the event loop at the second signal (the relay stops waiting for its
    in-flight sends). The handlers stay until the block ends, so a signal cannot kill the
    process while what was served is still being closed. Outside the main thread signals
    cannot be handled and nothing is installed.
    """
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    loop = asyncio.get_running_loop()

    def handle(number: int, frame: types.FrameType | None) -> None:
        # Runs between two bytecodes of whatever the main thread was doing: set flags, and
        # leave the rest (logging, the hurry callback) to the event loop.
        stops.received.append(signal.Signals(number))
        if len(stops.received) == 1:
            server.should_exit = True
        else:
            server.force_exit = True
            if hurry is not None:
                loop.call_soon_threadsafe(hurry)
        loop.call_soon_threadsafe(_report, number, len(stops.received))

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield stops
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(number: int, count: int) -> None:
    name = signal.Signals(number).name
    if count == 1:
        log.info("%s: stopping gracefully (send it again to stop waiting)", name)
    else:
        log.warning("%s again: cutting open requests and not waiting any longer", name)


async def run_server(server: uvicorn.Server, sock: socket.socket, ready: Ready | None) -> None:
    """Serve on ``sock`` until ``server`` stops; ``ready`` gets the base URL once listening."""
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started and ready is not None:
        ready(base_url(sock))
    await task


def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    settings: ServerSettings | None = None,
    ready: Ready | None = None,
    control: Control | None = None,
    hurry: Callable[[], None] | None = None,
    around: Callable[[], contextlib.AbstractAsyncContextManager[object]] | None = None,
    log_filters: tuple[logging.Filter, ...] = (),
) -> signal.Signals | None:
    """Serve ``app`` on the bound ``sock`` until a signal or ``should_exit`` stops it.

    Args:
        app: The ASGI app.
        sock: A listening socket (:func:`~dingpush.serving.bind_socket`); the caller closes it.
        settings: uvicorn's settings (:class:`ServerSettings`).
        ready: Called once with the base URL (``http://127.0.0.1:8080``) when accepting.
        control: Receives the uvicorn server before it starts; set its ``should_exit`` to
            stop it from another thread.
        hurry: Called at a second signal (see :func:`stop_on_signals`).
        around: An async context manager entered before serving and left after it, with the
            signal handlers in place throughout (the relay: open the outbox, start delivering;
            then stop and close).
        log_filters: Extra filters for uvicorn's error logger (the emulator's drop faults).

    Returns:
        The signal that stopped the server, or ``None``.
    """
    from ._uvicorn import make_server

    async def main() -> signal.Signals | None:
        server = make_server(app, settings or ServerSettings(), log_filters=log_filters)
        if control is not None:
            control(server)
        with stop_on_signals(server, hurry=hurry) as stops:
            async with around() if around is not None else contextlib.nullcontext():
                await run_server(server, sock, ready)
        return stops.first

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main())


class BackgroundServer:
    """A server run by :func:`serve` (or anything like it) in a daemon thread.

    ``run(ready, control)`` must serve until stopped, calling ``ready(url)`` once accepting
    and ``control(server)`` with the uvicorn server; :meth:`stop` sets its ``should_exit``.

        server = BackgroundServer(lambda ready, control: serve(app, sock, ready=ready,
                                  control=control), name="my-server")
        url = server.start()
        ...
        server.stop()
    """

    def __init__(
        self,
        run: Callable[[Ready, Control], object],
        *,
        name: str,
        startup_timeout: float = 30.0,
    ) -> None:
        self._run = run
        self._name = name
        self._startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url: str | None = None

    def __repr__(self) -> str:
        return f"<BackgroundServer {self._name} {self.url or 'stopped'}>"

    def start(self) -> str:
        """Start the thread and wait until the server accepts; return its base URL.

        Raises ``RuntimeError`` (from what failed, if something raised) when it does not.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait(self._startup_timeout)
        if self._error is not None or self.url is None:
            error = self._error
            self.stop()
            raise RuntimeError(f"{self._name} did not start: {error!r}") from error
        return self.url

    def _main(self) -> None:
        try:
            self._run(self._on_ready, self._on_server)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    def _on_server(self, server: uvicorn.Server) -> None:
        self._server = server

    def _on_ready(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving and wait for the thread (``timeout`` seconds at most); idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
        self.url = None
