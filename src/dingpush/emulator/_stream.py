"""The Stream-mode gateway (protocol §13): a WebSocket server of its own, as on DingTalk.

DingTalk's ``connections/open`` hands out ``wss://wss-open-connection.dingtalk.com/connect``
and a ticket; here the endpoint is a ``websockets`` server on its own loopback port, run in a
thread of its own (started by the first ``connections/open``), so that tests can cut a
connection in the middle of a frame (§13.4 sketch, [U] where DingTalk does not say):

* a ticket is single-use and expires after ``stream_ticket_lifetime`` seconds (§13.4.1);
* frames go only to connections subscribed to their topic (``EVENT`` ``*`` matches all), each
  with a fresh ``messageId`` (§13.4.2);
* acks are matched by ``messageId``; an unacked frame is sent again after
  ``stream_redelivery_after`` seconds with the same ``messageId`` (§13.3, about 60 s), and a
  frame in flight when its connection drops waits for the app's next connection;
* a ``SYSTEM`` ``ping`` frame goes out every ``stream_ping_interval`` seconds (§13.2);
  ``disconnect`` asks the client to reconnect.

Thread-safety: every method but the connection handler may be called from any thread; the
state is under ``self._lock`` and frames reach a connection through its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._json import loads

__all__ = ["BOT_TOPIC", "StreamGateway", "StreamSettings"]

#: §13.2: the topic robot messages arrive on.
BOT_TOPIC = "/v1.0/im/bot/messages/get"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The gateway's timings (``EmulatorOptions`` carries them)."""

    redelivery_after: float = 60.0
    ping_interval: float = 60.0
    ticket_lifetime: float = 90.0


@dataclass(slots=True)
class _Frame:
    message_id: str
    topic: str
    kind: str  # CALLBACK | EVENT | SYSTEM
    data: str
    sent_at: float = 0.0
    deliveries: int = 0

    def text(self, app_key: str, connection_id: str) -> str:
        headers = {
            "appId": app_key,
            "connectionId": connection_id,
            "contentType": "application/json",
            "messageId": self.message_id,
            "time": str(int(time.time() * 1000)),
            "topic": self.topic,
        }
        frame = {"specVersion": "1.0", "type": self.kind, "headers": headers, "data": self.data}
        return json.dumps(frame, ensure_ascii=False)


@dataclass(slots=True)
class _Ticket:
    app: str
    app_key: str
    subscriptions: tuple[tuple[str, str], ...]
    expires_at: float


@dataclass(eq=False, slots=True)
class _Connection:
    id: str
    app: str
    app_key: str
    subscriptions: tuple[tuple[str, str], ...]
    ws: Any
    queue: asyncio.Queue[_Frame | None]
    unacked: dict[str, _Frame] = field(default_factory=dict)
    ignore_acks: int = 0
    acks: int = 0
    #: Cut the connection halfway through the next frame it sends.
    cut_next: bool = False

    def wants(self, kind: str, topic: str) -> bool:
        for sub_kind, sub_topic in self.subscriptions:
            if sub_kind == kind and sub_topic in (topic, "*"):
                return True
        return False


class StreamGateway:
    """Tickets, connections and frames of the Stream gateway; see the module docstring."""

    def __init__(self, settings: Callable[[], StreamSettings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._tickets: dict[str, _Ticket] = {}
        self._connections: dict[str, _Connection] = {}
        #: Frames of an app with no connection to take them, in order.
        self._pending: dict[str, list[_Frame]] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._port = 0
        #: Connections opened, for tests and benchmarks.
        self.opened = 0
        #: Frames sent again, unacked (§13.3).
        self.redelivered = 0
        self._ignore_acks: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def endpoint(self) -> str:
        """The ``ws://`` URL of the gateway, starting it on first use."""
        with self._lock:
            if self._thread is None:
                started = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(started,), name="emulator-stream", daemon=True
                )
                self._thread.start()
                if not started.wait(10):
                    raise RuntimeError("the emulator's Stream gateway did not start")
            return f"ws://127.0.0.1:{self._port}/connect"

    def _run(self, started: threading.Event) -> None:
        from websockets.asyncio.server import serve

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            async with serve(self._handle, "127.0.0.1", 0, ping_interval=None) as server:
                self._server = server
                self._port = next(iter(server.sockets)).getsockname()[1]
                started.set()
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())

    def close(self) -> None:
        """Stop the gateway (its thread and every connection)."""
        with self._lock:
            loop, thread, server = self._loop, self._thread, self._server
            self._thread = self._loop = self._server = None
        if loop is not None and server is not None:
            loop.call_soon_threadsafe(server.close)
        if thread is not None:
            thread.join(10)

    def reset(self) -> None:
        """Forget tickets and waiting frames; drop every connection."""
        with self._lock:
            self._tickets.clear()
            self._pending.clear()
            self._ignore_acks.clear()
            self.opened = self.redelivered = 0
        self.drop()

    # -- §13.1 open --------------------------------------------------------------------------

    def issue_ticket(
        self, app: str, app_key: str, subscriptions: tuple[tuple[str, str], ...], now: float
    ) -> str:
        ticket = secrets.token_hex(16)
        expires = now + self._settings().ticket_lifetime
        with self._lock:
            self._tickets[ticket] = _Ticket(app, app_key, subscriptions, expires)
        return ticket

    # -- frames ------------------------------------------------------------------------------

    def push(self, app: str, topic: str, data: Mapping[str, Any], *, kind: str = "CALLBACK") -> str:
        """Queue a frame for ``app``'s connections subscribed to ``topic``; its messageId."""
        frame = _Frame(
            f"emu-{next(self._ids)}-{secrets.token_hex(4)}",
            topic,
            kind,
            json.dumps(dict(data), ensure_ascii=False),
        )
        with self._lock:
            targets = [c for c in self._connections.values() if c.app == app]
            targets = [c for c in targets if c.wants(kind, topic)]
            if not targets:
                self._pending.setdefault(app, []).append(frame)
                return frame.message_id
            # One connection of the app gets it (DingTalk spreads frames over an app's clients;
            # how is not documented [U]): the first, here.
            self._send_soon(targets[0], frame)
        return frame.message_id

    def _send_soon(self, connection: _Connection, frame: _Frame | None) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(connection.queue.put_nowait, frame)

    def connections(self, app: str | None = None) -> int:
        with self._lock:
            return sum(1 for c in self._connections.values() if app in (None, c.app))

    def pending(self, app: str) -> int:
        """Frames of ``app`` not acked yet: waiting for a connection, or sent and unacked."""
        with self._lock:
            sent = sum(len(c.unacked) for c in self._connections.values() if c.app == app)
            return len(self._pending.get(app, ())) + sent

    def ignore_acks(self, app: str, count: int) -> None:
        """Ignore the next ``count`` acks of ``app`` (to test redelivery, §13.3)."""
        with self._lock:
            self._ignore_acks[app] = count
            for connection in self._connections.values():
                if connection.app == app:
                    connection.ignore_acks = count

    def drop(self, app: str | None = None, *, mid_frame: bool = False) -> int:
        """Cut ``app``'s connections (all when None) now; with ``mid_frame``, halfway through
        the next frame each sends instead. Unacked frames wait for the next connection."""
        with self._lock:
            targets = [c for c in self._connections.values() if app in (None, c.app)]
            loop = self._loop
            if mid_frame:
                for connection in targets:
                    connection.cut_next = True
                return len(targets)
        if loop is None:
            return 0
        for connection in targets:
            asyncio.run_coroutine_threadsafe(self._cut(connection, None), loop)
        return len(targets)

    def disconnect(self, app: str) -> None:
        """Send the SYSTEM ``disconnect`` frame (§13.2): the client should reconnect."""
        frame = _Frame(f"emu-sys-{next(self._ids)}", "disconnect", "SYSTEM", "{}")
        with self._lock:
            targets = [c for c in self._connections.values() if c.app == app]
        for connection in targets:
            self._send_soon(connection, frame)

    async def _cut(self, connection: _Connection, text: str | None) -> None:
        """Abort the TCP connection; with ``text``, after half of a frame carrying it."""
        transport = connection.ws.transport
        if text is not None:
            payload = text.encode()
            # A server frame, unmasked (RFC 6455 §5.2): FIN+text, the length, half the payload.
            if len(payload) < 126:
                header = bytes([0x81, len(payload)])
            elif len(payload) < 65536:
                header = bytes([0x81, 126]) + struct.pack("!H", len(payload))
            else:
                header = bytes([0x81, 127]) + struct.pack("!Q", len(payload))
            transport.write(header + payload[: max(1, len(payload) // 2)])
        transport.abort()

    # -- a connection ------------------------------------------------------------------------

    async def _handle(self, ws: Any) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path).query)
        ticket_id = (query.get("ticket") or [""])[0]
        with self._lock:
            ticket = self._tickets.pop(ticket_id, None)
        if ticket is None or ticket.expires_at < time.time():
            await ws.close(4001, "invalid or expired ticket")
            return
        connection = _Connection(
            secrets.token_hex(8),
            ticket.app,
            ticket.app_key,
            ticket.subscriptions,
            ws,
            asyncio.Queue(),
        )
        with self._lock:
            self._connections[connection.id] = connection
            connection.ignore_acks = self._ignore_acks.get(ticket.app, 0)
            waiting = self._pending.pop(ticket.app, [])
            keep = [f for f in waiting if not connection.wants(f.kind, f.topic)]
            if keep:
                self._pending[ticket.app] = keep
            self.opened += 1
        for frame in waiting:
            if connection.wants(frame.kind, frame.topic):
                connection.queue.put_nowait(frame)
        tasks = [
            asyncio.create_task(self._sender(connection)),
            asyncio.create_task(self._pinger(connection)),
            asyncio.create_task(self._redeliverer(connection)),
        ]
        try:
            await self._receiver(connection)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._release(connection)

    def _release(self, connection: _Connection) -> None:
        """A closed connection's unacked and queued frames wait for the app's next one."""
        left: list[_Frame] = list(connection.unacked.values())
        while not connection.queue.empty():
            frame = connection.queue.get_nowait()
            if frame is not None and frame.kind != "SYSTEM" and frame not in left:
                left.append(frame)
        with self._lock:
            self._connections.pop(connection.id, None)
            if left:
                self._pending[connection.app] = left + self._pending.get(connection.app, [])
            self._ignore_acks[connection.app] = connection.ignore_acks

    async def _receiver(self, connection: _Connection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in connection.ws:
                try:
                    reply = loads(raw)
                    message_id = str(reply["headers"]["messageId"])
                except (ValueError, KeyError, TypeError):
                    continue  # not an ack: DingTalk ignores it too [U]
                with self._lock:
                    if connection.ignore_acks > 0 and message_id in connection.unacked:
                        connection.ignore_acks -= 1
                        continue
                    if connection.unacked.pop(message_id, None) is not None:
                        connection.acks += 1
        except ConnectionClosed:
            return

    async def _sender(self, connection: _Connection) -> None:
        while True:
            frame = await connection.queue.get()
            if frame is None:
                return
            frame.sent_at = time.monotonic()
            frame.deliveries += 1
            with self._lock:
                if frame.kind != "SYSTEM":
                    connection.unacked[frame.message_id] = frame
                cut, connection.cut_next = connection.cut_next, False
            text = frame.text(connection.app_key, connection.id)
            if cut:
                await self._cut(connection, text)
                return
            await connection.ws.send(text)

    async def _pinger(self, connection: _Connection) -> None:
        while True:
            await asyncio.sleep(self._settings().ping_interval)
            ping = _Frame(f"emu-ping-{next(self._ids)}", "ping", "SYSTEM", '{"opaque":"ping"}')
            connection.queue.put_nowait(ping)

    async def _redeliverer(self, connection: _Connection) -> None:
        while True:
            after = self._settings().redelivery_after
            await asyncio.sleep(min(1.0, after / 4))
            now = time.monotonic()
            with self._lock:
                due = [f for f in connection.unacked.values() if now - f.sent_at >= after]
                for frame in due:
                    frame.sent_at = now  # not sent twice while it waits in the queue
                self.redelivered += len(due)
            for frame in due:
                connection.queue.put_nowait(frame)
