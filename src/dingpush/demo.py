"""``make run``: a local DingTalk emulator, one message of every type sent through the real client.

Run ``python -m dingpush.demo`` (or ``make run``); no DingTalk account is needed. The emulator
keeps serving until Ctrl+C so the messages can be inspected; ``--once`` exits after sending.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import urllib.request

from . import ActionCard, At, Button, FeedCard, FeedItem, Link, Markdown, Message, Robot, Text

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SECRET = "SEC-sandbox-signing-secret"


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
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--once", action="store_true", help="exit after sending")
    args = parser.parse_args(argv)

    from .testing import EmulatorServer

    with EmulatorServer(host=args.host, port=args.port) as server:
        server.add_robot("sandbox", token=SANDBOX_TOKEN, secret=SANDBOX_SECRET)
        webhook = server.webhook_url("sandbox")
        print(f"DingTalk emulator listening on {server.url}")
        with Robot(webhook, secret=SANDBOX_SECRET) as robot:
            for message in sample_messages():
                result = robot.send(message)
                print(f"  sent {type(message).__name__:<10} msgUuid {result.msg_uuid}")
        with urllib.request.urlopen(f"{server.url}/_emulator/messages?robot=sandbox") as reply:
            count = len(json.load(reply)["messages"])
        print(f"The emulator accepted {count} messages. See them at:")
        print(f"  {server.url}/   (the chat view: each message as DingTalk draws it)")
        print(f"  {server.url}/_emulator/messages?robot=sandbox")
        print(f"  {server.url}/_emulator/requests   (every request and its verdict)")
        print("Webhook and signing secret of the sandbox robot, for your own tries:")
        print(f"  {webhook}")
        print(f"  secret={SANDBOX_SECRET}")
        if args.once:
            return 0
        print("Press Ctrl+C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
