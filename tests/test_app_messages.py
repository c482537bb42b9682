"""Image, File and OA models, and the channel mappings of protocol §3.3 and §4.1 (sans-I/O)."""

from __future__ import annotations

import json
import pathlib
import typing

import httpx
import pytest

import dingpush
from _appsupport import pdf_bytes, png_bytes
from dingpush import (
    OA,
    ActionCard,
    At,
    Button,
    FeedCard,
    FeedItem,
    File,
    Image,
    InvalidMessage,
    Link,
    Markdown,
    MessageTooLarge,
    OAField,
    Robot,
    Text,
    UnsupportedMessage,
    msg_param_bytes,
    notice_msg_bytes,
    parse_message,
)
from dingpush._messages._channels import app_robot_template, notice_msg
from dingpush._messages._fields import UnknownField

URL = "https://example.com"


def buttons(n: int) -> list[Button]:
    return [Button(f"B{i}", f"{URL}/{i}") for i in range(1, n + 1)]


class TestImage:
    def test_sources(self) -> None:
        assert Image(url=f"{URL}/a.png").to_payload() == {
            "msgtype": "image",
            "image": {"picURL": f"{URL}/a.png"},
        }
        assert Image(media_id="@lADPx").to_payload() == {
            "msgtype": "image",
            "image": {"mediaId": "@lADPx"},
        }
        local = Image.from_bytes(png_bytes())
        assert local.filename == "image.png"  # sniffed
        assert local.needs_upload and local.digest is not None

    @pytest.mark.parametrize(
        "kwargs",
        [{}, {"url": f"{URL}/a.png", "media_id": "@x"}, {"url": "not a url"}, {"media_id": " "}],
    )
    def test_exactly_one_valid_source(self, kwargs: dict[str, typing.Any]) -> None:
        with pytest.raises(InvalidMessage):
            Image(**kwargs)

    def test_from_file(self, tmp_path: pathlib.Path) -> None:
        path = tmp_path / "chart.png"
        path.write_bytes(png_bytes())
        image = Image.from_file(path)
        assert (image.filename, image.data) == ("chart.png", png_bytes())
        assert repr(image) == f"Image(filename='chart.png', {len(png_bytes()):,} bytes)"

    def test_missing_file_names_the_path(self, tmp_path: pathlib.Path) -> None:
        with pytest.raises(InvalidMessage, match=r"cannot read .*nope\.png"):
            Image.from_file(tmp_path / "nope.png")

    def test_format_and_size_are_checked_at_construction(self) -> None:
        with pytest.raises(InvalidMessage, match="jpg, jpeg, gif, png, bmp"):
            Image.from_bytes(b"GIF89a....", filename="anim.webp")
        with pytest.raises(InvalidMessage, match="give filename="):
            Image.from_bytes(b"not an image")
        with pytest.raises(InvalidMessage, match="empty"):
            Image.from_bytes(b"", filename="x.png")
        with pytest.raises(MessageTooLarge) as info:
            Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024), filename="x.png")
        assert info.value.errcode == 40006 and info.value.limit == 20 * 1024 * 1024


class TestFile:
    def test_sources_and_type(self, tmp_path: pathlib.Path) -> None:
        path = tmp_path / "Q3 report.PDF"
        path.write_bytes(pdf_bytes())
        local = File.from_file(path)
        assert (local.name, local.file_type, local.needs_upload) == ("Q3 report.PDF", "pdf", True)
        uploaded = local.with_media_id("@m")
        assert uploaded == File(media_id="@m", name="Q3 report.PDF")
        assert repr(uploaded) == "File(media_id='@m', name='Q3 report.PDF')"

    def test_bytes_need_a_name_with_a_known_extension(self) -> None:
        with pytest.raises(InvalidMessage, match="give filename="):
            File(data=pdf_bytes())
        with pytest.raises(InvalidMessage, match="not exe"):
            File.from_bytes(b"MZ", "setup.exe")


class TestOA:
    def test_payload_has_the_fields_of_the_protocol(self) -> None:
        oa = OA(
            message_url=f"{URL}/approve/1",
            pc_message_url=f"{URL}/pc/1",
            head_text="Approvals",
            status_value="pending",
            status_bg="0xFFF65E5E".removeprefix("0x"),
            title="Leave request",
            form=[OAField("Name", "Alice"), ("Days", "3")],  # type: ignore[list-item]
            rich_num="3",
            rich_unit="days",
            content="Annual leave",
            image="@lADPmedia",
            file_count=1,
            author="HR",
        )
        assert oa.to_payload() == {
            "msgtype": "oa",
            "oa": {
                "message_url": f"{URL}/approve/1",
                "pc_message_url": f"{URL}/pc/1",
                "head": {"bgcolor": "FFBBBBBB", "text": "Approvals"},
                "status_bar": {"status_value": "pending", "status_bg": "FFF65E5E"},
                "body": {
                    "title": "Leave request",
                    "form": [{"key": "Name", "value": "Alice"}, {"key": "Days", "value": "3"}],
                    "rich": {"num": "3", "unit": "days"},
                    "content": "Annual leave",
                    "image": "@lADPmedia",
                    "author": "HR",
                    "file_count": "1",
                },
            },
        }
        assert parse_message(oa.to_payload()) == oa

    def test_validation(self) -> None:
        with pytest.raises(InvalidMessage, match="body: empty"):
            OA(message_url=URL)
        with pytest.raises(InvalidMessage, match="ARGB"):
            OA(message_url=URL, title="t", head_bgcolor="red")


@pytest.mark.parametrize(
    "message",
    [
        Image(url=f"{URL}/a.png"),
        Image(media_id="@lADP"),
        Image.from_bytes(png_bytes()),
        File(media_id="@m", name="q3.pdf"),
        File.from_bytes(pdf_bytes(), "q3.pdf"),
        OA(message_url=URL, title="t", form=[OAField("k", "v")]),
    ],
    ids=repr,
)
def test_json_forms_round_trip_through_parse_message(message: dingpush.Message) -> None:
    payload = json.loads(json.dumps(message.to_payload()))
    assert parse_message(payload) == message


def test_bad_base64_is_named() -> None:
    with pytest.raises(InvalidMessage, match=r"image.data: not valid Base64"):
        parse_message({"msgtype": "image", "image": {"data": "***", "fileName": "a.png"}})


@pytest.mark.parametrize(
    ("payload", "pointer", "rule"),
    [
        ({"msgtype": "image", "image": {"picURL": 7}}, "/image/picURL", "a string"),
        ({"msgtype": "image", "image": {"picURL": "no-scheme"}}, "/image/picURL", "absolute URL"),
        ({"msgtype": "image", "image": {"data": 12}}, "/image/data", "a string"),
        ({"msgtype": "file", "file": {"mediaId": ["@m"]}}, "/file/mediaId", "a string"),
        (
            {"msgtype": "oa", "oa": {"message_url": URL, "body": {"form": [{"key": 1}]}}},
            "/oa/body/form/0/key",
            "a string",
        ),
        (
            {
                "msgtype": "oa",
                "oa": {"message_url": URL, "body": {"title": "t", "file_count": "x"}},
            },
            "/oa/body/file_count",
            "a whole number",
        ),
        (
            {"msgtype": "oa", "oa": {"message_url": URL, "head": "", "body": {"title": "t"}}},
            "/oa/head",
            "a JSON object",
        ),
    ],
)
def test_app_json_forms_are_read_strictly(
    payload: dict[str, typing.Any], pointer: str, rule: str
) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(payload)
    assert (info.value.pointer, info.value.rule) == (pointer, rule)


def test_app_json_forms_name_unknown_fields() -> None:
    unknown: list[UnknownField] = []
    payload = {"msgtype": "oa", "oa": {"message_url": URL, "body": {"title": "t", "titel": "x"}}}
    parse_message(payload, unknown=unknown)
    assert unknown == [UnknownField("/oa/body/titel", "title")]


# Every model → msgKey/msgParam, field names exactly as in protocol §3.3.
TEMPLATES: list[tuple[dingpush.Message, str, dict[str, str]]] = [
    (Text("hi"), "sampleText", {"content": "hi"}),
    (Markdown("T", "### x"), "sampleMarkdown", {"title": "T", "text": "### x"}),
    (
        Link("T", "x", f"{URL}/r", f"{URL}/p.png"),
        "sampleLink",
        {"title": "T", "text": "x", "messageUrl": f"{URL}/r", "picUrl": f"{URL}/p.png"},
    ),
    (
        Link("T", "x", f"{URL}/r"),
        "sampleLink",
        {"title": "T", "text": "x", "messageUrl": f"{URL}/r"},
    ),
    (
        ActionCard("T", "x", button=Button("Open", f"{URL}/o")),
        "sampleActionCard",
        {"title": "T", "text": "x", "singleTitle": "Open", "singleURL": f"{URL}/o"},
    ),
    (
        ActionCard("T", "x", buttons=buttons(1)),
        "sampleActionCard",
        {"title": "T", "text": "x", "singleTitle": "B1", "singleURL": f"{URL}/1"},
    ),
    *[
        (
            ActionCard("T", "x", buttons=buttons(n)),
            f"sampleActionCard{n}",
            {
                "title": "T",
                "text": "x",
                **{f"actionTitle{i}": f"B{i}" for i in range(1, n + 1)},
                **{f"actionURL{i}": f"{URL}/{i}" for i in range(1, n + 1)},
            },
        )
        for n in (2, 3, 4, 5)
    ],
    (
        ActionCard("T", "x", buttons=buttons(2), orientation="horizontal"),
        "sampleActionCard6",
        {
            "title": "T",
            "text": "x",
            "buttonTitle1": "B1",
            "buttonUrl1": f"{URL}/1",
            "buttonTitle2": "B2",
            "buttonUrl2": f"{URL}/2",
        },
    ),
    (Image(url=f"{URL}/a.png"), "sampleImageMsg", {"photoURL": f"{URL}/a.png"}),
    (Image(media_id="@lADP"), "sampleImageMsg", {"photoURL": "@lADP"}),
    (
        File(media_id="@m", name="q3.xlsx"),
        "sampleFile",
        {"mediaId": "@m", "fileName": "q3.xlsx", "fileType": "xlsx"},
    ),
]


@pytest.mark.parametrize(("message", "key", "param"), TEMPLATES, ids=lambda v: str(v)[:40])
def test_app_robot_templates(message: dingpush.Message, key: str, param: dict[str, str]) -> None:
    assert app_robot_template(message) == (key, param)
    encoded = json.dumps(param, ensure_ascii=False, separators=(",", ":")).encode()
    assert msg_param_bytes(message) == len(encoded)


# Every model → work-notification msg, snake_case fields exactly as in protocol §4.1.
NOTICES: list[tuple[dingpush.Message, dict[str, typing.Any]]] = [
    (Text("hi"), {"msgtype": "text", "text": {"content": "hi"}}),
    (Markdown("T", "x"), {"msgtype": "markdown", "markdown": {"title": "T", "text": "x"}}),
    (
        Link("T", "x", f"{URL}/r", f"{URL}/p.png"),
        {
            "msgtype": "link",
            "link": {
                "messageUrl": f"{URL}/r",
                "picUrl": f"{URL}/p.png",
                "title": "T",
                "text": "x",
            },
        },
    ),
    (
        ActionCard("T", "x", button=Button("Open", f"{URL}/o")),
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "T",
                "markdown": "x",
                "single_title": "Open",
                "single_url": f"{URL}/o",
            },
        },
    ),
    (
        ActionCard("T", "x", buttons=buttons(3), orientation="horizontal"),
        {
            "msgtype": "action_card",
            "action_card": {
                "title": "T",
                "markdown": "x",
                "btn_orientation": "1",
                "btn_json_list": [
                    {"title": f"B{i}", "action_url": f"{URL}/{i}"} for i in (1, 2, 3)
                ],
            },
        },
    ),
    (Image(media_id="@img"), {"msgtype": "image", "image": {"media_id": "@img"}}),
    (File(media_id="@f"), {"msgtype": "file", "file": {"media_id": "@f"}}),
    (
        OA(message_url=URL, title="t"),
        {
            "msgtype": "oa",
            "oa": {
                "message_url": URL,
                "head": {"bgcolor": "FFBBBBBB", "text": ""},
                "body": {"title": "t"},
            },
        },
    ),
]


@pytest.mark.parametrize(("message", "msg"), NOTICES, ids=lambda v: str(v)[:40])
def test_work_notification_types(message: dingpush.Message, msg: dict[str, typing.Any]) -> None:
    assert notice_msg(message) == msg
    assert notice_msg_bytes(message) == len(json.dumps(msg, separators=(",", ":")).encode())


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (FeedCard([FeedItem("a", URL, f"{URL}/p.png")]), "custom robot webhook"),
        (OA(message_url=URL, title="t"), r"app.notify"),
        (ActionCard("T", "x", buttons=buttons(3), orientation="horizontal"), "vertical"),
        (ActionCard("T", "x", buttons=buttons(6)), "at most 5 buttons"),
        (Text("hi", at=At(user_ids=["u1"])), "cannot @-mention"),
    ],
)
def test_what_an_app_robot_cannot_carry(message: dingpush.Message, match: str) -> None:
    with pytest.raises(UnsupportedMessage, match=match):
        app_robot_template(message)


@pytest.mark.parametrize(
    ("message", "error", "match"),
    [
        (FeedCard([FeedItem("a", URL, f"{URL}/p.png")]), UnsupportedMessage, "Robot"),
        (Image(url=f"{URL}/a.png"), UnsupportedMessage, "media_id only"),
        (Link("T", "x", URL), InvalidMessage, "needs a picture"),
        (Markdown("T", "x", at=At(all=True)), UnsupportedMessage, "cannot @-mention"),
    ],
)
def test_what_a_work_notification_cannot_carry(
    message: dingpush.Message, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        notice_msg(message)


def test_file_without_name_cannot_go_to_an_app_robot() -> None:
    with pytest.raises(InvalidMessage, match=r"name=.report\.pdf."):
        app_robot_template(File(media_id="@m"))


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (Image(url=f"{URL}/a.png"), r"Markdown.with_image\(title, url\)"),
        (Image.from_bytes(png_bytes()), "webhook robots cannot upload"),
        (File.from_bytes(pdf_bytes(), "q3.pdf"), "cannot upload or send files"),
        (OA(message_url=URL, title="t"), "work notifications"),
    ],
)
def test_a_webhook_robot_refuses_what_needs_an_app(message: dingpush.Message, match: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    with Robot("t", transport=httpx.MockTransport(refuse)) as robot:
        with pytest.raises(UnsupportedMessage, match=match) as info:
            robot.send(message)
    assert "App(" in str(info.value) or "Markdown" in str(info.value)
