"""The sandbox: ``dingpush serve`` with no configuration, and the one place the relay meets
the emulator.

The embedded default is a relay with an SQLite outbox in the working directory and a
``sandbox`` target whose DingTalk is an emulator mounted in the relay's own app under
``/emulator``, so everything works on a laptop with no DingTalk account. The emulator is used
through its public API (``Emulator``, ``RobotConfig``, ``create_app``); no other module of the
relay imports it (a test checks).
"""

from __future__ import annotations

import pathlib
import socket
import typing
from dataclasses import dataclass

from dingpush.serving import base_url, bind_socket

from ._fleet import Fleet, is_postgres_url
from ._relay import Relay
from ._settings import RelaySettings
from ._targets import RobotTarget, TargetOptions

if typing.TYPE_CHECKING:
    from starlette.types import ASGIApp

    # Re-exported for the annotations of the relay's other modules, which import the
    # emulator through this module only.
    from dingpush.emulator import Emulator as Emulator

__all__ = [
    "EMULATOR_PREFIX",
    "SANDBOX_INGRESS_TOKEN",
    "SANDBOX_SECRET",
    "SANDBOX_TOKEN",
    "Embedded",
    "embedded",
    "emulator_app",
]

#: Where the embedded emulator is mounted (``dingpush serve`` with no configuration).
EMULATOR_PREFIX = "/emulator"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SECRET = "SEC-sandbox-signing-secret"
#: The sandbox target's relay ingress token: a local demo value, printed at start.
SANDBOX_INGRESS_TOKEN = "sandbox-relay-token"


def emulator_app(emulator: Emulator) -> ASGIApp:
    """The emulator's ASGI app, to mount under :data:`EMULATOR_PREFIX`."""
    from dingpush.emulator import create_app

    return create_app(emulator)


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

    @property
    def pictures(self) -> str:
        """Where the embedded emulator serves its sample pictures (for link and feed cards)."""
        return f"{self.url}{EMULATOR_PREFIX}/_emulator/samples"


def embedded(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    directory: pathlib.Path | str = ".",
    settings: RelaySettings | None = None,
    sock: socket.socket | None = None,
    store: str | None = None,
) -> Embedded:
    """The embedded default: an SQLite outbox in ``directory`` and an emulator with ``sandbox``.

    The emulator is mounted in the relay's own app under ``/emulator`` and plays DingTalk for
    the ``sandbox`` target. The socket is bound here (the target's URL needs the real port),
    unless ``sock`` is given; a port in use raises :class:`dingpush.serving.PortInUse`.
    ``store`` replaces the outbox file: another path, or a ``postgresql://`` URL.
    """
    from dingpush.emulator import Emulator, RobotConfig

    from .stores import SQLiteStore

    if sock is not None and settings is None:
        host, port = sock.getsockname()[:2]
    settings = settings or RelaySettings(host=host, port=port)
    if sock is None:
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
        if store is not None and is_postgres_url(store):
            relay = Relay([target], fleet=Fleet(store), settings=settings)
        else:
            path = pathlib.Path(directory) / "dingpush-outbox.sqlite"
            if store is not None:
                path = pathlib.Path(store.removeprefix("sqlite:")).expanduser()
            relay = Relay([target], store=SQLiteStore(path), settings=settings)
    except BaseException:
        sock.close()
        raise
    return Embedded(relay, emulator, sock, url)
