"""Receiving: Stream mode against the emulator's gateway, HTTP callbacks (protocol §12, §13)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import json
import threading
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import pytest

from _appsupport import APP_KEY, APP_SECRET, GROUP, add_ops_app, cid
from dingpush import (
    AsyncApp,
    Backoff,
    BadCredentials,
    CallbackRejected,
    GroupSendResult,
    IncomingMessage,
    StreamClient,
    UsersSendResult,
    callback_sign,
    parse_incoming,
    verify_callback,
)
from dingpush.testing import EmulatorServer, FakeClock

OPEN_PATH = "/v1.0/gateway/connections/open"


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer) -> EmulatorServer:
    return add_ops_app(dingtalk_emulator)


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait for ``check`` (the emulator runs in other threads); fail after a generous bound."""
    with anyio.fail_after(15):
        while not check():
            await asyncio.sleep(0.01)


class Receiver:
    """Runs a client's ``messages()`` in a task and keeps what it yields."""

    def __init__(self, client: StreamClient) -> None:
        self.client = client
        self.got: list[IncomingMessage] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for message in self.client.messages():
            self.got.append(message)

    async def __aenter__(self) -> Receiver:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        assert self._task is not None
        # aclose() ends the loop; a task still waiting on the network is cancelled.
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[StreamClient]:
    stream = StreamClient(APP_KEY, APP_SECRET, api_base=server.url)
    yield stream
    await stream.aclose()


async def post(server: EmulatorServer, text: str, **kw: typing.Any) -> typing.Any:
    return await anyio.to_thread.run_sync(
        lambda: server.emulator.post_as_user("ops", kw.pop("user", "alice"), text, **kw)
    )


# -- HTTP callbacks (§12.2) ------------------------------------------------------------------


def test_signature_vector() -> None:
    # §12.2: the official Java sample's inputs, the output computed.
    sign = callback_sign("this is a secret", 1577262236757)
    assert sign == "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="


BODY = json.dumps(
    {
        "msgtype": "text",
        "text": {"content": " ack 42"},
        "conversationType": "2",
        "conversationId": "cid6EU==",
        "senderStaffId": "0147",
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=1",
        "sessionWebhookExpiredTime": "1708332604316",
        "createAt": 1708327204136,
    }
)


def _headers(secret: str, timestamp: int) -> dict[str, str]:
    return {"Timestamp": str(timestamp), "Sign": callback_sign(secret, timestamp)}


def test_a_good_callback_is_read() -> None:
    now = 1708327204.0
    message = verify_callback(_headers("s3cret", int(now * 1000)), BODY, "s3cret", now=now)
    assert message.text == "ack 42" and message.sender_user_id == "0147"
    assert message.is_group and message.conversation_id == "cid6EU=="
    assert message.session_webhook_expires_at == 1708332604.316  # a string in ms, accepted
    assert message.created_at == 1708327204.136


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_headers("s3cret", 1708327204000 - 3_600_001), "timestamp"),  # stale: over an hour
        (_headers("s3cret", 1708327204000 + 3_600_001), "timestamp"),  # from the future
        (_headers("other", 1708327204000), "signature"),  # wrong sign
        ({"timestamp": "1708327204000"}, "missing"),
        ({"timestamp": "soon", "sign": "x"}, "timestamp"),
        ({"timestamp": "9" * 400, "sign": "x"}, "timestamp"),  # no float holds it
        ({"timestamp": " +1708327204000", "sign": "x"}, "timestamp"),  # int() would take it
        ({"timestamp": "1708327204000", "sign": "\u00e9t\u00e9"}, "signature"),  # not ASCII
    ],
)
def test_bad_callbacks_are_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(CallbackRejected) as caught:
        verify_callback(headers, BODY, "s3cret", now=1708327204.0)
    assert caught.value.reason == reason
    assert "s3cret" not in str(caught.value)


def test_a_body_that_is_not_a_message() -> None:
    with pytest.raises(CallbackRejected) as caught:
        parse_incoming(b"[1, 2]")
    assert caught.value.reason == "body"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"text": {"content": "a\\ud800"}, "msgtype": "text"}'],
    ids=["deep", "lone-surrogate"],
)
def test_a_body_the_parser_cannot_hold_is_refused(body: bytes) -> None:
    # DingTalk's callback signature covers the timestamp, not the body: a replayed signature
    # with 100,000 levels of nesting raised RecursionError (a 500), a lone surrogate reached
    # the chat commands' replies and the outbox.
    with pytest.raises(CallbackRejected) as caught:
        parse_incoming(body)
    assert caught.value.reason == "body"


@pytest.mark.parametrize("msg_id", [None, 7, ["a"], {"id": "x"}, True])
def test_a_msg_id_that_is_not_a_string_is_no_id(msg_id: object) -> None:
    # null became the id "None", shared by every such message: the relay, which acts once per
    # msgId, answered a second command with the first one's answer and did nothing.
    body = {"msgtype": "text", "text": {"content": "ack 19"}, "msgId": msg_id}
    assert parse_incoming(body).msg_id == ""
    assert parse_incoming({**body, "msgId": "msgA1"}).msg_id == "msgA1"


@pytest.fixture
def callback_url() -> Iterator[tuple[str, list[IncomingMessage]]]:
    """A real HTTP endpoint that checks DingTalk's callbacks and answers synchronously."""
    seen: list[IncomingMessage] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                message = verify_callback(dict(self.headers), body, APP_SECRET, now=time.time())
            except CallbackRejected:
                self.send_response(403)
                self.end_headers()
                return
            seen.append(message)
            reply = {"msgtype": "text", "text": {"content": f"got: {message.text}"}}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/dingtalk", seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_http_mode_signed_callback_and_sync_reply(
    server: EmulatorServer, callback_url: tuple[str, list[IncomingMessage]]
) -> None:
    url, seen = callback_url
    server.emulator.update_app("ops", callback_url=url)
    server.emulator.post_as_user("ops", "alice", "status", group=GROUP)
    server.emulator.post_as_user("ops", "bob", "no mention", group=GROUP, mention=False)
    (callback,) = server.emulator.callbacks()
    assert callback.status == 200 and callback.replied
    (message,) = seen
    assert (message.text, message.sender_user_id, message.conversation_id) == (
        "status",
        "alice",
        cid(server),
    )
    texts = [m.payload["text"]["content"] for m in server.emulator.messages()]
    assert texts == ["@ops status", "got: status", "no mention"]


def test_http_mode_forged_secret_is_refused(
    server: EmulatorServer, callback_url: tuple[str, list[IncomingMessage]]
) -> None:
    url, seen = callback_url
    server.emulator.update_app("ops", callback_url=url, app_secret="a-different-secret-value")
    server.emulator.post_as_user("ops", "alice", "hi")
    assert [c.status for c in server.emulator.callbacks()] == [403] and seen == []


# -- Stream mode (§13) -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_message_and_reply_through_the_session(
    server: EmulatorServer, client: StreamClient
) -> None:
    async with Receiver(client) as receiver:
        await post(server, "ack 42", group=GROUP)
        await post(server, "who am I?", user="bob")
        await until(lambda: len(receiver.got) == 2, "two messages")
        group, direct = receiver.got
        assert (group.text, group.sender_user_id, group.conversation_id) == (
            "ack 42",
            "alice",
            cid(server),
        )
        assert group.is_group and not direct.is_group and direct.sender_user_id == "bob"
        assert group.session_webhook_expires_at - group.created_at == pytest.approx(5400)
        assert await client.reply(group, "acknowledged by alice") is None
    shown = [(m.sender, m.channel) for m in server.emulator.messages(conversation=cid(server))]
    assert shown == [("alice", "person"), ("ops", "session-webhook")]


@pytest.mark.anyio
async def test_reply_after_the_session_expired_goes_through_the_app(
    server: EmulatorServer,
) -> None:
    clock = FakeClock(time.time())
    server.emulator.clock = clock
    async with AsyncApp(APP_KEY, APP_SECRET, api_base=server.url, clock=clock) as app:
        stream = StreamClient(APP_KEY, APP_SECRET, api_base=server.url, app=app)
        async with Receiver(stream) as receiver:
            await post(server, "ack", group=GROUP)
            await post(server, "ack", user="bob")
            await until(lambda: len(receiver.got) == 2, "the messages")
            clock.advance(91 * 60)
            in_group = await stream.reply(receiver.got[0], "acknowledged")
            in_chat = await stream.reply(receiver.got[1], "acknowledged")
    assert in_group is not None and in_group.process_query_key
    assert isinstance(in_chat, UsersSendResult) and in_chat.user_ids == ("bob",)
    channels = {m.channel for m in server.emulator.messages() if m.sender == "ops"}
    assert channels == {"app-robot"}


@pytest.mark.anyio
async def test_unacked_frame_is_redelivered_and_handled_once(
    server: EmulatorServer, client: StreamClient
) -> None:
    server.emulator.options = dataclasses.replace(
        server.emulator.options, stream_redelivery_after=0.2
    )
    server.emulator.stream.ignore_acks("ops", 1)
    async with Receiver(client) as receiver:
        await post(server, "ack 7", group=GROUP)
        await until(lambda: client.session.duplicates == 1, "the redelivery")
        await until(lambda: server.emulator.stream.pending("ops") == 0, "the second ack")
        assert [m.text for m in receiver.got] == ["ack 7"]
    assert server.emulator.stream.redelivered >= 1


@pytest.mark.anyio
async def test_connection_dropped_mid_frame_reconnects_and_delivers_once(
    server: EmulatorServer,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    client = StreamClient(APP_KEY, APP_SECRET, api_base=server.url, sleep=sleep, stable_after=0.0)
    async with Receiver(client) as receiver:
        await until(lambda: client.connections == 1, "the first connection")
        server.emulator.stream.drop("ops", mid_frame=True)
        await post(server, "silence 2h", group=GROUP)
        await until(lambda: len(receiver.got) == 1, "the message, after reconnecting")
        await until(lambda: server.emulator.stream.pending("ops") == 0, "the ack")
    assert [m.text for m in receiver.got] == ["silence 2h"]
    assert client.connections == 2 and client.failures == 1 and client.session.duplicates == 0
    assert slept == []  # the first attempt after a drop goes at once


@pytest.mark.anyio
async def test_reconnect_backs_off_while_the_gateway_fails(server: EmulatorServer) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    server.emulator.inject_fault("http500", count=3, path=OPEN_PATH)
    backoff = Backoff(initial=0.5, factor=2, maximum=1.5, jitter=0)
    client = StreamClient(APP_KEY, APP_SECRET, api_base=server.url, sleep=sleep, backoff=backoff)
    async with Receiver(client) as receiver:
        await post(server, "status", user="carol")
        await until(lambda: len(receiver.got) == 1, "the message")
    assert slept == [0.5, 1.0, 1.5] and client.failures == 3 and client.connections == 1


@pytest.mark.anyio
async def test_disconnect_frame_reconnects(server: EmulatorServer, client: StreamClient) -> None:
    async with Receiver(client) as receiver:
        await until(lambda: client.connections == 1, "connected")
        server.emulator.stream.disconnect("ops")
        await until(lambda: client.connections == 2, "reconnected")
        await post(server, "still here?", user="bob")
        await until(lambda: len(receiver.got) == 1, "the message")
    assert client.failures == 0


@pytest.mark.anyio
async def test_wrong_credentials_fail_at_once(server: EmulatorServer) -> None:
    client = StreamClient(APP_KEY, "not-the-secret", api_base=server.url)
    with pytest.raises(BadCredentials):
        async for _ in client.messages():
            pass  # pragma: no cover
    await client.aclose()


@pytest.mark.anyio
async def test_gateway_pings_are_answered(server: EmulatorServer, client: StreamClient) -> None:
    server.emulator.options = dataclasses.replace(
        server.emulator.options, stream_ping_interval=0.05
    )
    async with Receiver(client):
        await until(lambda: client.connections == 1, "connected")
        await asyncio.sleep(0.3)
        await post(server, "after pings", user="bob")
        await until(lambda: client.session.received == 1, "the message")
    assert client.failures == 0


@pytest.mark.anyio
async def test_a_connection_dropped_at_once_is_backed_off_from(server: EmulatorServer) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    backoff = Backoff(initial=0.5, jitter=0)
    client = StreamClient(
        APP_KEY, APP_SECRET, api_base=server.url, sleep=sleep, backoff=backoff, stable_after=60
    )
    async with Receiver(client) as receiver:
        await until(lambda: client.connections == 1, "connected")
        server.emulator.stream.drop("ops")  # before it was up for stable_after seconds
        await post(server, "again", user="bob")
        await until(lambda: len(receiver.got) == 1, "the message")
    assert slept == [0.5] and client.connections == 2


def test_sync_app_replies_by_session_then_by_the_robot_api(server: EmulatorServer) -> None:
    clock = FakeClock(time.time())
    server.emulator.clock = clock
    body = server.emulator.post_as_user("ops", "alice", "ack", group=GROUP)
    message = parse_incoming(body or {})
    with server.app_client("ops", clock=clock) as app:
        assert app.reply(message, "acknowledged by alice") is None  # the session webhook
        clock.advance(90 * 60)
        later = app.reply(message, "still on it")  # the session is over: the group, by API
    assert isinstance(later, GroupSendResult) and later.open_conversation_id == cid(server)
    shown = [(m.channel, m.payload.get("msgKey")) for m in server.emulator.messages()]
    assert shown == [("person", None), ("session-webhook", None), ("app-robot", "sampleText")]
