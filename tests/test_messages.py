"""Message models: exact payloads of protocol §1.3, validation, mentions, round trips."""

from __future__ import annotations

import typing

import pytest

import dingpush
from dingpush import (
    ActionCard,
    At,
    Button,
    FeedCard,
    FeedItem,
    InvalidMessage,
    Link,
    Markdown,
    Text,
    parse_message,
)

# The protocol's own example bodies (§1.3), field for field.
PROTOCOL_EXAMPLES: list[tuple[dingpush.Message, dict[str, typing.Any]]] = [
    (
        Text("disk almost full on web-01 @13800000000", at=At(mobiles=["13800000000"])),
        {
            "msgtype": "text",
            "text": {"content": "disk almost full on web-01 @13800000000"},
            "at": {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False},
        },
    ),
    (
        Link(
            "Release 2.3",
            "Changelog and rollout plan",
            "https://example.com/r/2.3",
            "https://example.com/i.png",
        ),
        {
            "msgtype": "link",
            "link": {
                "title": "Release 2.3",
                "text": "Changelog and rollout plan",
                "messageUrl": "https://example.com/r/2.3",
                "picUrl": "https://example.com/i.png",
            },
        },
    ),
    (
        Markdown(
            "CPU alert",
            "#### CPU alert @user123\n> web-01: **97%**\n\n[dashboard](https://example.com/d)",
            at=At(user_ids=["user123"]),
        ),
        {
            "msgtype": "markdown",
            "markdown": {
                "title": "CPU alert",
                "text": "#### CPU alert @user123\n> web-01: **97%**\n\n"
                "[dashboard](https://example.com/d)",
            },
            "at": {"atMobiles": [], "atUserIds": ["user123"], "isAtAll": False},
        },
    ),
    (
        ActionCard(
            "Deploy?",
            "### Deploy v2.3\nApprove?",
            button=Button("Open", "https://example.com/deploy"),
        ),
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "Deploy?",
                "text": "### Deploy v2.3\nApprove?",
                "singleTitle": "Open",
                "singleURL": "https://example.com/deploy",
                "btnOrientation": "0",
            },
        },
    ),
    (
        ActionCard(
            "Vote",
            "Pick one",
            buttons=[Button("Yes", "https://example.com/y"), Button("No", "https://example.com/n")],
            orientation="horizontal",
        ),
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "Vote",
                "text": "Pick one",
                "btnOrientation": "1",
                "btns": [
                    {"title": "Yes", "actionURL": "https://example.com/y"},
                    {"title": "No", "actionURL": "https://example.com/n"},
                ],
            },
        },
    ),
    (
        FeedCard([FeedItem("Item 1", "https://example.com/1", "https://example.com/1.png")]),
        {
            "msgtype": "feedCard",
            "feedCard": {
                "links": [
                    {
                        "title": "Item 1",
                        "messageURL": "https://example.com/1",
                        "picURL": "https://example.com/1.png",
                    }
                ]
            },
        },
    ),
]


@pytest.mark.parametrize(("message", "payload"), PROTOCOL_EXAMPLES)
def test_payload_matches_protocol(
    message: dingpush.Message, payload: dict[str, typing.Any]
) -> None:
    assert message.to_payload() == payload


@pytest.mark.parametrize(("message", "payload"), PROTOCOL_EXAMPLES)
def test_round_trip(message: dingpush.Message, payload: dict[str, typing.Any]) -> None:
    parsed = parse_message(payload)
    assert parsed == message
    assert parsed.to_payload() == payload
    assert type(parsed).msgtype == payload["msgtype"]


def test_hide_avatar_and_casing() -> None:
    card = ActionCard("t", "x", button=Button("b", "https://e.com"), hide_avatar=True)
    body = card.to_payload()["actionCard"]
    assert body["hideAvatar"] == "1"
    assert "singleURL" in body
    assert parse_message(card.to_payload()) == card


def test_link_without_picture_omits_pic_url() -> None:
    assert "picUrl" not in Link("t", "x", "https://e.com").to_payload()["link"]


class TestMentions:
    def test_text_mentions_are_inserted(self) -> None:
        text = Text("deploy done", at=At(mobiles=["13800000000"], user_ids=["u1"]))
        assert text.to_payload()["text"]["content"] == "deploy done @13800000000 @u1"

    def test_markdown_mentions_are_inserted_on_their_own_paragraph(self) -> None:
        md = Markdown("t", "# Alert", at=At(user_ids=["u1"]))
        assert md.to_payload()["markdown"]["text"] == "# Alert\n\n@u1"

    def test_present_mentions_are_not_repeated(self) -> None:
        md = Markdown(
            "t", "ping @u1 and @13800000000", at=At(user_ids=["u1"], mobiles=["13800000000"])
        )
        assert md.to_payload()["markdown"]["text"] == "ping @u1 and @13800000000"

    def test_prefix_of_another_mention_is_not_a_match(self) -> None:
        text = Text("cc @u10", at=At(user_ids=["u1"]))
        assert text.to_payload()["text"]["content"] == "cc @u10 @u1"

    def test_at_all_inserts_nothing(self) -> None:
        payload = Text("all hands", at=At(all=True)).to_payload()
        assert payload["text"]["content"] == "all hands"
        assert payload["at"]["isAtAll"] is True

    def test_a_lone_string_is_one_mention(self) -> None:
        assert At(mobiles="13800000000").mobiles == ("13800000000",)

    def test_fifty_mentions_at_most(self) -> None:
        At(user_ids=[f"u{i}" for i in range(50)])
        with pytest.raises(InvalidMessage, match="at most 50") as info:
            At(user_ids=[f"u{i}" for i in range(30)], mobiles=[f"138{i:08}" for i in range(21)])
        assert info.value.field == "at"

    def test_merged_unions_in_order(self) -> None:
        merged = At(user_ids=["a", "b"]).merged(At(user_ids=["b", "c"], all=True))
        assert merged == At(user_ids=["a", "b", "c"], all=True)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Text(""), "text.content"),
        (lambda: Text("   \n"), "text.content"),
        (lambda: Markdown("", "x"), "markdown.title"),
        (lambda: Markdown("t", ""), "markdown.text"),
        (lambda: Link("", "x", "https://e.com"), "link.title"),
        (lambda: Link("t", "x", ""), "link.messageUrl"),
        (lambda: Link("t", "x", "example.com/no-scheme"), "link.messageUrl"),
        (lambda: Link("t", "x", "https://e.com", at=At(all=True)), "at"),
        (lambda: FeedCard([]), "feedCard.links"),
        (
            lambda: FeedCard([FeedItem("t", "https://e.com", "https://e.com/p")], at=At(all=True)),
            "at",
        ),
        (lambda: FeedItem("t", "https://e.com", ""), "feedCard.links.picURL"),
        (lambda: ActionCard("t", "x"), "actionCard.btns"),
        (
            lambda: ActionCard(
                "t",
                "x",
                button=Button("a", "https://e.com"),
                buttons=[Button("b", "https://e.com")],
            ),
            "actionCard.btns",
        ),
        (lambda: ActionCard("t", "x", button=Button("a", "https://e.com"), at=At(all=True)), "at"),
        (lambda: Button("", "https://e.com"), "button.title"),
        (lambda: At(mobiles=[""]), "at.mobiles"),
    ],
)
def test_validation_names_the_field(build: typing.Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        build()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_long_messages_are_never_an_error_at_construction() -> None:
    Text("字" * 100_000)
    Markdown("t", "x" * 1_000_000)


@pytest.mark.parametrize(
    "payload",
    [
        # An image parses now (dingpush.Image, sent by apps); the outgoing-reply "empty" does not.
        {"msgtype": "empty"},
        {"msgtype": "nope"},
        {"text": {"content": "missing msgtype"}},
    ],
)
def test_parse_refuses_unknown_msgtype(payload: dict[str, typing.Any]) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(payload)
    assert info.value.field == "msgtype"


def test_parse_names_wrong_shapes() -> None:
    with pytest.raises(InvalidMessage, match="text: must be a JSON object"):
        parse_message({"msgtype": "text", "text": "hello"})
    with pytest.raises(InvalidMessage, match=r"actionCard.btns: must be a list"):
        parse_message(
            {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x", "btns": {}}}
        )


def test_with_keyword_appends_only_when_missing() -> None:
    assert Text("deploy").with_keyword("ALERT").content == "deploy\nALERT"
    assert Text("ALERT deploy").with_keyword("ALERT").content == "ALERT deploy"
    assert Markdown("t", "body").with_keyword("K").text == "body\n\nK"
    assert Link("t", "x", "https://e.com").with_keyword("K").text == "x K"
    card = ActionCard("t", "x", button=Button("b", "https://e.com"))
    assert card.with_keyword("K").searchable_text().count("K") == 1
    feed = FeedCard([FeedItem("a", "https://e.com", "https://e.com/p")])
    assert "K" in feed.with_keyword("K").searchable_text()


def test_markdown_with_image() -> None:
    md = Markdown.with_image("Chart", "https://e.com/c.png", text="CPU today")
    assert md.text == "CPU today\n\n![Chart](https://e.com/c.png)"


def test_messages_are_frozen() -> None:
    text = Text("x")
    with pytest.raises(AttributeError):
        text.content = "y"  # type: ignore[misc]
