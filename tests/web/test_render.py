"""The renderer: every message type, each markdown element in and out of DingTalk's subset."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from dingpush import ActionCard, At, Button, FeedCard, FeedItem, Link, Markdown, Text
from dingpush.web import (
    MessageRenderer,
    avatar_for,
    findings_for,
    format_duration,
    image_src,
    markdown_html,
    safe_href,
    stylesheet,
    text_html,
    time_label,
)

MEDIA = "/_emulator/media/"


@pytest.fixture
def renderer() -> MessageRenderer:
    return MessageRenderer(media_url=lambda media_id: MEDIA + media_id)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(fragment: str) -> _Collector:
    collector = _Collector()
    collector.feed(fragment)
    return collector


def visible_text(fragment: str) -> str:
    return " ".join("".join(parsed(fragment).text).split())


def tags(fragment: str, name: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in parsed(fragment).tags if tag == name]


# -- markdown: the documented subset ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("# T", '<p class="md-h md-h1">T</p>'),
        ("###### T", '<p class="md-h md-h6">T</p>'),
        ("> q", "<blockquote><p>q</p></blockquote>"),
        ("**b**", "<p><strong>b</strong></p>"),
        ("*i*", "<p><em>i</em></p>"),
        ("- a\n- b", "<ul><li>a</li><li>b</li></ul>"),
        ("2. a\n3. b", '<ol start="2"><li>a</li><li>b</li></ol>'),
        ("a  \nb", "<p>a<br>\nb</p>"),
        ("a\nb", "<p>a\nb</p>"),
        ("a&nbsp;b", "<p>a\u00a0b</p>"),
    ],
)
def test_supported_markdown(source: str, expected: str) -> None:
    assert str(markdown_html(source)) == expected


def test_links_and_images(renderer: MessageRenderer) -> None:
    out = str(markdown_html("[docs](https://e.com/d) ![chart](https://e.com/c.png)"))
    (link,) = tags(out, "a")
    assert link == {
        "class": "md-link",
        "href": "https://e.com/d",
        "target": "_blank",
        "rel": "noopener noreferrer",
    }
    (image,) = tags(out, "img")
    assert image["src"] == "https://e.com/c.png" and image["alt"] == "chart"


def test_images_by_media_id_load_from_the_media_store() -> None:
    out = str(markdown_html("![x](@lADPmedia)", media_url=lambda m: MEDIA + m))
    assert tags(out, "img")[0]["src"] == MEDIA + "@lADPmedia"
    without_store = str(markdown_html("![x](@lADPmedia)"))
    assert tags(without_store, "img") == []
    assert "[image: @lADPmedia]" in visible_text(without_store)


def test_mentions_are_highlighted_only_when_named() -> None:
    out = str(markdown_html("@ops @bob", mentions=["ops"]))
    assert out == '<p><span class="mention">@ops</span> @bob</p>'


# -- markdown: outside the subset, shown as typed ------------------------------------------


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("| a | b |\n|---|---|\n| 1 | 2 |", "| a | b | |---|---| | 1 | 2 |"),
        ("```\ncode\n```", "``` code ```"),
        ("`x`", "`x`"),
        ("~~x~~", "~~x~~"),
        ("<b>x</b>", "<b>x</b>"),
        ('<font color="red">x</font>', '<font color="red">x</font>'),
        ("&amp;", "&amp;"),
        ("__x__", "__x__"),
        ("####### x", "####### x"),
        ("* x", "* x"),
        ("---", "---"),
        ("- [ ] x", "[ ] x"),
    ],
)
def test_unsupported_markdown_is_literal_text(source: str, shown: str) -> None:
    out = str(markdown_html(source))
    assert visible_text(out) == shown
    assert not {tag for tag, _ in parsed(out).tags} - {"p", "ul", "li", "br"}


# -- safety ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "/relative",
        "",
    ],
)
def test_unsafe_link_targets_are_not_links(url: str) -> None:
    assert safe_href(url) is None
    out = str(markdown_html(f"[x]({url})"))
    assert tags(out, "a") == []


def test_dingtalk_side_panel_links_open_their_target() -> None:
    wrapped = "dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fe.com%2Fa&pc_slide=true"
    assert safe_href(wrapped) == "https://e.com/a"
    assert safe_href("dingtalk://dingtalkclient/page/link?url=javascript%3Ax") is None
    assert safe_href("mailto:ops@e.com") == "mailto:ops@e.com"


def test_image_sources() -> None:
    assert image_src("https://e.com/a.png", None) == "https://e.com/a.png"
    assert image_src("javascript:x", None) is None
    assert image_src("@m", lambda m: "/m/" + m) == "/m/@m"
    assert image_src(None, None) is None


def test_text_is_escaped_everywhere(renderer: MessageRenderer) -> None:
    evil = "<script>alert(1)</script>\"'&"
    payloads: list[dict[str, Any]] = [
        Text(evil).to_payload(),
        Markdown(evil, evil).to_payload(),
        Link(evil, evil, 'https://e.com/?a=1&b="2"').to_payload(),
        ActionCard(evil, evil, button=Button(evil, "https://e.com")).to_payload(),
        FeedCard([FeedItem(evil, "https://e.com", "https://e.com/p.png")]).to_payload(),
    ]
    for payload in payloads:
        out = str(renderer.render(payload, sender=evil))
        assert "<script>" not in out
        assert not [t for t, _ in parsed(out).tags if t == "script"]
        assert "&lt;script&gt;" in out
    link = str(renderer.render(payloads[2]))
    assert tags(link, "a")[0]["href"] == 'https://e.com/?a=1&b="2"'


# -- every message type ------------------------------------------------------------------------


def test_text_message(renderer: MessageRenderer) -> None:
    payload = Text("line 1\nline 2 @138 https://e.com/x", at=At(mobiles=["138"])).to_payload()
    out = str(renderer.render(payload, sender="ops", time=1_700_000_000.0, message_id=7))
    assert 'data-kind="text"' in out and 'id="msg-7"' in out
    assert "line 1<br>" in out
    assert '<span class="mention">@138</span>' in out
    assert tags(out, "a")[0]["href"] == "https://e.com/x"
    assert tags(out, "time")[0]["datetime"] == time_label(1_700_000_000.0).iso  # type: ignore[union-attr]
    assert "ops" in visible_text(out)


def test_markdown_message_shows_the_body_not_the_title(renderer: MessageRenderer) -> None:
    out = str(renderer.render(Markdown("Title only", "### Body").to_payload(), sender="ops"))
    assert "Title only" not in out
    assert '<p class="md-h md-h3">Body</p>' in out


def test_link_card(renderer: MessageRenderer) -> None:
    link = {"title": "T", "text": "text", "messageUrl": "https://e.com/r", "picUrl": "@pic"}
    out = str(renderer.render({"msgtype": "link", "link": link}))
    (card,) = tags(out, "a")
    assert card["href"] == "https://e.com/r" and "card--link" in str(card["class"])
    assert tags(out, "img")[0]["src"] == MEDIA + "@pic"
    assert visible_text(out).endswith("T text")


def test_action_card_single_button(renderer: MessageRenderer) -> None:
    card = ActionCard("T", "**x**", button=Button("Read more", "https://e.com/more"))
    out = str(renderer.render(card.to_payload()))
    assert "card__buttons--single" in out
    assert [a["href"] for a in tags(out, "a")] == ["https://e.com/more"]
    assert "<strong>x</strong>" in out


@pytest.mark.parametrize("orientation", ["vertical", "horizontal"])
def test_action_card_buttons_orientation(renderer: MessageRenderer, orientation: Any) -> None:
    buttons = [Button("A", "https://e.com/a"), Button("B", "https://e.com/b")]
    out = str(
        renderer.render(ActionCard("T", "x", buttons=buttons, orientation=orientation).to_payload())
    )
    assert f"card__buttons--{orientation}" in out
    assert [(a["href"], a["class"]) for a in tags(out, "a")] == [
        ("https://e.com/a", "card__button"),
        ("https://e.com/b", "card__button"),
    ]


def test_action_card_hide_avatar_and_dead_buttons(renderer: MessageRenderer) -> None:
    payload = {
        "msgtype": "actionCard",
        "actionCard": {
            "title": "T",
            "text": "x",
            "hideAvatar": "1",
            "btns": [{"title": "Bad", "actionURL": "javascript:alert(1)"}],
        },
    }
    out = str(renderer.render(payload))
    assert "msg--no-avatar" in out
    assert tags(out, "a") == []
    assert "card__button--dead" in out


def test_feed_card(renderer: MessageRenderer) -> None:
    feed = FeedCard(
        [
            FeedItem("First", "https://e.com/1", "https://e.com/1.png"),
            FeedItem("Second", "https://e.com/2", "https://e.com/2.png"),
        ]
    )
    out = str(renderer.render(feed.to_payload()))
    links = tags(out, "a")
    assert [a["href"] for a in links] == ["https://e.com/1", "https://e.com/2"]
    assert "feed__item--first" in str(links[0]["class"])
    assert [i["src"] for i in tags(out, "img")] == ["https://e.com/1.png", "https://e.com/2.png"]


def test_image_by_url_and_by_media_id(renderer: MessageRenderer) -> None:
    by_url = str(renderer.render({"msgtype": "image", "image": {"picURL": "https://e.com/p.png"}}))
    assert tags(by_url, "img")[0]["src"] == "https://e.com/p.png"
    by_id = str(renderer.render({"msgKey": "sampleImageMsg", "msgParam": '{"photoURL": "@m1"}'}))
    assert tags(by_id, "img")[0] == {
        "class": "bubble--image",
        "src": MEDIA + "@m1",
        "alt": "Image @m1",
        "loading": "lazy",
        "referrerpolicy": "no-referrer",
    }
    no_store = str(MessageRenderer().render({"msgtype": "image", "image": {"picURL": "@m1"}}))
    assert tags(no_store, "img") == [] and "[Image] @m1" in visible_text(no_store)


def test_file_audio_video(renderer: MessageRenderer) -> None:
    file = str(
        renderer.render(
            {
                "msgKey": "sampleFile",
                "msgParam": '{"mediaId":"@f","fileName":"r.pdf","fileType":"pdf"}',
            }
        )
    )
    (link,) = tags(file, "a")
    assert link["href"] == MEDIA + "@f" and "download" in link
    assert "r.pdf" in visible_text(file) and "PDF" in visible_text(file)
    audio = str(
        renderer.render(
            {"msgKey": "sampleAudio", "msgParam": '{"mediaId":"@a","duration":"65000"}'}
        )
    )
    assert tags(audio, "audio")[0]["src"] == MEDIA + "@a"
    assert "Voice 1:05" in visible_text(audio)
    video = str(
        renderer.render(
            {
                "msgKey": "sampleVideo",
                "msgParam": json.dumps(
                    {"videoMediaId": "@v", "picMediaId": "@p", "duration": "9", "videoType": "mp4"}
                ),
            }
        )
    )
    assert tags(video, "a")[0]["href"] == MEDIA + "@v"
    assert tags(video, "img")[0]["src"] == MEDIA + "@p"


def test_work_notice_oa(renderer: MessageRenderer) -> None:
    msg = {
        "msgtype": "oa",
        "oa": {
            "message_url": "https://e.com/m",
            "head": {"bgcolor": "FFBBBBBB", "text": "Approvals"},
            "body": {
                "title": "Leave",
                "form": [{"key": "Who:", "value": "Li"}],
                "rich": {"num": "3", "unit": "days"},
            },
            "status_bar": {"status_value": "Approved"},
        },
    }
    out = str(renderer.render({"msg": msg}, channel="work-notice"))
    assert tags(out, "a")[0]["href"] == "https://e.com/m"
    assert 'style="background-color: #BBBBBB"' in out
    assert visible_text(out).endswith("Approvals LeaveWho: Li3days Approved")


def test_unsupported_message(renderer: MessageRenderer) -> None:
    out = str(renderer.render({"msgtype": "voice", "voice": {}}))
    assert "not supported: voice" in html.unescape(out)


def test_helpers() -> None:
    assert format_duration(None) == "" and format_duration(75) == "1:15"
    assert avatar_for("ops") == avatar_for("ops")
    assert avatar_for("").initial == "?" and avatar_for("ops").initial == "O"
    assert time_label(None) is None
    assert re.fullmatch(r"\d\d:\d\d", time_label(0.0).short)  # type: ignore[union-attr]
    assert ".card__buttons--horizontal" in stylesheet()
    assert str(text_html("<b>")) == "&lt;b&gt;"


def test_the_preview_page_carries_a_strict_content_security_policy(
    renderer: MessageRenderer,
) -> None:
    # The renderer escapes everything; the policy is the net under it (issue 11, item 6).
    page = renderer.page(Text("hello").to_payload())
    head = page[: page.index("</head>")]
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', head)
    assert found is not None
    assert head.index("Content-Security-Policy") < head.index("<style>")  # before any content
    policy = dict(directive.partition(" ")[::2] for directive in found.group(1).split("; "))
    assert policy["default-src"] == "'none'"  # hence no script, no connect, no frame
    assert "script-src" not in policy
    assert policy["style-src"] == "'unsafe-inline'"  # the inlined stylesheet, OA colours
    assert policy["img-src"] == "http: https: data:"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"


def test_preview_page_stands_alone_and_lists_findings(renderer: MessageRenderer) -> None:
    payload = Markdown("Report", "a\n\n| a | b |\n|---|---|\n| 1 | 2 |").to_payload()
    page = renderer.page(payload, title="Weekly <report>")
    assert page.startswith("<!doctype html>")
    assert "<style>" in page and "<link" not in page and "<script" not in page
    assert "<title>Weekly &lt;report&gt; · dingpush preview</title>" in page
    assert "line 3:" in page and ">table</span>" in page
    clean = renderer.page(Text("hello").to_payload())
    assert "Nothing: DingTalk draws this message as written." in clean
    assert len(findings_for(renderer.view(payload))) == 1
    assert findings_for(renderer.view(Text("`x`").to_payload())) == []
