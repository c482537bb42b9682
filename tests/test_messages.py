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
from dingpush._messages._fields import UnknownField

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


# -- strict parsing (issue 11, item 1): JSON types are checked, never converted by truthiness --

_TEXT: dict[str, typing.Any] = {"msgtype": "text", "text": {"content": "no ping"}}
_CARD: dict[str, typing.Any] = {
    "msgtype": "actionCard",
    "actionCard": {"title": "t", "text": "x", "singleTitle": "Open", "singleURL": "https://e.com"},
}


@pytest.mark.parametrize("value", ["false", "no", "0", "", "true", 1, 0, 1e400, [], {}, [True]])
def test_is_at_all_must_be_a_json_boolean(value: object) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message({**_TEXT, "at": {"isAtAll": value}})
    assert info.value.pointer == "/at/isAtAll"
    assert info.value.field == "at.isAtAll"
    assert info.value.rule == "a JSON boolean (true or false)"
    assert "at.isAtAll: must be true or false" in str(info.value)


def test_is_at_all_true_false_and_null() -> None:
    assert parse_message({**_TEXT, "at": {"isAtAll": True}}).mentions == At(all=True)
    assert parse_message({**_TEXT, "at": {"isAtAll": False}}).mentions is None
    assert parse_message({**_TEXT, "at": {"isAtAll": None}}).mentions is None  # null: not given
    assert parse_message({**_TEXT, "at": {}}).mentions is None  # DingtalkChatbot sends {}


@pytest.mark.parametrize(
    ("at", "pointer"),
    [
        ({"atMobiles": "123"}, "/at/atMobiles"),
        ({"atMobiles": [13800000000]}, "/at/atMobiles/0"),
        ({"atUserIds": ["u1", None]}, "/at/atUserIds/1"),
        ({"atDingtalkIds": {"a": "b"}}, "/at/atDingtalkIds"),
        ({"atUserIds": True}, "/at/atUserIds"),
    ],
)
def test_mention_lists_are_lists_of_strings(at: dict[str, object], pointer: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message({**_TEXT, "at": at})
    assert info.value.pointer == pointer
    assert info.value.rule in ("a list of strings", "a string")


@pytest.mark.parametrize(
    ("value", "horizontal"), [("0", False), ("1", True), (0, False), (1, True), (None, False)]
)
def test_btn_orientation_takes_the_strings_and_integers_zero_and_one(
    value: object, horizontal: bool
) -> None:
    card = parse_message({**_CARD, "actionCard": {**_CARD["actionCard"], "btnOrientation": value}})
    assert isinstance(card, ActionCard)
    assert card.orientation == ("horizontal" if horizontal else "vertical")


@pytest.mark.parametrize("key", ["btnOrientation", "hideAvatar"])
@pytest.mark.parametrize("value", [{}, [], "", "2", 2, True, False, "true", 1.0, "horizontal"])
def test_card_flags_refuse_anything_but_zero_and_one(key: str, value: object) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message({**_CARD, "actionCard": {**_CARD["actionCard"], key: value}})
    assert info.value.pointer == f"/actionCard/{key}"
    assert info.value.rule == '"0" or "1"'


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        ({"msgtype": "text", "text": {"content": 42}}, "/text/content"),
        ({"msgtype": "text", "text": {"content": ["a"]}}, "/text/content"),
        ({"msgtype": "markdown", "markdown": {"title": True, "text": "x"}}, "/markdown/title"),
        (
            {"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": 7}},
            "/link/messageUrl",
        ),
        (
            {
                "msgtype": "feedCard",
                "feedCard": {
                    "links": [
                        {"title": "a", "messageURL": "https://e.com", "picURL": "https://e.com"},
                        {"title": "b", "messageURL": "https://e.com", "picURL": 1},
                    ]
                },
            },
            "/feedCard/links/1/picURL",
        ),
        (
            {
                "msgtype": "actionCard",
                "actionCard": {"title": "t", "text": "x", "btns": [{"title": "", "actionURL": 1}]},
            },
            "/actionCard/btns/0/title",
        ),
        ({**_TEXT, "msgUuid": 7}, "/msgUuid"),
        ({**_TEXT, "at": "everyone"}, "/at"),
    ],
)
def test_strings_are_strings_and_errors_point_at_them(
    payload: dict[str, typing.Any], pointer: str
) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(payload)
    assert info.value.pointer == pointer


def test_unknown_fields_are_reported_not_silently_dropped() -> None:
    unknown: list[UnknownField] = []
    message = parse_message(
        {**_TEXT, "at": {"isAtALL": True, "atMobiles": ["138"]}, "extra": 1}, unknown=unknown
    )
    assert message.mentions == At(mobiles=["138"])
    assert unknown == [UnknownField("/at/isAtALL", "isAtAll"), UnknownField("/extra")]
    assert str(unknown[0]) == (
        "at.isAtALL is not a field of this message and was ignored; did you mean isAtAll?"
    )
    card: list[UnknownField] = []
    parse_message(
        {**_CARD, "actionCard": {**_CARD["actionCard"], "btnOrientaton": "1"}}, unknown=card
    )
    assert card == [UnknownField("/actionCard/btnOrientaton", "btnOrientation")]


def test_what_to_payload_writes_parses_back_with_nothing_unknown() -> None:
    for message, _ in PROTOCOL_EXAMPLES:
        unknown: list[UnknownField] = []
        assert parse_message(message.to_payload(), unknown=unknown) == message
        assert unknown == []
