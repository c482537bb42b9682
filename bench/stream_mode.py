"""Stream mode (protocol §13) against the emulator: reconnect after a drop, chat→reply latency.

    python -m bench.stream_mode [--quick]

Side by side in one run, each client against its own app of the same emulator process:

* ``dingpush.StreamClient`` (asyncio, websockets), replying with ``StreamClient.reply`` through
  the message's sessionWebhook;
* the official ``dingtalk-stream`` 0.24.3 SDK (``DingTalkStreamClient`` with a
  ``ChatbotHandler``, replying with ``reply_text``), pointed at the emulator through its
  ``DINGTALK_OPENAPI_ENDPOINT`` variable.

Reconnect: the emulator cuts the client's connection (``POST /_emulator/stream/drop``), a person
posts at once, and the figure is the time from the cut to the handler holding the message
(the reconnection, a new ticket, and the frame). Latency: a person posts (the control API), the
handler gets the message and replies through the sessionWebhook; the figure is the time from
before the post to the reply's answer. Wall-clock time on a shared machine: noisy, read the
ratios of the same run. ``run()`` returns the rows for the harness.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import typing
from dataclasses import dataclass

import httpx

OURS = "dingpush StreamClient"
PEER = "dingtalk-stream 0.24.3 (official)"
RECONNECT_TARGET_S = 5.0


@dataclass(frozen=True)
class Row:
    client: str
    reconnect_s: list[float]
    latency_ms: list[float]


class _Emulator:
    """The control API of an emulator process: apps, people, the Stream gateway."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url + "/_emulator", timeout=30, trust_env=False)

    def add_app(self, name: str) -> tuple[str, str]:
        key, secret = f"dingbench{name}", f"bench-secret-{name}-0123456789abcdef"
        body = {"name": name, "app_key": key, "app_secret": secret, "users": ["alice"]}
        self.http.post("/apps", json={**body, "groups": ["Bench"], "api_qps": 0})
        return key, secret

    def connections(self, app: str) -> int:
        return int(self.http.get("/stream", params={"app": app}).json()["connections"])

    def drop(self, app: str) -> None:
        self.http.post("/stream/drop", json={"app": app}).raise_for_status()

    def post(self, app: str, text: str) -> None:
        body = {"app": app, "user": "alice", "text": text, "group": "Bench"}
        self.http.post("/people/post", json=body).raise_for_status()

    def wait_connected(self, app: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connections(app) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app}: the client did not connect")
            time.sleep(0.02)


class _Inbox:
    """What a handler thread received, with when, for the measuring thread to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: dict[str, float] = {}

    def put(self, text: str) -> None:
        with self._cond:
            self._seen[text] = time.perf_counter()
            self._cond.notify_all()

    def wait(self, text: str, timeout: float = 60.0) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: text in self._seen, timeout):
                raise RuntimeError(f"{text!r} never reached the handler")
            return self._seen[text]


def _run_ours(url: str, key: str, secret: str, inbox: _Inbox, stop: threading.Event) -> None:
    from dingpush import StreamClient

    async def main() -> None:
        async with StreamClient(key, secret, api_base=url) as client:

            async def consume() -> None:
                async for message in client.messages():
                    if message.text.startswith("reply"):
                        await client.reply(message, "ok")
                    inbox.put(message.text)

            task = asyncio.create_task(consume())
            while not stop.is_set():
                await asyncio.sleep(0.05)
            task.cancel()

    asyncio.run(main())


def _run_peer(url: str, key: str, secret: str, inbox: _Inbox) -> None:
    import logging

    import dingtalk_stream

    class Handler(dingtalk_stream.ChatbotHandler):  # type: ignore[misc]
        async def process(self, callback: typing.Any) -> tuple[int, str]:
            message = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
            text = message.text.content.strip()
            if text.startswith("reply"):
                self.reply_text("ok", message)
            inbox.put(text)
            return dingtalk_stream.AckMessage.STATUS_OK, "OK"

    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(key, secret))
    client.logger.setLevel(logging.CRITICAL)  # it logs every failed attempt at ERROR
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, Handler())
    # The SDK runs forever (start_forever); its thread is a daemon and ends with the process.
    asyncio.run(client.start())


def _measure(
    emulator: _Emulator, app: str, inbox: _Inbox, drops: int, messages: int
) -> tuple[list[float], list[float]]:
    latency = []
    for i in range(messages):
        text = f"reply {app} {i}"
        started = time.perf_counter()
        emulator.post(app, text)
        latency.append((inbox.wait(text) - started) * 1000)
    reconnect = []
    for i in range(drops):
        time.sleep(1.2)  # a connection that lived a while, as in production
        text = f"after drop {app} {i}"
        started = time.perf_counter()
        emulator.drop(app)
        emulator.post(app, text)
        reconnect.append(inbox.wait(text) - started)
    return reconnect, latency


def run(url: str, *, quick: bool = False) -> list[Row]:
    emulator = _Emulator(url)
    rows = []
    stop = threading.Event()
    key, secret = emulator.add_app("ours")
    inbox = _Inbox()
    ours = threading.Thread(target=_run_ours, args=(url, key, secret, inbox, stop), daemon=True)
    ours.start()
    emulator.wait_connected("ours")
    reconnect, latency = _measure(emulator, "ours", inbox, 3 if quick else 5, 5 if quick else 30)
    rows.append(Row(OURS, reconnect, latency))
    stop.set()
    ours.join(10)
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = url  # read once, when the SDK is imported
    try:
        import dingtalk_stream  # noqa: F401
    except ImportError:
        return rows
    key, secret = emulator.add_app("peer")
    inbox = _Inbox()
    peer = threading.Thread(target=_run_peer, args=(url, key, secret, inbox), daemon=True)
    peer.start()
    emulator.wait_connected("peer")
    reconnect, latency = _measure(emulator, "peer", inbox, 1 if quick else 3, 5 if quick else 30)
    rows.append(Row(PEER, reconnect, latency))
    return rows


def main() -> None:
    from bench._emulator import command_line

    command_line(
        __doc__,
        run,
        lambda row: (
            f"{row.client}: reconnect median {statistics.median(row.reconnect_s):.2f} s, "
            f"latency median {statistics.median(row.latency_ms):.1f} ms"
        ),
    )


if __name__ == "__main__":
    main()
