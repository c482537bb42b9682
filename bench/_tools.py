"""The clients under test, each sending ``count`` messages the way its users would.

Every tool is a function ``(spec, report)`` that sends the messages and calls
``report(index, ok)`` after each, where ``ok`` is what *the tool* said (a return value or the
absence of an exception) — the emulator's own counts tell what was really delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import queue
import time
import typing
import urllib.parse


class Report(typing.Protocol):
    def begin(self) -> None:
        """Start the clock: the client is built, the first message goes next."""

    def __call__(self, index: int, ok: bool) -> None:
        """Message ``index`` is done; ``ok`` is what the tool said about it."""


Tool = typing.Callable[[dict[str, typing.Any], Report], None]

TOOLS: dict[str, Tool] = {}


def tool(name: str) -> typing.Callable[[Tool], Tool]:
    def register(function: Tool) -> Tool:
        TOOLS[name] = function
        return function

    return register


def _text(spec: dict[str, typing.Any], i: int) -> str:
    return f"bench message {i}: disk usage on web-{i % 7:02d} above 90%"


@tool("dingpush")
def dingpush_sync(spec: dict[str, typing.Any], report: Report) -> None:
    from dingpush import DingPushError, Robot, RobotPool

    options: dict[str, typing.Any] = {"rate": spec["rate"], "secret": spec.get("secret")}
    urls = spec["urls"]
    sender = RobotPool(urls, **options) if len(urls) > 1 else Robot(urls[0], **options)
    with sender:
        report.begin()
        for i in range(spec["count"]):
            try:
                sender.send(_text(spec, i))
            except DingPushError:
                report(i, False)
            else:
                report(i, True)


@tool("dingpush-async")
def dingpush_async(spec: dict[str, typing.Any], report: Report) -> None:
    from dingpush import AsyncRobot, AsyncRobotPool, DingPushError

    async def main() -> None:
        options: dict[str, typing.Any] = {"rate": spec["rate"], "secret": spec.get("secret")}
        urls = spec["urls"]
        if spec.get("transport"):  # the transport scenario's alternatives
            from .transports import make

            options["transport"] = make(spec["transport"])
        sender = (
            AsyncRobotPool(urls, **options) if len(urls) > 1 else AsyncRobot(urls[0], **options)
        )
        in_flight = asyncio.Semaphore(spec.get("concurrency") or spec["count"])

        async def one(i: int) -> None:
            async with in_flight:
                try:
                    await sender.send(_text(spec, i))
                except DingPushError:
                    report(i, False)
                else:
                    report(i, True)

        async with sender:
            report.begin()
            await asyncio.gather(*(one(i) for i in range(spec["count"])))

    if spec.get("transport") == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main())


@tool("DingtalkChatbot")
def dingtalkchatbot(spec: dict[str, typing.Any], report: Report) -> None:
    from dingtalkchatbot.chatbot import DingtalkChatbot

    bot = DingtalkChatbot(spec["urls"][0], secret=spec.get("secret"))
    if spec.get("peer_limits_off"):
        bot.queue = queue.Queue()  # unbounded: its 20-a-minute sleep never triggers
    report.begin()
    for i in range(spec["count"]):
        result = bot.send_text(msg=_text(spec, i))
        report(i, isinstance(result, dict) and result.get("errcode") == 0)


@tool("apprise")
def apprise_tool(spec: dict[str, typing.Any], report: Report) -> None:
    import apprise
    from apprise.plugins.dingtalk import NotifyDingTalk

    # The plugin posts to a hard-coded https://oapi.dingtalk.com URL: point it at the emulator
    # (benchmark process only).
    parts = urllib.parse.urlsplit(spec["urls"][0])
    token = urllib.parse.parse_qs(parts.query)["access_token"][0]
    NotifyDingTalk.notify_url = f"{parts.scheme}://{parts.netloc}/robot/send?access_token={{token}}"
    if spec.get("peer_limits_off"):
        NotifyDingTalk.request_rate_per_sec = 0
    secret = spec.get("secret")
    notifier = apprise.Apprise()
    notifier.add(f"dingtalk://{secret}@{token}/" if secret else f"dingtalk://{token}/")
    report.begin()
    for i in range(spec["count"]):
        report(i, bool(notifier.notify(body=_text(spec, i))))


@tool("requests")
def requests_loop(spec: dict[str, typing.Any], report: Report) -> None:
    import requests

    secret = spec.get("secret")
    with requests.Session() as session:
        report.begin()
        for i in range(spec["count"]):
            url = spec["urls"][0]
            if secret:
                ts = str(round(time.time() * 1000))
                digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256)
                sign = urllib.parse.quote_plus(base64.b64encode(digest.digest()))
                url += f"&timestamp={ts}&sign={sign}"
            payload = {"msgtype": "text", "text": {"content": _text(spec, i)}}
            response = session.post(url, json=payload, timeout=10)
            # What a plain loop usually checks: the HTTP status.
            report(i, response.status_code == 200)


@tool("aiohttp-raw")
def aiohttp_raw(spec: dict[str, typing.Any], report: Report) -> None:
    """The floor: aiohttp alone posting the robot's JSON, 64 in flight, no dingpush, no httpx."""
    import aiohttp

    async def main() -> None:
        in_flight = asyncio.Semaphore(spec.get("concurrency") or spec["count"])
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> None:
                async with in_flight:
                    payload = {"msgtype": "text", "text": {"content": _text(spec, i)}}
                    async with session.post(spec["urls"][0], json=payload) as response:
                        body = await response.json(content_type=None)
                    report(i, body.get("errcode") == 0)

            report.begin()
            await asyncio.gather(*(one(i) for i in range(spec["count"])))

    asyncio.run(main())
