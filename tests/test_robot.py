"""Robot and AsyncRobot against the emulator over real loopback HTTP."""

from __future__ import annotations

import logging
import typing

import httpx
import pytest

import dingpush
from dingpush import (
    ActionCard,
    AsyncRobot,
    At,
    Button,
    FeedCard,
    FeedItem,
    Link,
    Markdown,
    Robot,
    SecurityRejected,
    Text,
)
from dingpush.testing import EmulatorServer, FakeClock

SECRET = "SEC0123456789abcdef0123456789abcdef"
TOKEN = "6c2ae9f0aaaabbbbccccddddeeeeffff0000111122223333444455556666aaaa"

MESSAGES: list[dingpush.Message] = [
    Text("disk almost full on web-01", at=At(mobiles=["13800000000"])),
    Markdown("CPU alert", "#### CPU alert\n> web-01: **97%**", at=At(user_ids=["user123"])),
    Link("Release 2.3", "Changelog", "https://example.com/r/2.3", "https://example.com/i.png"),
    ActionCard("Deploy?", "### Deploy v2.3", button=Button("Open", "https://example.com/d")),
    ActionCard(
        "Vote",
        "Pick one",
        buttons=[Button("Yes", "https://example.com/y"), Button("No", "https://example.com/n")],
        orientation="horizontal",
        hide_avatar=True,
    ),
    FeedCard([FeedItem("Item 1", "https://example.com/1", "https://example.com/1.png")]),
]


@pytest.fixture
def signed(dingtalk_emulator: EmulatorServer) -> str:
    dingtalk_emulator.add_robot("ops", TOKEN, secret=SECRET)
    return dingtalk_emulator.webhook_url("ops")


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_type_is_accepted(
    dingtalk_emulator: EmulatorServer, signed: str, message: dingpush.Message
) -> None:
    with Robot(signed, secret=SECRET) as robot:
        result = robot.send(message, msg_uuid="uuid-1")
    assert result.msg_uuid == "uuid-1"
    (stored,) = dingtalk_emulator.emulator.messages(robot="ops")
    assert dict(stored.payload) == message.to_payload()
    assert stored.msg_uuid == "uuid-1"


@pytest.mark.anyio
@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
async def test_every_type_is_accepted_async(
    dingtalk_emulator: EmulatorServer, signed: str, message: dingpush.Message
) -> None:
    async with AsyncRobot(signed, secret=SECRET) as robot:
        result = await robot.send(message)
    (stored,) = dingtalk_emulator.emulator.messages(robot="ops")
    assert dict(stored.payload) == message.to_payload()
    assert stored.msg_uuid == result.msg_uuid


def test_a_string_becomes_text_and_each_send_gets_a_msg_uuid(
    dingtalk_emulator: EmulatorServer, signed: str
) -> None:
    with Robot(signed, secret=SECRET) as robot:
        first = robot.send("hello")
        second = robot.send("hello")
    assert first.msg_uuid != second.msg_uuid
    stored = dingtalk_emulator.emulator.messages(robot="ops")
    assert [m.payload["text"]["content"] for m in stored] == ["hello", "hello"]


def test_dingtalk_url_with_mentions_and_markdown(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", TOKEN, secret=SECRET)
    url = f"dingtalk://{SECRET}@{TOKEN}/13800000000/?format=markdown"
    with Robot(url, base_url=dingtalk_emulator.url) as robot:
        robot.send("Build #42 passed\nall green")
    (stored,) = dingtalk_emulator.emulator.messages(robot="ops")
    assert stored.msgtype == "markdown"
    assert stored.payload["markdown"]["title"] == "Build #42 passed"
    assert stored.payload["markdown"]["text"].endswith("@13800000000")
    assert stored.at.mobiles == ("13800000000",)


def test_keyword_is_appended_when_missing(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", TOKEN, keywords=("ALERT",))
    with Robot(dingtalk_emulator.webhook_url("ops"), keyword="ALERT") as robot:
        robot.send("disk full")
        robot.send("ALERT: cpu")
    contents = [m.payload["text"]["content"] for m in dingtalk_emulator.emulator.messages()]
    assert contents == ["disk full\nALERT", "ALERT: cpu"]


class TestSecurity:
    def test_wrong_secret(self, signed: str) -> None:
        with Robot(signed, secret="SECwrong") as robot, pytest.raises(SecurityRejected) as info:
            robot.send("x")
        assert info.value.reason == "signature"
        assert info.value.errcode == 310000
        assert "加签" in str(info.value)

    def test_missing_secret_says_to_pass_one(self, signed: str) -> None:
        with Robot(signed) as robot, pytest.raises(SecurityRejected) as info:
            robot.send("x")
        assert "pass secret=" in str(info.value)

    def test_stale_timestamp(self, dingtalk_emulator: EmulatorServer, signed: str) -> None:
        clock = FakeClock()
        clock.set(dingtalk_emulator.emulator.clock.time() - 2 * 3600)
        with Robot(signed, secret=SECRET, clock=clock) as robot:
            with pytest.raises(SecurityRejected) as info:
                robot.send("x")
        assert info.value.reason == "timestamp"
        assert "clock" in str(info.value)

    def test_every_request_is_signed_afresh(
        self, dingtalk_emulator: EmulatorServer, signed: str
    ) -> None:
        clock = FakeClock(dingtalk_emulator.emulator.clock.time())
        with Robot(signed, secret=SECRET, clock=clock) as robot:
            robot.send("first")
            clock.advance(3 * 3600)  # a signature made at start-up would now be refused
            dingtalk_emulator.emulator.clock = clock
            robot.send("three hours later")
        assert len(dingtalk_emulator.emulator.messages()) == 2

    def test_keyword_miss(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("kw", keywords=("ALERT",))
        with Robot(dingtalk_emulator.webhook_url("kw")) as robot:
            with pytest.raises(SecurityRejected) as info:
                robot.send("no keyword here")
        assert info.value.reason == "keyword"
        assert "keyword=" in str(info.value)

    def test_ip_miss(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("ip", ip_allowlist=("10.0.0.0/8",))
        with Robot(dingtalk_emulator.webhook_url("ip")) as robot:
            with pytest.raises(SecurityRejected) as info:
                robot.send("x")
        assert info.value.reason == "ip"
        assert "allow-list" in str(info.value)


# Each errcode DingTalk may answer, reached through the emulator's fault injection, and the
# exception it must become.
ERRCODES: list[tuple[int, type[dingpush.DingPushError]]] = [
    (-1, dingpush.ServerBusy),
    (40035, dingpush.InvalidRequest),
    (43004, dingpush.InvalidRequest),
    (300001, dingpush.TokenNotFound),
    (400101, dingpush.TokenNotFound),
    (400102, dingpush.RobotUnavailable),
    (400106, dingpush.RobotUnavailable),
    (400013, dingpush.RobotUnavailable),
    (400105, dingpush.UnsupportedMessageType),
    (410100, dingpush.RateLimited),
    (130101, dingpush.RateLimited),
    (430102, dingpush.ContentRejected),
    (460101, dingpush.MessageTooLarge),
    (310000, dingpush.SecurityRejected),
]


@pytest.mark.parametrize(("errcode", "cls"), ERRCODES)
def test_errcodes_raise_their_exception(
    dingtalk_emulator: EmulatorServer, signed: str, errcode: int, cls: type[Exception]
) -> None:
    dingtalk_emulator.emulator.inject_fault("errcode", errcode=errcode, errmsg="injected")
    with Robot(signed, secret=SECRET) as robot, pytest.raises(cls) as info:
        robot.send("x", retry=False, wait=False)  # delivery's retries are tested elsewhere
    assert getattr(info.value, "errcode", None) == errcode
    assert TOKEN not in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize(("errcode", "cls"), ERRCODES)
async def test_errcodes_raise_their_exception_async(
    dingtalk_emulator: EmulatorServer, signed: str, errcode: int, cls: type[Exception]
) -> None:
    dingtalk_emulator.emulator.inject_fault("errcode", errcode=errcode, errmsg="injected")
    async with AsyncRobot(signed, secret=SECRET) as robot:
        with pytest.raises(cls):
            await robot.send("x", retry=False, wait=False)


class TestRealErrorPaths:
    """The emulator's own checks, not injected faults."""

    def test_unknown_token(self, dingtalk_emulator: EmulatorServer) -> None:
        with Robot(TOKEN, base_url=dingtalk_emulator.url) as robot:
            with pytest.raises(dingpush.TokenNotFound, match="access_token value"):
                robot.send("x")

    def test_disabled_robot(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("off", status="disabled")
        with Robot(dingtalk_emulator.webhook_url("off")) as robot:
            with pytest.raises(dingpush.RobotUnavailable) as info:
                robot.send("x")
        assert info.value.errcode == 400102

    def test_throttle_and_lock_out(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("fast", rate_limit=3, rate_window=60)
        with Robot(dingtalk_emulator.webhook_url("fast")) as robot:
            for i in range(3):
                robot.send(f"m{i}")
            with pytest.raises(dingpush.RateLimited) as info:
                robot.send("one too many", wait=False)
        assert info.value.errcode == 130101
        assert info.value.transient

    def test_too_large_is_refused_before_any_request(
        self, dingtalk_emulator: EmulatorServer, signed: str
    ) -> None:
        with Robot(signed, secret=SECRET) as robot:
            with pytest.raises(dingpush.MessageTooLarge) as info:
                robot.send(Text("字" * 7000))  # 21,000 bytes: 3 bytes a character
        assert info.value.limit == 20_000
        assert info.value.size is not None and info.value.size > 20_000
        assert "split" in str(info.value)
        assert dingtalk_emulator.emulator.requests() == []

    def test_cjk_just_under_the_limit_is_sent(
        self, dingtalk_emulator: EmulatorServer, signed: str
    ) -> None:
        with Robot(signed, secret=SECRET) as robot:
            robot.send(Text("字" * 6600))
        assert len(dingtalk_emulator.emulator.messages()) == 1


class TestTransport:
    def test_http_500_is_a_transient_protocol_error(
        self, dingtalk_emulator: EmulatorServer, signed: str
    ) -> None:
        dingtalk_emulator.emulator.inject_fault("http500")
        with Robot(signed, secret=SECRET) as robot, pytest.raises(dingpush.ProtocolError) as info:
            robot.send("x", retry=False)
        assert info.value.status_code == 500
        assert info.value.transient

    def test_dropped_connection(self, dingtalk_emulator: EmulatorServer, signed: str) -> None:
        dingtalk_emulator.emulator.inject_fault("drop")
        with Robot(signed, secret=SECRET) as robot, pytest.raises(dingpush.TransportError):
            robot.send("x", retry=False)

    def test_timeout(self, dingtalk_emulator: EmulatorServer, signed: str) -> None:
        dingtalk_emulator.emulator.inject_fault("delay", delay=1.0)
        with Robot(signed, secret=SECRET, timeout=0.2) as robot, pytest.raises(dingpush.Timeout):
            robot.send("x", retry=False)

    def test_nothing_listening(self) -> None:
        with Robot(TOKEN, base_url="http://127.0.0.1:9", retry=False) as robot:
            with pytest.raises(dingpush.TransportError) as info:
                robot.send("x")
        assert TOKEN not in str(info.value)
        assert info.value.exit_code == 6

    @pytest.mark.parametrize(
        ("status", "body", "match"),
        [
            (200, b"<html>gateway</html>", "not DingTalk's JSON"),
            (404, b"not found", "check the URL"),
            (200, b'{"errcode": "0", "errmsg": "ok"}', None),
            (200, b'{"errcode": "x"}', "non-numeric"),
        ],
    )
    def test_replies_that_are_not_dingtalks(
        self, status: int, body: bytes, match: str | None
    ) -> None:
        transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
        with Robot(TOKEN, transport=transport) as robot:
            if match is None:
                assert robot.send("x").errcode == 0  # errcode may come as a string
            else:
                with pytest.raises(dingpush.ProtocolError, match=match):
                    robot.send("x")


def test_request_matches_the_protocol_byte_for_byte() -> None:
    """Path, query order and encoding, headers and body as protocol §1.1-§1.2 document them."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    clock = FakeClock(1_700_000_000.0)
    robot = Robot(
        "6c2a", secret="SEC0123456789abcdef", transport=httpx.MockTransport(handler), clock=clock
    )
    message = Text("disk almost full on web-01 @13800000000", at=At(mobiles=["13800000000"]))
    robot.send(message, msg_uuid="m-1")
    (request,) = seen
    assert request.method == "POST"
    assert request.url.host == "oapi.dingtalk.com" and request.url.scheme == "https"
    assert request.url.raw_path == (
        b"/robot/send?access_token=6c2a&timestamp=1700000000000"
        b"&sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
    )
    assert request.headers["content-type"] == "application/json;charset=utf-8"
    assert request.content == (
        b'{"msgtype":"text","text":{"content":"disk almost full on web-01 @13800000000"},'
        b'"at":{"atMobiles":["13800000000"],"atUserIds":[],"isAtAll":false},"msgUuid":"m-1"}'
    )


def test_cjk_is_sent_as_utf8_not_escapes() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    Robot("t", transport=httpx.MockTransport(handler)).send("磁盘快满了")
    assert "磁盘快满了".encode() in seen[0]


def test_shared_http_client_is_not_closed() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"errcode": 0}))
    )
    with Robot("t", http_client=client) as robot:
        robot.send("x")
    assert not client.is_closed
    client.close()


def test_proxy_argument_is_used(dingtalk_emulator: EmulatorServer) -> None:
    # A proxy that is not there: the request must go to it, not straight to the emulator.
    dingtalk_emulator.add_robot("ops", TOKEN)
    url = dingtalk_emulator.webhook_url("ops")
    with Robot(url, proxy="http://127.0.0.1:9", retry=False) as robot:
        with pytest.raises(dingpush.TransportError):
            robot.send("x")
    assert dingtalk_emulator.emulator.requests() == []


def test_proxy_from_environment(
    dingtalk_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dingtalk_emulator.add_robot("ops", TOKEN)
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with Robot(dingtalk_emulator.webhook_url("ops"), retry=False) as robot:
        with pytest.raises(dingpush.TransportError):
            robot.send("x")
    with Robot(dingtalk_emulator.webhook_url("ops"), trust_env=False) as robot:
        robot.send("x")


def test_secrets_never_leak(
    dingtalk_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Scan reprs, exception texts and every captured log line for the token and secret."""
    dingtalk_emulator.add_robot("ops", TOKEN, secret=SECRET, keywords=("K",))
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    url = dingtalk_emulator.webhook_url("ops")
    with Robot(url, secret=SECRET, retry=False) as robot:
        texts += [repr(robot), repr(robot.target), str(robot.target.display)]
        robot.send("K ok")
        for fault in ("http500", "drop"):
            dingtalk_emulator.emulator.inject_fault(typing.cast(typing.Any, fault))
            with pytest.raises(dingpush.DingPushError) as info:
                robot.send("K x")
            texts.append(str(info.value))
        with pytest.raises(SecurityRejected) as rejected:
            robot.send("no keyword")
        texts.append(str(rejected.value))
    with (
        Robot(url, secret="SECwrong-secret-value") as robot,
        pytest.raises(SecurityRejected) as info,
    ):
        robot.send("K")
    texts.append(str(info.value))
    texts += [record.getMessage() for record in caplog.records]
    assert any("access_token=" in t for t in texts)  # the logs did see the URL, masked
    for text in texts:
        assert TOKEN not in text
        assert SECRET not in text
        assert "SECwrong-secret-value" not in text


def test_clients_share_one_tls_context_that_still_verifies() -> None:
    # Loading the CA bundle costs ~50 ms a client; a relay opens one client per target.
    import ssl

    from dingpush._robot._client import _http_options as robot_options
    from dingpush._wire import http_options as app_options

    context = robot_options(None, None, True)["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert app_options(None, None, True)["verify"] is context
    assert robot_options(None, None, True)["verify"] is context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
