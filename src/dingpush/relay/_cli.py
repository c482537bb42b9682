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

if typing.TYPE_CHECKING:
    from ._relay import Relay

__all__ = ["banner", "run"]

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
        for line in banner(relay, url, origin):
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


def banner(relay: object, url: str, origin: str) -> list[str]:
    """The lines ``dingpush serve`` prints once listening: every URL, and what is switched on.

    Names, URLs and switches only: no token, secret or password (an Alertmanager URL's
    password is masked; ack links and callbacks are named by their path).
    """
    from ._relay import Relay

    assert isinstance(relay, Relay)
    signin = "sign in with an API token" if relay.settings.api_tokens else "open on loopback"
    lines = [
        f"dingpush relay listening on {url}  (API docs {url}/docs; configuration {origin})",
        f"  dashboard: {url}/  ({signin})",
    ]
    for name, target in sorted(relay.targets.items()):
        ingress = " (ingress: /robot/send?access_token=…)" if target.options.ingress_token else ""
        lines.append(f"  target {name}: {target.kind} → {target.destination}{ingress}")
    lines += _oncall_lines(relay, url)
    lines.append(f"  outbox: {relay.store!r}  (pid {os.getpid()})")
    return lines


def _oncall_lines(relay: Relay, url: str) -> list[str]:
    """The Alerts page, escalation, ack links and chat: on or off, and where."""
    from ._commands import format_duration

    public = (relay.settings.public_url or url).rstrip("/")
    lines = []
    if relay.alerts is not None:
        lines.append(f"  alerts: {url}/ui/alerts  (incidents: acknowledge, recall, timeline)")
        policies = sorted(set(relay.alerts.policies.values()))
        if relay.escalation is not None and policies:
            routes = len(relay.alerts.policies)
            lines.append(
                f"  escalation: on  (polic{'y' if len(policies) == 1 else 'ies'} "
                f"{', '.join(policies)} on {routes} route{'' if routes == 1 else 's'})"
            )
        else:
            lines.append("  escalation: off  (no route names a policy; see docs/oncall.md)")
        if relay.ack_links is not None:
            ttl = format_duration(relay.settings.ack_link_ttl)
            lines.append(f"  ack links: on  ({public}/ack/N/…, signed, valid {ttl})")
        else:
            lines.append("  ack links: off  (set ack_secret and public_url under [relay])")
    chat = relay.chat
    if chat is not None:
        for name in sorted(chat.apps):
            callback = f"{public}/callbacks/{name}"
            lines.append(
                f"  chat {name}: Stream mode (no public URL needed); callback URL {callback} too"
                if chat.mode == "stream"
                else f"  chat {name}: callback URL {callback}  (the robot's message receiving URL)"
            )
        host = urllib.parse.urlsplit(public).hostname or ""
        if chat.mode != "stream" and is_loopback(host):  # copied into the console, never called
            lines.append(
                "  chat: DingTalk cannot call a loopback address: set public_url under [relay] "
                '(an HTTPS name DingTalk reaches), or receive = "stream"'
            )
        silences = relay.silences
        lines.append(
            f"  silences: Alertmanager at {silences.url}"
            if silences is not None
            else "  silences: off  (set alertmanager_url under [relay])"
        )
    return lines
