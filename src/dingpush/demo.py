"""``make run``: ``dingpush serve`` on its embedded defaults, and one message of every type
sent through the relay's API.

Run ``python -m dingpush.demo`` (or ``make run``); no DingTalk account is needed. The relay keeps
an SQLite outbox in the working directory and mounts the emulator, which plays DingTalk for a
``sandbox`` robot; it keeps serving until Ctrl+C so the messages can be inspected in the
relay's dashboard and the chat view; ``--once`` exits after sending.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import typing
import urllib.request

from . import ActionCard, At, Button, FeedCard, FeedItem, Link, Markdown, Message, Text


def sample_messages() -> list[Message]:
    """One message of every robot type, as a tour of what dingpush sends."""
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
            "https://example.com/i.png",
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
                FeedItem("Incident review", "https://example.com/1", "https://example.com/1.png"),
                FeedItem("Capacity plan", "https://example.com/2", "https://example.com/2.png"),
            ]
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dingpush.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--once", action="store_true", help="exit after sending")
    parser.add_argument("--directory", default=".", help="where the outbox file goes")
    args = parser.parse_args(argv)

    from .relay._serve import RelayServer, embedded

    setup = embedded(args.host, args.port, directory=args.directory)
    with RelayServer(setup.relay, emulator=setup.emulator, sock=setup.sock, log_level="warning"):
        print(setup.banner())
        ids = []
        for message in sample_messages():
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
