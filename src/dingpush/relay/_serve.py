"""Serving the relay, through :mod:`dingpush.serving` (the same loop as the emulator's).

``serve()`` opens the outbox *before* listening, so a bad store (a locked or foreign file)
stops start-up with its own message instead of a server that answers 503. SIGINT and SIGTERM
both stop uvicorn from accepting; open requests get ``shutdown_deadline`` seconds, then the
dispatcher stops claiming, in-flight sends get the same deadline, what is left goes back to the
queue, the outbox is closed and ``serve()`` returns (``dingpush serve`` exits 0). A second
signal stops the waiting: open requests are cut and ``Dispatcher.hurry()`` releases in-flight
sends at once (their ``msgUuid`` de-duplicates a send that landed). The signal handlers stay
in place until the relay is closed: a signal must not end the process while the dispatcher is
still handing in-flight messages back to the outbox.
"""

from __future__ import annotations

import socket
import typing
from collections.abc import Callable

from dingpush.serving import BackgroundServer, ServerSettings, bind_socket
from dingpush.serving import serve as serve_app

from ._app import create_app
from ._relay import Relay
from ._sandbox import (
    EMULATOR_PREFIX,
    SANDBOX_INGRESS_TOKEN,
    SANDBOX_SECRET,
    SANDBOX_TOKEN,
    Embedded,
    embedded,
)

if typing.TYPE_CHECKING:
    import uvicorn

    from ._sandbox import Emulator

__all__ = [
    "SANDBOX_INGRESS_TOKEN",
    "SANDBOX_SECRET",
    "SANDBOX_TOKEN",
    "Embedded",
    "RelayServer",
    "embedded",
    "serve",
]


def serve(
    relay: Relay,
    *,
    emulator: Emulator | None = None,
    sock: socket.socket | None = None,
    ready: Callable[[str], None] | None = None,
    log_level: str = "info",
    control: Callable[[uvicorn.Server], None] | None = None,
) -> None:
    """Serve ``relay`` until SIGINT/SIGTERM, then shut it down gracefully and return.

    ``ready`` gets the base URL once listening; ``control`` receives the uvicorn server before
    it starts (set ``should_exit`` to stop it from another thread, as :class:`RelayServer`
    does). Without ``sock`` the relay's ``host``/``port`` are bound; a port in use raises
    :class:`dingpush.serving.PortInUse` (a ``ConfigError``, exit status 3).
    """
    relay.settings.check_exposure()
    own = sock is None
    if sock is None:
        sock = bind_socket(relay.settings.host, relay.settings.port)
    try:
        settings = ServerSettings(
            log_level=log_level,
            lifespan=True,
            graceful_timeout=relay.settings.shutdown_deadline,
        )
        serve_app(
            _app(relay, emulator),
            sock,
            settings=settings,
            ready=ready,
            control=control,
            hurry=relay.dispatcher.hurry,
            around=lambda: relay,  # opened before serving, closed after, signals handled
        )
    finally:
        if own:
            sock.close()


def _app(relay: Relay, emulator: Emulator | None) -> typing.Any:
    from ._dashboard import dashboard_routes

    links = [("Chat view", f"{EMULATOR_PREFIX}/")] if emulator is not None else []
    dashboard = dashboard_routes(relay, links=links)
    return create_app(relay, emulator=emulator, manage=False, extra_routes=dashboard)


class RelayServer:
    """A relay served by uvicorn in a background thread (the demo and tests use it).

    ``with RelayServer(relay) as server: server.url`` — stopping it shuts the relay down
    gracefully, as SIGTERM would.
    """

    def __init__(
        self,
        relay: Relay,
        *,
        emulator: Emulator | None = None,
        sock: socket.socket | None = None,
        log_level: str = "warning",
    ) -> None:
        self.relay = relay

        def run(ready: Callable[[str], None], control: Callable[[uvicorn.Server], None]) -> None:
            serve(
                relay,
                emulator=emulator,
                sock=sock,
                ready=ready,
                log_level=log_level,
                control=control,
            )

        self._server = BackgroundServer(run, name="dingpush-relay")
        self.url = ""

    def start(self) -> RelayServer:
        self.url = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(60)

    def __enter__(self) -> RelayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
