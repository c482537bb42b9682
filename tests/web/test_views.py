"""The adapters: robot payloads (§1.3), app robot msgKey/msgParam (§3.3), work notices (§4.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dingpush import ActionCard, At, Button, FeedCard, FeedItem, Link, Markdown, Text
from dingpush.web import (
    ActionCardView,
    AudioView,
    ButtonView,
    DingView,
    FeedCardView,
    FeedItemView,
    FileView,
    ImageView,
    LinkView,
    MarkdownView,
    MediaRef,
    MessageRenderer,
    OAView,
    TextView,
    UnsupportedView,
    VideoView,
    view_for,
    view_from_app_robot,
    view_from_ding,
    view_from_robot,
    view_from_work_notice,
)

# -- custom robot payloads --------------------------------------------------------------------


def test_text_with_mentions() -> None:
    payload = Text("hi @138", at=At(mobiles=["138"], user_ids=["u1"], all=True)).to_payload()
    assert view_from_robot(payload) == TextView(
        content=payload["text"]["content"], mentions=("138", "u1"), at_all=True
    )


def test_legacy_at_dingtalk_ids_are_mentions() -> None:
    payload = {"msgtype": "text", "text": {"content": "x"}, "at": {"atDingtalkIds": ["d1"]}}
    view = view_from_robot(payload)
    assert isinstance(view, TextView) and view.mentions == ("d1",)


def test_markdown() -> None:
    payload = Markdown("CPU", "### 97%", at=At(user_ids=["ops"])).to_payload()
    view = view_from_robot(payload)
    assert isinstance(view, MarkdownView)
    assert (view.title, view.mentions, view.preview) == ("CPU", ("ops",), "CPU")


def test_link() -> None:
    payload = Link("R", "notes", "https://e.com/r", "https://e.com/i.png").to_payload()
    assert view_from_robot(payload) == LinkView(
        title="R", text="notes", url="https://e.com/r", image=MediaRef(url="https://e.com/i.png")
    )


def test_action_card_single_button_wins_over_btns() -> None:
    payload = {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "T",
            "text": "x",
            "singleTitle": "Open",
            "singleURL": "https://e.com",
            "btns": [{"title": "ignored", "actionURL": "https://e.com/i"}],
            "hideAvatar": "1",
        },
    }
    assert view_from_robot(payload) == ActionCardView(
        title="T",
        text="x",
        buttons=(ButtonView("Open", "https://e.com"),),
        single=True,
        hide_avatar=True,
    )


@pytest.mark.parametrize(("flag", "orientation"), [("0", "vertical"), ("1", "horizontal")])
def test_action_card_buttons_and_orientation(flag: str, orientation: str) -> None:
    card = ActionCard(
        "V",
        "pick",
        buttons=[Button("Yes", "https://e.com/y"), Button("No", "https://e.com/n")],
        orientation="horizontal" if flag == "1" else "vertical",
    )
    view = view_from_robot(card.to_payload())
    assert isinstance(view, ActionCardView)
    assert view.orientation == orientation and not view.single and not view.hide_avatar
    assert view.buttons == (
        ButtonView("Yes", "https://e.com/y"),
        ButtonView("No", "https://e.com/n"),
    )


def test_feed_card() -> None:
    payload = FeedCard([FeedItem("A", "https://e.com/a", "https://e.com/a.png")]).to_payload()
    view = view_from_robot(payload)
    assert view == FeedCardView(
        items=(FeedItemView("A", "https://e.com/a", MediaRef(url="https://e.com/a.png")),)
    )
    assert view.preview == "[Link] A"


def test_image_type_sent_by_dingtalkchatbot() -> None:
    view = view_from_robot({"msgtype": "image", "image": {"picURL": "https://e.com/p.png"}})
    assert view == ImageView(image=MediaRef(url="https://e.com/p.png"))


@pytest.mark.parametrize(
    "payload",
    [{}, {"msgtype": "voice", "voice": {}}, {"msgtype": 3}, {"msgtype": "oa"}],
)
def test_unknown_types_are_drawn_as_unsupported(payload: dict[str, Any]) -> None:
    assert isinstance(view_from_robot(payload), UnsupportedView)


def test_malformed_fields_become_empty_values() -> None:
    payload = {
        "msgtype": "actionCard",
        "actionCard": {
            "title": 5,
            "text": None,
            "btns": [None, {"title": ["x"]}],
            "btnOrientation": 1,
        },
    }
    view = view_from_robot(payload)
    assert view == ActionCardView(
        title="5",
        text="",
        buttons=(ButtonView("", ""), ButtonView("", "")),
        orientation="horizontal",
    )


# -- app robots ------------------------------------------------------------------------------


def app(key: str, **param: Any) -> Any:
    return view_from_app_robot(key, json.dumps(param))


def test_app_text_markdown_image_link() -> None:
    assert app("sampleText", content="hi") == TextView(content="hi")
    assert app("sampleMarkdown", title="T", text="**x**") == MarkdownView(title="T", text="**x**")
    assert app("sampleImageMsg", photoURL="@lADPmedia") == ImageView(
        image=MediaRef(media_id="@lADPmedia")
    )
    assert app(
        "sampleLink", title="T", text="x", messageUrl="https://e.com", picUrl="$iAE"
    ) == LinkView(title="T", text="x", url="https://e.com", image=MediaRef(media_id="$iAE"))


def test_app_action_cards() -> None:
    single = app(
        "sampleActionCard", title="T", text="x", singleTitle="Go", singleURL="https://e.com"
    )
    assert single == ActionCardView(
        title="T", text="x", buttons=(ButtonView("Go", "https://e.com"),), single=True
    )
    three = app(
        "sampleActionCard3",
        title="T",
        text="x",
        **{f"actionTitle{n}": f"B{n}" for n in (1, 2, 3)},
        **{f"actionURL{n}": f"https://e.com/{n}" for n in (1, 2, 3)},
    )
    assert isinstance(three, ActionCardView)
    assert [b.title for b in three.buttons] == ["B1", "B2", "B3"]
    assert three.orientation == "vertical"
    two_across = app(
        "sampleActionCard6",
        title="T",
        text="x",
        buttonTitle1="L",
        buttonUrl1="https://e.com/l",
        buttonTitle2="R",
        buttonUrl2="https://e.com/r",
    )
    assert isinstance(two_across, ActionCardView)
    assert two_across.orientation == "horizontal"
    assert two_across.buttons == (
        ButtonView("L", "https://e.com/l"),
        ButtonView("R", "https://e.com/r"),
    )


def test_app_audio_file_video() -> None:
    assert app("sampleAudio", mediaId="@a", duration="4000") == AudioView(
        media=MediaRef(media_id="@a"), duration=4.0
    )
    assert app("sampleFile", mediaId="@f", fileName="r.pdf", fileType="pdf") == FileView(
        media=MediaRef(media_id="@f"), name="r.pdf", file_type="pdf"
    )
    video = app("sampleVideo", duration="12", videoMediaId="@v", videoType="mp4", picMediaId="@p")
    assert video == VideoView(
        media=MediaRef(media_id="@v"),
        cover=MediaRef(media_id="@p"),
        duration=12.0,
        video_type="mp4",
    )


def test_app_msg_param_as_object_and_bad_json() -> None:
    assert view_from_app_robot("sampleText", {"content": "x"}) == TextView(content="x")
    bad = view_from_app_robot("sampleText", "{not json")
    assert isinstance(bad, UnsupportedView) and "JSON" in bad.reason
    assert isinstance(view_from_app_robot("sampleCard", "{}"), UnsupportedView)


# -- work notifications ----------------------------------------------------------------------


def test_work_notice_types() -> None:
    assert view_from_work_notice({"msgtype": "text", "text": {"content": "x"}}) == TextView(
        content="x"
    )
    assert view_from_work_notice(
        {"msgtype": "markdown", "markdown": {"title": "T", "text": "y"}}
    ) == MarkdownView(title="T", text="y")
    assert view_from_work_notice({"msgtype": "image", "image": {"media_id": "@i"}}) == ImageView(
        image=MediaRef(media_id="@i")
    )
    assert view_from_work_notice({"msgtype": "file", "file": {"media_id": "@f"}}) == FileView(
        media=MediaRef(media_id="@f")
    )
    assert view_from_work_notice(
        {"msgtype": "voice", "voice": {"media_id": "@v", "duration": "10"}}
    ) == AudioView(media=MediaRef(media_id="@v"), duration=10.0)
    link = {"messageUrl": "https://e.com", "picUrl": "@p", "title": "T", "text": "x"}
    assert view_from_work_notice({"msgtype": "link", "link": link}) == LinkView(
        title="T", text="x", url="https://e.com", image=MediaRef(media_id="@p")
    )


def test_work_notice_action_cards_use_snake_case() -> None:
    single = {"title": "T", "markdown": "m", "single_title": "Go", "single_url": "https://e.com"}
    assert view_from_work_notice({"msgtype": "action_card", "action_card": single}) == (
        ActionCardView(
            title="T", text="m", buttons=(ButtonView("Go", "https://e.com"),), single=True
        )
    )
    buttons = {
        "title": "T",
        "markdown": "m",
        "btn_orientation": "1",
        "btn_json_list": [{"title": "A", "action_url": "https://e.com/a"}],
    }
    view = view_from_work_notice(json.dumps({"msgtype": "action_card", "action_card": buttons}))
    assert view == ActionCardView(
        title="T", text="m", buttons=(ButtonView("A", "https://e.com/a"),), orientation="horizontal"
    )


def test_work_notice_oa() -> None:
    oa = {
        "message_url": "https://e.com/m",
        "head": {"bgcolor": "FFBBBBBB", "text": "App"},
        "status_bar": {"status_value": "Approved", "status_bg": "0xFF78C06E"},
        "body": {
            "title": "Leave",
            "form": [{"key": "Who:", "value": "Li"}],
            "rich": {"num": "3", "unit": "days"},
            "content": "x",
            "image": "@img",
            "file_count": "2",
            "author": "Li",
        },
    }
    view = view_from_work_notice({"msgtype": "oa", "oa": oa})
    assert view == OAView(
        url="https://e.com/m",
        head_text="App",
        head_color="#BBBBBB",
        title="Leave",
        form=(("Who:", "Li"),),
        rich_num="3",
        rich_unit="days",
        content="x",
        image=MediaRef(media_id="@img"),
        file_count="2",
        author="Li",
        status_value="Approved",
        status_color="#78C06E",
    )
    assert view.preview == "[OA] Leave"


def test_work_notice_unknown_and_bad_json() -> None:
    assert isinstance(view_from_work_notice({"msgtype": "mystery"}), UnsupportedView)
    assert isinstance(view_from_work_notice("{"), UnsupportedView)


# -- dispatch by channel ---------------------------------------------------------------------


def test_view_for_dispatches_by_channel_then_shape() -> None:
    robot = {"msgtype": "text", "text": {"content": "r"}}
    app_payload = {"msgKey": "sampleText", "msgParam": '{"content": "a"}', "robotCode": "ding"}
    msg = {"msgtype": "text", "text": {"content": "n"}}
    notice = {"agent_id": 1, "msg": msg}
    assert view_for(robot, "robot-webhook") == TextView(content="r")
    assert view_for(app_payload, "app-robot") == TextView(content="a")
    assert view_for(notice, "work-notice") == TextView(content="n")
    assert view_for(msg, "work-notice") == TextView(content="n")
    assert view_for(app_payload) == TextView(content="a")
    assert view_for(notice) == TextView(content="n")
    assert view_for(robot) == TextView(content="r")


def test_media_ref_parsing() -> None:
    assert MediaRef.parse("https://e.com/a.png") == MediaRef(url="https://e.com/a.png")
    assert MediaRef.parse("@lAD") == MediaRef(media_id="@lAD")
    assert MediaRef.parse("  ") is None
    assert MediaRef.parse(None) is None


# -- DINGs (the relay's outbox keeps an escalation step's DING request) ----------------------


def test_a_ding_request_reads_as_a_ding() -> None:
    request = {
        "user_ids": ["u-alice"],
        "content": "#7 disk full on db1",
        "remind_type": "call",
        "fallback": True,
        "incident": 7,
        "who": "alice",
    }
    view = view_for(request, channel="ding")
    assert view == DingView(
        content="#7 disk full on db1",
        who="alice",
        user_ids=("u-alice",),
        remind_type="call",
        fallback=True,
    )
    assert view.preview == "[DING phone] alice: #7 disk full on db1"
    assert view_from_ding({"user_ids": ["u1", 2, None]}).preview == "[DING in-app] u1, 2: "
    assert view_from_ding({"remind_type": 3, "who": ["x"]}).receivers == "(nobody)"


def test_a_ding_is_drawn_with_who_how_and_what() -> None:
    html = MessageRenderer().render(
        {"user_ids": ["u-1"], "content": "<b>#7</b>", "remind_type": "sms", "who": "bob"},
        channel="ding",
    )
    assert 'data-kind="ding"' in html and "DING · SMS" in html
    assert "to bob" in html and "(u-1)" in html
    assert "&lt;b&gt;#7&lt;/b&gt;" in html and "not supported" not in html
