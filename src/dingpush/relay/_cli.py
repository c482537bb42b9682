"""What ``dingpush serve`` and ``python -m dingpush.relay`` do, shared by both entry points."""

from __future__ import annotations

import os
import sys
import typing
import urllib.parse
from collections.abc import Callable

from dingpush.serving import CannotListen, bind_socket

from ._logging import relay_log_lines
from ._serve import embedded, serve
from ._settings import is_loopback

__all__ = ["run"]

_PORT_HINT = "choose another port with --port (0 picks a free one)"


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(
    *,
    config: str | None = None,
    host: str | None = None,
    port: int | None = None,
    directory: str = ".",
    store: str | None = None,
    echo: Callable[[str], None] = _print,
) -> int:
    """Serve the relay until interrupted; the embedded sandbox when there is no configuration.

    A configuration file is looked up like the CLI's (``--config``, ``$DINGPUSH_CONFIG``,
    ``./dingpush.toml``, the user's); with none, the relay runs on embedded defaults: an
    SQLite outbox in ``directory`` and the emulator, mounted in the same process, playing
    DingTalk for a ``sandbox`` target. ``store`` replaces the outbox of either (a file, or a
    ``postgresql://`` URL: the relay becomes one instance of a fleet on that database).
    """
    from ._config import load_relay

    loaded = load_relay(config, host=host, port=port, store=store)
    if loaded is None:
        try:
            setup = embedded(
                host or "127.0.0.1",
                8080 if port is None else port,
                directory=directory,
                store=store,
            )
        except CannotListen as exc:
            raise exc.with_hint(_PORT_HINT) from None
        with relay_log_lines():
            serve(
                setup.relay,
                emulator=setup.emulator,
                sock=setup.sock,
                ready=lambda url: echo(setup.banner()),
            )
        return 0
    relay, origin = loaded

    def ready(url: str) -> None:
        echo(f"dingpush relay listening on {url}  (API docs {url}/docs; configuration {origin})")
        signin = "sign in with an API token" if relay.settings.api_tokens else "open on loopback"
        echo(f"  dashboard: {url}/  ({signin})")
        for line in _target_lines(relay, url):
            echo(line)

    relay.settings.check_exposure()
    try:
        sock = bind_socket(relay.settings.host, relay.settings.port)
    except CannotListen as exc:
        hint = _PORT_HINT
        if port is None:  # the port came from the file (or its default)
            hint = f"choose another port with --port, or port = … under [relay] in {origin}"
            hint += " (0 picks a free one)"
        raise exc.with_hint(hint) from None
    try:
        with relay_log_lines():
            serve(relay, sock=sock, ready=ready)
    finally:
        sock.close()
    return 0


def _target_lines(relay: object, url: str) -> list[str]:
    from ._relay import Relay

    assert isinstance(relay, Relay)
    lines = []
    for name, target in sorted(relay.targets.items()):
        ingress = " (ingress: /robot/send?access_token=…)" if target.options.ingress_token else ""
        lines.append(f"  target {name}: {target.kind} → {target.destination}{ingress}")
    lines += _oncall_lines(relay, url)
    lines.append(f"  outbox: {relay.store!r}  (pid {os.getpid()})")
    return lines


def _oncall_lines(relay: typing.Any, url: str) -> list[str]:
    """Where chat commands come in, where silences go, what ack links start with.

    A newcomer learns here the URL to give the developer console, and that ``@robot silence``
    or the links are off, instead of finding out from a silent chat.
    """
    lines = []
    chat = relay.chat
    if chat is not None:
        base = relay.settings.public_url or url
        unreachable = chat.mode != "stream" and is_loopback(
            urllib.parse.urlsplit(base).hostname or ""
        )
        for name in sorted(chat.apps):
            stream = "Stream mode, and " if chat.mode == "stream" else ""
            lines.append(
                f"  chat:      app {name}: {stream}HTTP mode at {base.rstrip('/')}/callbacks/"
                f"{name}  (@robot ack, silence, status, help)"
            )
        if unreachable:
            lines.append(
                "             DingTalk cannot call a loopback address: set public_url in [relay] "
                '(an HTTPS name DingTalk reaches), or receive = "stream"'
            )
        if relay.silences is None:
            lines.append("  silences:  off: set alertmanager_url in [relay] for @robot silence")
        else:
            lines.append(f"  silences:  Alertmanager at {relay.silences.url}")
    if relay.ack_links is not None:
        lines.append(f"  ack links: {relay.ack_links.public_url}/ack/N/… in webhook-robot alerts")
    elif relay.escalation is not None and any(
        t.kind in ("robot", "pool") for t in relay.targets.values()
    ):
        lines.append(
            "  ack links: off: webhook-robot groups cannot answer @robot ack, only the "
            "dashboard can; set ack_secret and public_url in [relay]"
        )
    return lines
