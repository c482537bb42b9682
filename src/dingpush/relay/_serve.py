"""Serving the relay with uvicorn, and the embedded default of ``dingpush serve``.

``serve()`` opens the outbox *before* listening, so a bad store (a locked or foreign file)
stops start-up with its own message instead of a server that answers 503. SIGINT and SIGTERM
both stop uvicorn from accepting; open requests get ``shutdown_deadline`` seconds, then the
dispatcher stops claiming, in-flight sends get the same deadline, what is left goes back to the
queue, the outbox is closed and ``serve()`` returns (``dingpush serve`` exits 0). A second
signal stops the waiting (see ``_shutdown.py``, which also says why uvicorn's own signal
handling is not used).
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass

from ._app import EMULATOR_PREFIX, create_app
from ._relay import Relay
from ._settings import RelaySettings
from ._targets import RobotTarget, TargetOptions

if typing.TYPE_CHECKING:
    import uvicorn

    from dingpush.emulator import Emulator

__all__ = ["Embedded", "RelayServer", "embedded", "serve"]

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SECRET = "SEC-sandbox-signing-secret"
#: The sandbox target's relay ingress token: a local demo value, printed at start.
SANDBOX_INGRESS_TOKEN = "sandbox-relay-token"


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
    does).
    """
    from dingpush.emulator._app import _loop_factory, bind_socket

    relay.settings.check_exposure()
    own = sock is None
    if sock is None:
        sock = bind_socket(relay.settings.host, relay.settings.port)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(relay, emulator, sock, ready, log_level, control))
    finally:
        if own:
            sock.close()


def _server(relay: Relay, emulator: Emulator | None, log_level: str) -> uvicorn.Server:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from ._dashboard import dashboard_routes
    from ._shutdown import QuietServer

    links = [("Chat view", f"{EMULATOR_PREFIX}/")] if emulator is not None else []
    dashboard = dashboard_routes(relay, links=links)
    app = create_app(relay, emulator=emulator, manage=False, extra_routes=dashboard)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=max(int(relay.settings.shutdown_deadline), 1),
        log_config=LOGGING_CONFIG,
        backlog=2048,
    )
    return QuietServer(config)


async def _serve(
    relay: Relay,
    emulator: Emulator | None,
    sock: socket.socket,
    ready: Callable[[str], None] | None,
    log_level: str,
    control: Callable[[uvicorn.Server], None] | None = None,
) -> None:
    from dingpush.emulator._app import run_server

    from ._shutdown import stop_on_signals

    server = _server(relay, emulator, log_level)
    if control is not None:
        control(server)
    # The handlers stay in place until the relay is closed: a signal must not end the process
    # while the dispatcher is still handing in-flight messages back to the outbox.
    with stop_on_signals(server, relay.dispatcher):
        await relay.start()
        try:
            await run_server(server, sock, ready)
        finally:
            await relay.aclose()


@dataclass
class Embedded:
    """``dingpush serve`` with no configuration: a relay, an emulator and the bound socket."""

    relay: Relay
    emulator: Emulator
    sock: socket.socket
    url: str

    def banner(self) -> str:
        """The lines printed at start: every URL a newcomer needs."""
        ingress = f"{self.url}/robot/send?access_token={SANDBOX_INGRESS_TOKEN}"
        return "\n".join(
            [
                f"dingpush relay listening on {self.url}  (API docs {self.url}/docs)",
                f"  dashboard: {self.url}/  (targets, messages, retries)",
                f"  send:      POST {self.url}/v1/messages "
                '{"target": "sandbox", "message": {...}}',
                f"  ingress:   {ingress}",
                f"  chat view: {self.url}{EMULATOR_PREFIX}/  (the embedded DingTalk emulator)",
                f"  outbox:    {self.relay.store!r}",
            ]
        )


def embedded(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    directory: pathlib.Path | str = ".",
    settings: RelaySettings | None = None,
) -> Embedded:
    """The embedded default: an SQLite outbox in ``directory`` and an emulator with ``sandbox``.

    The emulator is mounted in the relay's own app under ``/emulator`` and plays DingTalk for
    the ``sandbox`` target, so everything works on a laptop with no DingTalk account.
    """
    from dingpush.emulator import Emulator, RobotConfig
    from dingpush.emulator._app import base_url, bind_socket

    from .stores import SQLiteStore

    settings = settings or RelaySettings(host=host, port=port)
    sock = bind_socket(settings.host, settings.port)
    try:
        url = base_url(sock)
        emulator = Emulator(
            robots=[RobotConfig("sandbox", SANDBOX_TOKEN, secret=SANDBOX_SECRET, group="sandbox")]
        )
        target = RobotTarget(
            "sandbox",
            f"{url}{EMULATOR_PREFIX}/robot/send?access_token={SANDBOX_TOKEN}",
            secret=SANDBOX_SECRET,
            options=TargetOptions(ingress_token=SANDBOX_INGRESS_TOKEN),
            description="the embedded emulator's sandbox group",
        )
        store = SQLiteStore(pathlib.Path(directory) / "dingpush-outbox.sqlite")
        relay = Relay([target], store=store, settings=settings)
    except BaseException:
        sock.close()
        raise
    return Embedded(relay, emulator, sock, url)


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
        self._emulator = emulator
        self._sock = sock
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""

    def start(self) -> RelayServer:
        def run() -> None:
            try:
                serve(
                    self.relay,
                    emulator=self._emulator,
                    sock=self._sock,
                    ready=self._on_ready,
                    log_level=self._log_level,
                    control=self._on_server,
                )
            except BaseException as exc:
                self._error = exc
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name="dingpush-relay", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            self.stop()
            raise RuntimeError(f"the relay did not start: {self._error!r}") from self._error
        return self

    def _on_server(self, server: uvicorn.Server) -> None:
        self._server = server

    def _on_ready(self, url: str) -> None:
        self.url = url
        self._ready.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)
        self._server = self._thread = None

    def __enter__(self) -> RelayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
