"""POST /robot/send: the answer shape, the checks in order, and what an accepted message records."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from dingpush._masking import mask
from dingpush.emulator import Emulator, EmulatorOptions, RobotConfig

from ._support import TOKEN, Send, text

pytestmark = pytest.mark.anyio


async def test_accepts_a_text_message_with_dingtalks_answer(send: Send) -> None:
    response = await send(text())

    assert response.status_code == 200
    assert response.headers["server"] == "DingTalk/1.0.0"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"errcode": 0, "errmsg": "ok"}
    assert type(response.json()["errcode"]) is int


async def test_records_the_accepted_message_in_the_robots_group(
    send: Send, emulator: Emulator
) -> None:
    payload = {
        "msgtype": "text",
        "text": {"content": "disk full @13800000000"},
        "at": {"atMobiles": ["13800000000"], "atUserIds": ["u1"], "isAtAll": False},
        "msgUuid": "uuid-1",
    }
    await send(payload)

    [message] = emulator.messages()
    conversation = emulator.conversation_of("ops")
    assert conversation.kind == "group" and conversation.title == "ops group"
    assert conversation.id.startswith("cid")
    assert message.conversation_id == conversation.id
    assert message.sender == "ops"
    assert message.channel == "robot-webhook"
    assert message.msgtype == "text"
    assert message.msg_uuid == "uuid-1"
    assert "msgUuid" not in message.payload
    assert message.payload["text"] == {"content": "disk full @13800000000"}
    assert message.at.mobiles == ("13800000000",) and message.at.user_ids == ("u1",)
    assert message.at.all is False
    assert message.time == emulator.clock.time()


async def test_every_request_is_recorded_without_the_token(send: Send, emulator: Emulator) -> None:
    await send(text())
    await send(text(), token="wrong")

    ok, refused = emulator.requests()
    assert (ok.robot, ok.accepted, ok.reason, ok.errcode, ok.msgtype) == (
        "ops",
        True,
        "accepted",
        0,
        "text",
    )
    assert ok.message_id == emulator.messages()[0].id
    assert ok.client_ip == "127.0.0.1" and ok.path == "/robot/send"
    assert ok.token == mask(TOKEN) and TOKEN not in repr(ok)
    assert ok.body_size == len(json.dumps(text()).encode())
    assert (refused.robot, refused.reason, refused.errcode) == (None, "unknown_token", 300001)
    assert emulator.rejections() == [refused]


async def test_unknown_token(send: Send) -> None:
    response = await send(text(), token="not-a-robot")
    assert response.json() == {"errcode": 300001, "errmsg": "token is not exist"}


async def test_missing_access_token_is_an_unknown_token(send: Send) -> None:
    assert (await send(text(), token=None)).json()["errcode"] == 300001


async def test_unknown_token_errcode_as_documented(send: Send, emulator: Emulator) -> None:
    emulator.options = EmulatorOptions(unknown_token_errcode=400101)
    response = await send(text(), token="not-a-robot")
    assert response.json() == {"errcode": 400101, "errmsg": "access_token不存在"}


@pytest.mark.parametrize(
    ("status", "errcode", "errmsg"),
    [
        ("disabled", 400102, "机器人已停用"),
        ("not_in_group", 400106, "机器人不存在"),
        ("dissolved", 400013, "群已被解散"),
    ],
)
async def test_robot_status(
    send: Send, emulator: Emulator, status: Any, errcode: int, errmsg: str
) -> None:
    emulator.update_robot("ops", status=status)
    assert (await send(text())).json() == {"errcode": errcode, "errmsg": errmsg}
    assert emulator.rejections()[0].reason == status


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=gbk"],
)
async def test_content_type_must_be_json(send: Send, content_type: str | None) -> None:
    response = await send(text(), content_type=content_type)
    assert response.json() == {"errcode": 43004, "errmsg": "无效的HTTP HEADER Content-Type"}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json;charset=utf-8", "Application/JSON; charset=UTF-8"],
)
async def test_content_type_charset_is_optional(send: Send, content_type: str) -> None:
    assert (await send(text(), content_type=content_type)).json()["errcode"] == 0


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe{}"])
async def test_body_must_be_a_json_object(send: Send, body: bytes) -> None:
    response = await send(content=body)
    assert response.json() == {"errcode": 40035, "errmsg": "缺少参数 json"}


# Python's parser recurses once per level and takes "\ud800" into a string no UTF-8 writer
# accepts: 100,000 levels were a 500, and a lone surrogate was accepted and then broke the chat
# view (a 500 on every page) until a reset. DingTalk's answer to either is not documented [U];
# the emulator reads them as JSON it cannot take.
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"msgtype": "text", "text": {"content": "x"}, "at": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"msgtype": "text", "text": {"content": "a\\ud800b"}}',
        b'{"msgtype": "text", "text": {"content": "x"}, "at": {"\\udfff": 1}}',
    ],
    ids=["deep", "deep-at", "lone-surrogate", "lone-surrogate-key"],
)
async def test_json_it_cannot_read_is_refused_not_a_500(
    send: Send, client: httpx.AsyncClient, emulator: Emulator, body: bytes
) -> None:
    response = await send(content=body)
    assert response.json() == {"errcode": 40035, "errmsg": "缺少参数 json"}
    assert emulator.messages() == []
    assert (await client.get("/")).status_code == 200


@pytest.mark.parametrize("msgtype", ["empty", "voice", "Text", "file"])
async def test_unsupported_msgtype(send: Send, msgtype: str) -> None:
    response = await send({"msgtype": msgtype, msgtype: {"content": "x"}})
    assert response.json() == {"errcode": 400105, "errmsg": "不支持的消息类型"}


_LINK = {"title": "t", "text": "x", "messageUrl": "https://e.com", "picUrl": ""}
_FEED_ITEM = {"title": "t", "messageURL": "https://e.com/1", "picURL": "https://e.com/1.png"}
_CARD = {"title": "t", "text": "x"}


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"text": {"content": "x"}}, "msgtype"),
        ({"msgtype": "text"}, "text"),
        ({"msgtype": "text", "text": "hello"}, "text"),
        ({"msgtype": "text", "text": {}}, "text.content"),
        ({"msgtype": "text", "text": {"content": "  "}}, "text.content"),
        ({"msgtype": "markdown", "markdown": {"text": "x"}}, "markdown.title"),
        ({"msgtype": "markdown", "markdown": {"title": "t"}}, "markdown.text"),
        ({"msgtype": "link", "link": {**_LINK, "messageUrl": None}}, "link.messageUrl"),
        (
            {"msgtype": "link", "link": {"title": "t", "text": "x", "messageURL": "https://e.com"}},
            "link.messageUrl",
        ),
        ({"msgtype": "actionCard", "actionCard": {"text": "x"}}, "actionCard.title"),
        ({"msgtype": "actionCard", "actionCard": _CARD}, "actionCard.singleTitle"),
        (
            {
                "msgtype": "actionCard",
                "actionCard": {**_CARD, "singleTitle": "go", "singleUrl": "u"},
            },
            "actionCard.singleURL",
        ),
        ({"msgtype": "actionCard", "actionCard": {**_CARD, "btns": []}}, "actionCard.btns"),
        (
            {
                "msgtype": "actionCard",
                "actionCard": {**_CARD, "btns": [{"title": "y", "actionUrl": "u"}]},
            },
            "actionCard.btns[0].actionURL",
        ),
        ({"msgtype": "feedCard", "feedCard": {"links": []}}, "feedCard.links"),
        (
            {"msgtype": "feedCard", "feedCard": {"links": [{**_FEED_ITEM, "picURL": None}]}},
            "feedCard.links[0].picURL",
        ),
        (
            {
                "msgtype": "feedCard",
                "feedCard": {"links": [_FEED_ITEM, {"messageURL": "u", "picURL": "p"}]},
            },
            "feedCard.links[1].title",
        ),
        ({"msgtype": "image", "image": {"picUrl": "https://e.com/i.png"}}, "image.picURL"),
    ],
)
async def test_required_fields_with_exact_casing(
    send: Send, emulator: Emulator, payload: Any, param: str
) -> None:
    emulator.update_robot("ops", accept_image=True)  # image's fields are checked once it passes
    response = await send(payload)
    assert response.json() == {"errcode": 40035, "errmsg": f"缺少参数 {param}"}


@pytest.mark.parametrize(
    "payload",
    [
        {"msgtype": "text", "text": {"content": "x"}, "at": {}},
        {"msgtype": "markdown", "markdown": {"title": "t", "text": "#### x"}},
        {"msgtype": "link", "link": _LINK},
        {
            "msgtype": "actionCard",
            "actionCard": {**_CARD, "singleTitle": "go", "singleURL": "https://e.com", "btns": 3},
        },
        {
            "msgtype": "actionCard",
            "actionCard": {
                **_CARD,
                "btnOrientation": "1",
                "hideAvatar": 0,
                "btns": [{"title": "y", "actionURL": "https://e.com/y"}],
            },
        },
        {"msgtype": "feedCard", "feedCard": {"links": [_FEED_ITEM, _FEED_ITEM]}},
        {"msgtype": "image", "image": {"picURL": "https://e.com/i.png"}},
    ],
    ids=["text", "markdown", "link", "card-single", "card-btns", "feedCard", "image"],
)
async def test_accepts_every_documented_message_type(
    send: Send, emulator: Emulator, payload: Any
) -> None:
    emulator.update_robot("ops", accept_image=True)  # image: the robot's option (below)
    assert (await send(payload)).json() == {"errcode": 0, "errmsg": "ok"}
    assert emulator.messages()[0].msgtype == payload["msgtype"]


async def test_at_targets_are_kept_only_where_at_works(send: Send, emulator: Emulator) -> None:
    at = {"atMobiles": ["138"], "isAtAll": True}
    await send({"msgtype": "link", "link": _LINK, "at": at})
    await send({"msgtype": "markdown", "markdown": {"title": "t", "text": "@138"}, "at": at})

    link, markdown = emulator.messages()
    assert link.at.mobiles == () and link.at.all is False
    assert markdown.at.mobiles == ("138",) and markdown.at.all is True


async def test_unknown_fields_are_ignored_by_default(send: Send) -> None:
    assert (await send(text(agentid=1, touser="u"))).json()["errcode"] == 0


async def test_unknown_fields_can_be_refused(send: Send, emulator: Emulator) -> None:
    emulator.options = EmulatorOptions(reject_unknown_fields=True)
    response = await send(text(agentid=1))
    assert response.json()["errcode"] == 40035
    assert "agentid" in response.json()["errmsg"]
    assert (await send(text(at={}, msgUuid="u"))).json()["errcode"] == 0


# Each case fails two checks; the earlier check in protocol §8's order must win.
@pytest.mark.parametrize(
    ("setup", "kwargs", "reason"),
    [
        ({}, {"token": "nope", "content_type": "text/plain"}, "unknown_token"),
        ({"status": "disabled"}, {"content_type": "text/plain"}, "disabled"),
        ({}, {"content_type": "text/plain", "content": b"{"}, "content_type"),
        ({}, {"content": b"[]"}, "bad_json"),
        ({}, {"payload": {"msgtype": "empty", "pad": "x" * 20_001}}, "too_large"),
        ({"ip_allowlist": ("10.0.0.1",)}, {"payload": {"msgtype": "empty"}}, "bad_msgtype"),
        ({"ip_allowlist": ("10.0.0.1",)}, {"payload": {"msgtype": "text"}}, "missing_param"),
        ({"ip_allowlist": ("10.0.0.1",), "secret": "SECx"}, {"payload": "text"}, "ip"),
        ({"secret": "SECx", "keywords": ("zebra",)}, {"payload": "text"}, "sign_missing"),
        ({"keywords": ("zebra",), "rate_limit": 1}, {"payload": "text"}, "keyword"),
    ],
)
async def test_check_order(
    send: Send, emulator: Emulator, setup: dict[str, Any], kwargs: dict[str, Any], reason: str
) -> None:
    if setup:
        emulator.update_robot("ops", **setup)
    if kwargs.get("payload") == "text":
        kwargs["payload"] = text("no keyword here")
    if setup.get("rate_limit"):
        emulator.update_robot("ops", keywords=())
        await send(text())
        emulator.update_robot("ops", keywords=("zebra",))
    await send(**kwargs)
    assert emulator.requests()[-1].reason == reason


async def test_locked_robot_answers_before_content_checks(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", rate_limit=1)
    await send(text())
    await send(text())  # throttled: locks the robot
    response = await send(content=b"not json", content_type="text/plain")
    assert response.json()["errcode"] == 130101
    assert [r.reason for r in emulator.requests()] == ["accepted", "throttled", "locked"]


async def test_image_is_refused_unless_the_robot_accepts_it(send: Send, emulator: Emulator) -> None:
    # §1.3: the support matrix says custom robots cannot send images; the server parses them.
    image = {"msgtype": "image", "image": {"picURL": "https://e.com/i.png"}}
    assert (await send(image)).json() == {"errcode": 400105, "errmsg": "不支持的消息类型"}
    assert emulator.rejections()[-1].reason == "bad_msgtype"
    emulator.update_robot("ops", accept_image=True)
    assert (await send(image)).json() == {"errcode": 0, "errmsg": "ok"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_answer_in_dingtalks_format(
    client: Any, emulator: Emulator, method: str
) -> None:
    response = await client.request(method, f"/robot/send?access_token={TOKEN}")
    assert response.status_code == 200
    assert response.json() == {"errcode": 43002, "errmsg": "需要POST请求"}
    assert response.headers["server"] == "DingTalk/1.0.0"
    [record] = emulator.rejections()
    assert (record.robot, record.reason, record.errcode) == ("ops", "wrong_method", 43002)


async def test_other_methods_can_answer_a_bare_405(client: Any, emulator: Emulator) -> None:
    emulator.options = EmulatorOptions(wrong_method="http405")
    response = await client.get(f"/robot/send?access_token={TOKEN}")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"] == "Method Not Allowed"


async def test_more_mentions_than_the_cap_keep_the_first_50(send: Send, emulator: Emulator) -> None:
    # §1.3 [C1]: at most 50 @ targets. What DingTalk does beyond is not documented: the
    # emulator accepts, mentions the first 50 and says so in the request log.
    mobiles = [f"1380000{i:04d}" for i in range(40)]
    users = [f"user{i}" for i in range(15)]
    at = {"atMobiles": mobiles, "atUserIds": users}
    assert (await send(text("hi", at=at))).json()["errcode"] == 0
    [message] = emulator.messages()
    assert message.at.mobiles == tuple(mobiles) and message.at.user_ids == tuple(users[:10])
    [record] = emulator.requests()
    assert record.findings == (
        "at: 55 people mentioned, DingTalk mentions at most 50 (§1.3); the first 50 were kept",
    )
    assert record.to_dict()["findings"] == list(record.findings)


async def test_the_mention_cap_is_an_option(send: Send, emulator: Emulator) -> None:
    emulator.options = EmulatorOptions(at_limit=0)
    at = {"atUserIds": [f"u{i}" for i in range(60)]}
    assert (await send(text("hi", at=at))).json()["errcode"] == 0
    assert len(emulator.messages()[0].at.user_ids) == 60
    assert emulator.requests()[0].findings == ()
    emulator.options = EmulatorOptions(at_limit=2)
    assert (await send(text("hi", at=at))).json()["errcode"] == 0
    assert emulator.messages()[1].at.user_ids == ("u0", "u1")


async def test_robots_sharing_a_group_post_into_one_conversation(
    send: Send, emulator: Emulator
) -> None:
    emulator.add_robot(RobotConfig("ops2", "other-token", group="ops group"))
    await send(text("one"))
    await send(text("two"), token="other-token")

    assert len(emulator.conversations()) == 1
    assert [m.sender for m in emulator.messages(conversation="ops group")] == ["ops", "ops2"]
