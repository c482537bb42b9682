"""App and AsyncApp end to end against the emulator over loopback HTTP (protocol §3–§5)."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import random
import typing

import httpx
import pytest

import dingpush
from _appsupport import APP_KEY, APP_SECRET, USERS, add_ops_app, cid, pdf_bytes, png_bytes
from dingpush import (
    OA,
    ActionCard,
    App,
    AsyncApp,
    Button,
    File,
    Image,
    Link,
    Markdown,
    MessageTooLarge,
    OAField,
    PermissionDenied,
    Text,
    UnsupportedMessage,
)
from dingpush._messages._channels import app_robot_template, notice_msg
from dingpush.testing import EmulatorServer

URL = "https://example.com"


def _draws(seed: int) -> tuple[bool, bool]:
    """Whether the first two draws of a probability-0.5 fault with this seed hit."""
    rng = random.Random(seed)
    return rng.random() < 0.5, rng.random() < 0.5


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer) -> EmulatorServer:
    return add_ops_app(dingtalk_emulator, departments={42: ["carol", "dave"]})


@pytest.fixture
def chart(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "chart.png"
    path.write_bytes(png_bytes())
    return path


def agent(server: EmulatorServer) -> int:
    return server.emulator.app("ops").agent_id


def async_app(server: EmulatorServer, **options: typing.Any) -> AsyncApp:
    return AsyncApp(APP_KEY, APP_SECRET, api_base=server.url, oapi_base=server.url, **options)


# The source material's three examples, done right: a text, an image from a local file, a link.
EXAMPLES = ["text", "image", "link"]
CHANNELS = ["group", "users", "notice"]


def example(kind: str, chart: pathlib.Path) -> dingpush.Message:
    if kind == "text":
        return Text("deploy finished on web-01")
    if kind == "image":
        return Image.from_file(chart)
    return Link("Release 2.3", "Changelog and rollout plan", f"{URL}/r/2.3", f"{URL}/i.png")


def check_delivery(
    server: EmulatorServer, channel: str, kind: str, message: dingpush.Message
) -> None:
    stored = server.emulator.messages(robot="ops")
    if channel == "group":
        (only,) = stored
        assert only.conversation_id == cid(server) and only.channel == "app-robot"
    elif channel == "users":
        assert [m.conversation_id for m in stored] == [
            server.emulator.conversation_of_user(u).id for u in ("alice", "bob")
        ]
    else:
        assert len(stored) >= 2 and {m.channel for m in stored} == {"work-notice"}
    if kind == "image":
        (media,) = server.emulator.media_items()
        assert media.data == png_bytes() and media.filename == "chart.png"
        resolved: dingpush.Message = Image(media_id=media.media_id)
    else:
        resolved = message
    if channel == "notice":
        assert dict(stored[0].payload) == notice_msg(resolved)
    else:
        key, param = app_robot_template(resolved)
        assert dict(stored[0].payload) == {"msgKey": key, "msgParam": param}


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", EXAMPLES)
def test_three_examples_on_every_channel(
    server: EmulatorServer, chart: pathlib.Path, kind: str, channel: str
) -> None:
    message = example(kind, chart)
    with server.app_client("ops") as app:
        if channel == "group":
            result: typing.Any = app.group(cid(server)).send(message, msg_uuid="m-1")
            assert result.process_query_key and result.msg_uuid == "m-1"
        elif channel == "users":
            result = app.users(["alice", "bob"]).send(message)
            assert result.delivered_user_ids == ("alice", "bob")
        else:
            result = app.notify(agent(server), users=["alice"], departments=[42]).send(message)
            delivery = app.send_result(agent(server), result.task_id)
            assert delivery.unread_user_ids == ("alice", "carol", "dave")
    check_delivery(server, channel, kind, message)


@pytest.mark.anyio
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", EXAMPLES)
async def test_three_examples_on_every_channel_async(
    server: EmulatorServer, chart: pathlib.Path, kind: str, channel: str
) -> None:
    message = example(kind, chart)
    async with async_app(server) as app:
        if channel == "group":
            await app.group(cid(server)).send(message)
        elif channel == "users":
            await app.users(["alice", "bob"]).send(message)
        else:
            result = await app.notify(agent(server), users=["alice", "carol"]).send(message)
            progress = await app.send_progress(agent(server), result.task_id)
            assert progress.done and progress.percent == 100 and progress.state == "done"
    check_delivery(server, channel, kind, message)


ROBOT_MESSAGES: list[dingpush.Message] = [
    Text("t"),
    Markdown("T", "### md"),
    Link("T", "x", f"{URL}/r"),
    ActionCard("T", "x", button=Button("Open", f"{URL}/o")),
    *[
        ActionCard("T", "x", buttons=[Button(f"B{i}", f"{URL}/{i}") for i in range(n)])
        for n in (2, 3, 4, 5)
    ],
    ActionCard(
        "T",
        "x",
        buttons=[Button("Y", f"{URL}/y"), Button("N", f"{URL}/n")],
        orientation="horizontal",
    ),
    Image(url=f"{URL}/a.png"),
]


@pytest.mark.parametrize("message", ROBOT_MESSAGES, ids=lambda m: app_robot_template(m)[0])
def test_every_msg_key_is_accepted(server: EmulatorServer, message: dingpush.Message) -> None:
    with server.app_client("ops") as app:
        result = app.group(cid(server)).send(message)
    (stored,) = server.emulator.messages()
    assert stored.msgtype == result.msg_key == app_robot_template(message)[0]


def test_a_local_file_goes_as_sample_file_and_is_uploaded_once(
    server: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "q3.pdf"
    path.write_bytes(pdf_bytes())
    with server.app_client("ops") as app:
        app.group(cid(server)).send(File.from_file(path))
        app.users(["alice"]).send(File.from_file(path))
        app.notify(agent(server), users=["bob"]).send(File.from_file(path))
    (media,) = server.emulator.media_items()
    assert media.type == "file" and media.data == pdf_bytes()
    first = server.emulator.messages()[0]
    assert first.payload["msgParam"] == {
        "mediaId": media.media_id,
        "fileName": "q3.pdf",
        "fileType": "pdf",
    }
    uploads = [r for r in server.emulator.requests() if r.path == "/media/upload"]
    assert len(uploads) == 1


NOTICE_MESSAGES: list[dingpush.Message] = [
    Text("t"),
    Markdown("T", "md"),
    Link("T", "x", f"{URL}/r", f"{URL}/p.png"),
    ActionCard("T", "x", button=Button("Open", f"{URL}/o")),
    ActionCard("T", "x", buttons=[Button("Y", f"{URL}/y"), Button("N", f"{URL}/n")]),
    OA(message_url=URL, title="Leave", form=[OAField("Days", "3")], status_value="pending"),
]


@pytest.mark.parametrize("message", NOTICE_MESSAGES, ids=lambda m: notice_msg(m)["msgtype"])
def test_every_work_notification_type_is_accepted(
    server: EmulatorServer, message: dingpush.Message
) -> None:
    with server.app_client("ops") as app:
        result = app.notify(agent(server), users=["alice"]).send(message)
    (stored,) = server.emulator.messages()
    assert stored.msgtype == result.msgtype == notice_msg(message)["msgtype"]


def test_uploaded_media_in_image_and_oa(server: EmulatorServer) -> None:
    with server.app_client("ops") as app:
        media_id = app.upload(png_bytes(), "image", filename="logo.png")
        app.notify(agent(server), users=["alice"]).send(Image(media_id=media_id))
        app.notify(agent(server), users=["alice"]).send(OA(message_url=URL, image=media_id))
    assert [m.msgtype for m in server.emulator.messages()] == ["image", "oa"]
    with httpx.Client() as client:
        reply = client.get(f"{server.url}/_emulator/media/{media_id}")
    assert reply.content == png_bytes() and reply.headers["content-type"] == "image/png"


class TestUsers:
    def test_chunked_20_users_a_call(self, server: EmulatorServer) -> None:
        many = [f"u{i:02d}" for i in range(45)]
        server.emulator.update_app("ops", users=(*USERS, *many))
        with server.app_client("ops") as app:
            result = app.users([*many, "u00"]).send("hello")  # a duplicate is sent once
        calls = [r for r in server.emulator.requests() if r.path.endswith("batchSend")]
        assert len(calls) == 3 and len(result.process_query_keys) == 3
        assert result.user_ids == tuple(many) == result.delivered_user_ids
        assert len(server.emulator.messages()) == 45

    def test_invalid_and_flow_controlled_users_are_reported(self, server: EmulatorServer) -> None:
        server.emulator.update_app("ops", flow_controlled_users=("bob",))
        with server.app_client("ops") as app:
            result = app.users(["alice", "bob", "ghost"]).send("hello")
        assert result.invalid_user_ids == ("ghost",)
        assert result.flow_controlled_user_ids == ("bob",)
        assert result.delivered_user_ids == ("alice",)
        (stored,) = server.emulator.messages()
        assert stored.conversation_id == server.emulator.conversation_of_user("alice").id

    def test_a_failure_after_the_first_call_carries_what_was_sent(
        self, server: EmulatorServer
    ) -> None:
        many = [f"u{i:02d}" for i in range(25)]
        server.emulator.update_app("ops", users=many)
        # A fault that lets the first call through and hits the second: pick a seed whose
        # first draw misses and second draw hits (deterministic, no timing involved).
        seed = next(s for s in range(1000) if _draws(s) == (False, True))
        path = "/v1.0/robot/oToMessages/batchSend"
        with server.app_client("ops") as app:
            app.access_token()
            server.emulator.inject_fault("http500", path=path, probability=0.5, seed=seed)
            with pytest.raises(dingpush.ProtocolError) as info:
                app.users(many).send("x")
        partial = info.value.partial
        assert isinstance(partial, dingpush.UsersSendResult)
        assert partial.delivered_user_ids == tuple(many[:20])
        assert len(server.emulator.messages()) == 20

    def test_a_failure_on_the_first_call_has_no_partial(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            app.access_token()
            server.emulator.inject_fault("http500", path="/v1.0/robot/oToMessages/batchSend")
            with pytest.raises(dingpush.ProtocolError) as info:
                app.users(["alice"]).send("x")
        assert info.value.partial is None

    def test_empty_users_is_a_config_error(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app, pytest.raises(dingpush.ConfigError):
            app.users([])


class TestNotices:
    def test_more_than_100_users_take_several_tasks(self, server: EmulatorServer) -> None:
        many = [f"u{i:03d}" for i in range(150)]
        server.emulator.update_app("ops", users=many)
        with server.app_client("ops") as app:
            result = app.notify(agent(server), users=many).send("all hands")
        assert len(result.task_ids) == 2 and result.task_id == result.task_ids[0]
        assert len(server.emulator.messages()) == 150

    def test_silent_drops_show_in_send_result(self, server: EmulatorServer) -> None:
        server.emulator.update_app("ops", notice_daily_cap=2)
        with server.app_client("ops") as app:
            notice = app.notify(agent(server), users=["alice", "bob"])
            notice.send("same text")
            repeat = notice.send("same text")  # same content, same day: dropped, still "ok"
            notice.send("second text")
            over = notice.send("third text")  # over the daily cap of 2
            server.emulator.read_notice(over.task_id, ["alice"])
            repeated = app.send_result(agent(server), repeat.task_id)
            capped = app.send_result(agent(server), over.task_id)
        assert repeated.forbidden_user_ids == ("alice", "bob")
        assert {f.code for f in repeated.forbidden} == {"143106"}
        assert "already went" in repeated.forbidden[0].reason
        assert capped.forbidden_user_ids == ("alice", "bob")
        assert capped.forbidden[0].code == "143105" and "daily" in capped.forbidden[0].reason
        assert capped.delivered_user_ids == ()
        assert len(server.emulator.messages()) == 4

    def test_read_and_unread_lists(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            result = app.notify(agent(server), users=["alice", "ghost"], departments=[42, 7]).send(
                "hello"
            )
            server.emulator.read_notice(result.task_id, ["carol"])
            delivery = app.send_result(agent(server), result.task_id)
        assert delivery.read_user_ids == ("carol",)
        assert delivery.unread_user_ids == ("alice", "dave")
        assert delivery.invalid_user_ids == ("ghost",) and delivery.invalid_dept_ids == ("7",)

    def test_everyone(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            app.notify(agent(server), everyone=True).send("company news")
        assert len(server.emulator.messages()) == len(server.emulator.app("ops").known_users())

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({}, "needs recipients"),
            ({"everyone": True, "users": ["a"]}, "alone"),
            ({"users": [""]}, "not an id"),
        ],
    )
    def test_bad_recipients(
        self, server: EmulatorServer, kwargs: dict[str, typing.Any], match: str
    ) -> None:
        with server.app_client("ops") as app, pytest.raises(dingpush.ConfigError, match=match):
            app.notify(agent(server), **kwargs)

    def test_bad_agent_id(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(dingpush.ConfigError, match="AgentId"):
                app.notify("abc", users=["alice"])
            with pytest.raises(dingpush.InvalidRequest) as info:
                app.notify(12345, users=["alice"]).send("x")
        assert info.value.errcode == 40056

    def test_status_bar_goes_to_five_users_at_most(self, server: EmulatorServer) -> None:
        card = OA(message_url=URL, title="t", status_value="pending")
        with server.app_client("ops") as app:
            with pytest.raises(dingpush.InvalidMessage, match="status bar"):
                app.notify(agent(server), departments=[42]).send(card)
        assert server.emulator.requests() == []


class TestRefusals:
    def test_missing_robot_permission(self, server: EmulatorServer) -> None:
        server.emulator.update_app("ops", permissions=())
        with server.app_client("ops") as app, pytest.raises(PermissionDenied) as info:
            app.group(cid(server)).send("x")
        exc = info.value
        assert exc.status_code == 403 and exc.request_id
        assert exc.errcode == "Forbidden.AccessDenied.AccessTokenPermissionDenied"
        assert "qyapi_robot_sendmsg" in str(exc) and "developer console" in str(exc)

    def test_robot_code_of_another_app(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app, pytest.raises(PermissionDenied) as info:
            app.group(cid(server), robot_code="dingsomeoneelse").send("x")
        assert info.value.errcode == "invalidParameter.robotCode.auth"

    def test_a_group_the_robot_is_not_in(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app, pytest.raises(dingpush.InvalidRequest) as info:
            app.group("cidNotAGroupOfThisRobot==").send("x")
        assert info.value.errcode == "invalid.openConversationId"
        assert info.value.status_code == 400

    def test_oversized_msg_param_is_refused_before_any_request(
        self, server: EmulatorServer
    ) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(MessageTooLarge) as info:
                app.group(cid(server)).send(Text("字" * 5000))  # 15,014 bytes of msgParam
            app.group(cid(server)).send(Text("字" * 4990))  # 14,984 bytes: fits
        assert info.value.limit == 15_000 and info.value.size == 15_014
        assert "msgParam" in str(info.value)
        assert [r.path for r in server.emulator.requests()] == [
            "/v1.0/oauth2/accessToken",
            "/v1.0/robot/groupMessages/send",
        ]

    def test_oversized_work_notification(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app, pytest.raises(MessageTooLarge) as info:
            app.notify(agent(server), users=["alice"]).send("x" * 2100)
        assert info.value.limit == 2048
        assert server.emulator.requests() == []

    @pytest.mark.parametrize(
        ("channel", "message", "match"),
        [
            ("group", dingpush.FeedCard([dingpush.FeedItem("a", URL, URL)]), "Robot"),
            ("users", OA(message_url=URL, title="t"), "notify"),
            ("notice", Image(url=f"{URL}/a.png"), "media_id only"),
        ],
    )
    def test_unsupported_type_per_channel(
        self, server: EmulatorServer, channel: str, message: dingpush.Message, match: str
    ) -> None:
        with server.app_client("ops") as app, pytest.raises(UnsupportedMessage, match=match):
            if channel == "group":
                app.group(cid(server)).send(message)
            elif channel == "users":
                app.users(["alice"]).send(message)
            else:
                app.notify(agent(server), users=["alice"]).send(message)
        assert server.emulator.requests() == []

    def test_upload_checks_come_first(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(dingpush.InvalidMessage, match="40005"):
                app.upload(b"MZ...", "file", filename="setup.exe")
            with pytest.raises(
                dingpush.InvalidMessage, match="use one of image, voice, video, file"
            ):
                app.upload(png_bytes(), "sticker")  # type: ignore[arg-type]
            with pytest.raises(MessageTooLarge, match="2 MB"):
                app.upload(b"\0" * (2 * 1024 * 1024 + 1), "voice", filename="memo.mp3")
        assert server.emulator.requests() == []

    def test_v1_errors_keep_the_request_id(self, server: EmulatorServer) -> None:
        server.emulator.inject_fault("errcode", errmsg="Forbidden.AccessDenied.QpsLimitForApi")
        with server.app_client("ops") as app, pytest.raises(dingpush.PlatformThrottled) as info:
            app.group(cid(server)).send("x", retry=False)  # a throttle is otherwise retried
        (record,) = [r for r in server.emulator.requests() if r.code]
        assert record.code == "Forbidden.AccessDenied.QpsLimitForApi"
        assert info.value.transient and info.value.status_code == 403
        assert info.value.request_id and info.value.request_id in str(info.value)

    def test_a_gateway_error_page_is_a_transient_protocol_error(
        self, server: EmulatorServer
    ) -> None:
        with server.app_client("ops") as app:
            app.access_token()
            server.emulator.inject_fault("http500", path="/v1.0/robot/groupMessages/send")
            with pytest.raises(dingpush.ProtocolError) as info:
                app.group(cid(server)).send("x")
        assert info.value.status_code == 500 and info.value.transient


def test_secrets_never_leak(
    server: EmulatorServer, caplog: pytest.LogCaptureFixture, tmp_path: pathlib.Path
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with server.app_client("ops", token_cache=tmp_path / "t.json") as app:
        token = app.access_token()
        group = app.group(cid(server))
        texts += [repr(app), repr(group), repr(app.users(USERS)), repr(app.notify(1, users=["a"]))]
        texts.append(repr(group.send("ok")))
        texts.append(repr(app.notify(agent(server), users=["alice"]).send("notice")))
        server.emulator.expire_tokens("ops")
        group.send("after refresh")
        token2 = app.access_token()
        for fault in ("http500", "drop"):
            server.emulator.inject_fault(typing.cast(typing.Any, fault))
            with pytest.raises(dingpush.DingPushError) as info:
                group.send("x")
            texts.append(str(info.value))
        server.emulator.update_app("ops", permissions=())
        with pytest.raises(PermissionDenied) as denied:
            group.send("x")
        texts.append(str(denied.value))
    with App(APP_KEY, "a-wrong-secret-value-xyz", api_base=server.url) as wrong:
        with pytest.raises(dingpush.BadCredentials) as bad:
            wrong.access_token()
        texts += [str(bad.value), repr(wrong)]
    texts += [record.getMessage() for record in caplog.records]
    with httpx.Client() as client:
        for path in ("apps", "requests", "messages", "media"):
            texts.append(client.get(f"{server.url}/_emulator/{path}").text)
    texts.append((tmp_path / "t.json").read_text())
    assert any("access_token=" in t for t in texts)  # the logs saw oapi URLs, masked
    for text in texts[:-1]:
        for secret in (APP_SECRET, token, token2, "a-wrong-secret-value-xyz"):
            assert secret not in text, text
    assert APP_SECRET not in texts[-1]  # the token cache holds tokens, never the secret


def test_shared_http_client_is_not_closed(server: EmulatorServer) -> None:
    client = httpx.Client()
    with App(APP_KEY, APP_SECRET, api_base=server.url, http_client=client) as app:
        app.group(cid(server)).send("x")
    assert not client.is_closed
    client.close()


def test_results_are_frozen(server: EmulatorServer) -> None:
    with server.app_client("ops") as app:
        result = app.group(cid(server)).send("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.msg_key = "y"  # type: ignore[misc]
