"""``make run``: ``dingpush serve`` on its embedded defaults, and one message of every type
sent through the relay's API.

Run ``python -m dingpush.demo`` (or ``make run``); no DingTalk account is needed. The relay keeps
an SQLite outbox in the working directory and mounts the emulator, which plays DingTalk for a
``sandbox`` robot; it keeps serving until Ctrl+C so the messages can be inspected in the
relay's dashboard and the chat view; ``--once`` exits after sending. It listens on 8080, or,
when that port is taken, on the next free one (and says so); ``--port N`` insists on N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
import typing
import urllib.request

from . import ActionCard, At, Button, FeedCard, FeedItem, Link, Markdown, Message, Text

#: The port ``make run`` listens on when it is free.
DEFAULT_PORT = 8080
#: How many ports after it are tried when it is not.
_PORTS_TRIED = 20


def sample_messages(pictures: str = "https://example.com") -> list[Message]:
    """One message of every robot type, as a tour of what dingpush sends.

    ``pictures`` is where the link and feed cards' pictures are: the emulator's sample
    pictures (``…/_emulator/samples``, with ``release.png``, ``incident.png`` and
    ``capacity.png``) draw in the chat view with no internet.
    """
    pictures = pictures.rstrip("/")
    return [
        Text("dingpush demo: plain text with a mention", at=At(mobiles=["13800000000"])),
        Markdown(
            "Deploy finished",
            "### Deploy v2.3 finished\n> web-01, web-02: **ok**\n\n- 12 migrations\n- 0 errors\n\n"
            "[changelog](https://example.com/changelog)",
            at=At(user_ids=["ops-lead"]),
        ),
        Link(
            "Release 2.3",
            "Changelog and rollout plan",
            "https://example.com/r/2.3",
            f"{pictures}/release.png",
        ),
        ActionCard(
            "Approve deploy?",
            "### Deploy v2.3\nProduction, 14:00",
            button=Button("Open the pipeline", "https://example.com/deploy"),
        ),
        ActionCard(
            "Vote",
            "Ship it today?",
            buttons=[Button("Yes", "https://example.com/y"), Button("No", "https://example.com/n")],
            orientation="horizontal",
        ),
        FeedCard(
            [
                FeedItem("Incident review", "https://example.com/1", f"{pictures}/incident.png"),
                FeedItem("Capacity plan", "https://example.com/2", f"{pictures}/capacity.png"),
            ]
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dingpush.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default {DEFAULT_PORT}, or the next free one); 0 picks a free port",
    )
    parser.add_argument("--once", action="store_true", help="exit after sending")
    parser.add_argument("--directory", default=".", help="where the outbox file goes")
    args = parser.parse_args(argv)

    from .relay._serve import RelayServer, embedded
    from .serving import CannotListen

    try:
        sock, note = listen(args.host, args.port)
    except CannotListen as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if note:
        print(note)
    setup = embedded(args.host, directory=args.directory, sock=sock)
    with RelayServer(setup.relay, emulator=setup.emulator, sock=setup.sock, log_level="warning"):
        print(setup.banner())
        ids = []
        for message in sample_messages(setup.pictures):
            body = json.dumps({"target": "sandbox", "message": message.to_payload()}).encode()
            answer = _call(f"{setup.url}/v1/messages", body)
            ids.append(answer["id"])
            print(f"  sent {type(message).__name__:<10} through the relay: id {answer['id']}")
        delivered = _wait_delivered(setup.url, ids)
        count = len(setup.emulator.messages(robot="sandbox"))
        print(f"The relay delivered {delivered} of {len(ids)}; ", end="")
        print(f"the emulator accepted {count} messages.")
        print(f"  {setup.url}/   (the relay's dashboard: targets, messages, attempts, retries)")
        print(f"  {setup.url}/emulator/   (the chat view: each message as DingTalk draws it)")
        print(f"  {setup.url}/v1/messages   (the relay's outbox: status, attempts, digests)")
        print(f"  {setup.url}/emulator/_emulator/messages?robot=sandbox")
        if args.once:
            return 0
        print("Press Ctrl+C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def listen(host: str, port: int | None) -> tuple[socket.socket, str | None]:
    """Bind the demo's socket: ``port`` when given; else 8080, or the next free port.

    Returns the socket and, when another port than 8080 was taken, the line that says so.
    Raises :class:`dingpush.serving.CannotListen` (exit status 3) when ``port`` is taken.
    """
    from .serving import PortInUse, bind_socket

    hint = "choose another port with --port (0 picks a free one)"
    if port is not None:
        return bind_socket(host, port, hint=hint), None
    first: PortInUse | None = None
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + _PORTS_TRIED):
        try:
            sock = bind_socket(host, candidate, hint=hint)
        except PortInUse as exc:
            first = first or exc
            continue
        if first is None:
            return sock, None
        holder = f" by {first.holder}" if first.holder else ""
        return sock, (
            f"Port {DEFAULT_PORT} is already in use{holder}: listening on {candidate} instead "
            "(--port N chooses one)."
        )
    assert first is not None
    raise first


def _call(url: str, body: bytes | None = None) -> dict[str, typing.Any]:
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST" if body else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return typing.cast(dict[str, typing.Any], json.load(reply))


def _wait_delivered(url: str, ids: list[str], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    delivered = 0
    while time.monotonic() < deadline:
        statuses = [_call(f"{url}/v1/messages/{i}")["status"] for i in ids]
        delivered = statuses.count("delivered")
        if delivered == len(ids) or "failed" in statuses:
            break
        time.sleep(0.1)
    return delivered


if __name__ == "__main__":
    sys.exit(main())
