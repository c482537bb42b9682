"""A genuine peer client, DingtalkChatbot 1.5.7, sends every message type to the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dingtalkchatbot.chatbot import ActionCard, CardItem, DingtalkChatbot, FeedLink

from dingpush.emulator import Message
from dingpush.testing import EmulatorServer

from ._support import SECRET


@pytest.fixture(params=[None, SECRET], ids=["unsigned", "signed"])
def bot(
    request: pytest.FixtureRequest, dingtalk_emulator: EmulatorServer
) -> Iterator[DingtalkChatbot]:
    secret = request.param
    dingtalk_emulator.add_robot("ops", secret=secret)
    yield DingtalkChatbot(dingtalk_emulator.webhook_url("ops"), secret=secret)


def only_message(server: EmulatorServer) -> Message:
    [message] = server.emulator.messages(robot="ops")
    assert message.sender == "ops" and message.channel == "robot-webhook"
    return message


def accepted(reply: dict[str, Any]) -> None:
    assert reply == {"errcode": 0, "errmsg": "ok"}


def test_text_with_at(bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer) -> None:
    accepted(bot.send_text("disk almost full", at_mobiles=["13800000000"]))
    message = only_message(dingtalk_emulator)
    assert message.msgtype == "text"
    assert message.payload["text"]["content"] == "disk almost full\n@13800000000"
    assert message.at.mobiles == ("13800000000",)


def test_markdown(bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer) -> None:
    accepted(bot.send_markdown("CPU alert", "#### CPU\n> web-01: **97%**", is_at_all=True))
    message = only_message(dingtalk_emulator)
    assert message.msgtype == "markdown"
    assert message.payload["markdown"]["title"] == "CPU alert"
    assert message.at.all is True


def test_link(bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer) -> None:
    accepted(bot.send_link("Release 2.3", "Changelog", "https://example.com/r/2.3"))
    message = only_message(dingtalk_emulator)
    link = message.payload["link"]
    assert (message.msgtype, link["title"], link["text"]) == ("link", "Release 2.3", "Changelog")
    assert link["messageUrl"].startswith("dingtalk://dingtalkclient/page/link?url=https%3A")


def test_action_card_with_one_button(
    bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer
) -> None:
    card = ActionCard("Deploy?", "### Deploy v2.3", [CardItem("Open", "https://example.com/d")])
    accepted(bot.send_action_card(card))
    payload = only_message(dingtalk_emulator).payload["actionCard"]
    assert payload["singleTitle"] == "Open" and "singleURL" in payload


def test_action_card_with_several_buttons(
    bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer
) -> None:
    buttons = [CardItem("Yes", "https://example.com/y"), CardItem("No", "https://example.com/n")]
    accepted(bot.send_action_card(ActionCard("Vote", "Pick one", buttons, btn_orientation=1)))
    payload = only_message(dingtalk_emulator).payload["actionCard"]
    assert [b["title"] for b in payload["btns"]] == ["Yes", "No"]
    assert all("actionURL" in b for b in payload["btns"])


def test_feed_card(bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer) -> None:
    links = [
        CardItem("Item 1", "https://example.com/1", "https://example.com/1.png"),
        FeedLink("Item 2", "https://example.com/2", "https://example.com/2.png"),
    ]
    accepted(bot.send_feed_card(links))
    message = only_message(dingtalk_emulator)
    assert message.msgtype == "feedCard"
    assert [item["title"] for item in message.payload["feedCard"]["links"]] == ["Item 1", "Item 2"]


def test_image_is_refused_as_the_support_matrix_says(
    bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer
) -> None:
    # §1.3: custom robots cannot send images; the undocumented type is refused by default.
    assert bot.send_image("https://example.com/cat.png") == {
        "errcode": 400105,
        "errmsg": "不支持的消息类型",
    }
    assert dingtalk_emulator.emulator.messages() == []


def test_image_undocumented_type_when_the_robot_accepts_it(
    bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.emulator.update_robot("ops", accept_image=True)
    accepted(bot.send_image("https://example.com/cat.png"))
    message = only_message(dingtalk_emulator)
    assert message.payload["image"] == {"picURL": "https://example.com/cat.png"}


def test_wrong_secret_is_refused(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", secret=SECRET)
    bot = DingtalkChatbot(dingtalk_emulator.webhook_url("ops"), secret="SECwrong")
    assert bot.send_text("hello") == {"errcode": 310000, "errmsg": "sign not match"}
    assert dingtalk_emulator.emulator.messages() == []


def test_more_than_50_mentions_keep_the_first_50(
    bot: DingtalkChatbot, dingtalk_emulator: EmulatorServer
) -> None:
    # §1.3 [C1]: at most 50 @ targets; the emulator keeps the first 50 and says so.
    mobiles = [f"1380000{i:04d}" for i in range(55)]
    accepted(bot.send_text("all hands", at_mobiles=mobiles))
    message = only_message(dingtalk_emulator)
    assert message.at.mobiles == tuple(mobiles[:50])
    [record] = dingtalk_emulator.emulator.requests()
    assert record.findings and "at most 50" in record.findings[0]


def test_a_get_on_the_webhook_answers_with_an_errcode(dingtalk_emulator: EmulatorServer) -> None:
    # DingtalkChatbot and friends read errcode; a GET gets DingTalk's 43002, not a 405 page.
    dingtalk_emulator.add_robot("ops")
    reply = httpx.get(dingtalk_emulator.webhook_url("ops"))
    assert reply.status_code == 200
    assert reply.json() == {"errcode": 43002, "errmsg": "需要POST请求"}
