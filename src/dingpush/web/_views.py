"""What a message looks like to a reader, whichever API delivered it.

Three adapters turn the three wire forms into one view: a custom robot's payload (protocol
§1.3), an app robot's ``msgKey`` + ``msgParam`` (§3.3) and a work notification's ``msg``
(§4.1). They are pure functions of untrusted JSON: a missing or mistyped field becomes an empty
value, never an exception, so a malformed message is still drawn and an unknown type says so.
This module imports no template engine; :mod:`dingpush.web._render` draws the views.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = [
    "ActionCardView",
    "AudioView",
    "ButtonView",
    "DingView",
    "FeedCardView",
    "FeedItemView",
    "FileView",
    "ImageView",
    "LinkView",
    "MarkdownView",
    "MediaRef",
    "MessageView",
    "OAView",
    "TextView",
    "UnsupportedView",
    "VideoView",
    "view_for",
    "view_from_app_robot",
    "view_from_ding",
    "view_from_robot",
    "view_from_work_notice",
]

Orientation = Literal["vertical", "horizontal"]
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_HEX_COLOR_RE = re.compile(r"^(?:0x|#)?(?:[0-9A-Fa-f]{2})?([0-9A-Fa-f]{6})$", re.IGNORECASE)


def _str(value: Any) -> str:
    """A field as text: strings as they are, numbers written out, anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return ""


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _flag(value: Any) -> bool:
    # DingTalk documents "0"/"1" strings; numbers and booleans are accepted the same way.
    return value is True or _str(value).strip() == "1"


@dataclass(frozen=True, slots=True)
class MediaRef:
    """An image or file: a URL, or a media id from ``media/upload`` (``@…`` or ``$…``)."""

    url: str = ""
    media_id: str = ""

    @classmethod
    def parse(cls, value: Any) -> MediaRef | None:
        """Read a picture/file field: an absolute URL, a media id, or nothing."""
        text = _str(value).strip()
        if not text:
            return None
        if _SCHEME_RE.match(text):
            return cls(url=text)
        return cls(media_id=text)


@dataclass(frozen=True, slots=True)
class ButtonView:
    """A button of an action card: its label and where it leads."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class FeedItemView:
    """One entry of a feed card."""

    title: str
    url: str
    image: MediaRef | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextView:
    """Plain text; every newline breaks the line; ``@`` of the named people stands out."""

    kind: ClassVar[str] = "text"
    content: str
    mentions: tuple[str, ...] = ()
    at_all: bool = False

    @property
    def preview(self) -> str:
        return self.content


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkdownView:
    """Markdown drawn in DingTalk's subset; the title is the preview only, not in the body."""

    kind: ClassVar[str] = "markdown"
    title: str
    text: str
    mentions: tuple[str, ...] = ()
    at_all: bool = False

    @property
    def preview(self) -> str:
        return self.title


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkView:
    """A link card: title, a few lines of text, a thumbnail; the whole card opens ``url``."""

    kind: ClassVar[str] = "link"
    title: str
    text: str
    url: str
    image: MediaRef | None = None

    @property
    def preview(self) -> str:
        return f"[Link] {self.title}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCardView:
    """Markdown with buttons: one whole-card button (``single``), or several in a row or column."""

    kind: ClassVar[str] = "action_card"
    title: str
    text: str
    buttons: tuple[ButtonView, ...] = ()
    orientation: Orientation = "vertical"
    single: bool = False
    hide_avatar: bool = False

    @property
    def preview(self) -> str:
        return self.title


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedCardView:
    """A list of linked entries, the first drawn large."""

    kind: ClassVar[str] = "feed_card"
    items: tuple[FeedItemView, ...] = ()

    @property
    def preview(self) -> str:
        return f"[Link] {self.items[0].title}" if self.items else "[Link]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageView:
    """A picture."""

    kind: ClassVar[str] = "image"
    image: MediaRef | None

    @property
    def preview(self) -> str:
        return "[Image]"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileView:
    """A file to download, by media id."""

    kind: ClassVar[str] = "file"
    media: MediaRef | None
    name: str = ""
    file_type: str = ""

    @property
    def preview(self) -> str:
        return f"[File] {self.name}".rstrip()


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioView:
    """A voice message; ``duration`` in seconds when known."""

    kind: ClassVar[str] = "audio"
    media: MediaRef | None
    duration: float | None = None

    @property
    def preview(self) -> str:
        return "[Voice]"


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoView:
    """A video with its cover picture; ``duration`` in seconds when known."""

    kind: ClassVar[str] = "video"
    media: MediaRef | None
    cover: MediaRef | None = None
    duration: float | None = None
    video_type: str = ""

    @property
    def preview(self) -> str:
        return "[Video]"


@dataclass(frozen=True, slots=True, kw_only=True)
class OAView:
    """A work notification's OA card: a coloured head, a form, a figure, text, a status."""

    kind: ClassVar[str] = "oa"
    url: str = ""
    head_text: str = ""
    head_color: str = ""
    title: str = ""
    form: tuple[tuple[str, str], ...] = ()
    rich_num: str = ""
    rich_unit: str = ""
    content: str = ""
    image: MediaRef | None = None
    file_count: str = ""
    author: str = ""
    status_value: str = ""
    status_color: str = ""

    @property
    def preview(self) -> str:
        return f"[OA] {self.title or self.head_text}".rstrip()


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsupportedView:
    """A message the DingTalk client cannot show; ``label`` names its type, ``reason`` why."""

    kind: ClassVar[str] = "unsupported"
    label: str
    reason: str = ""

    @property
    def preview(self) -> str:
        return "[Unsupported message]"


#: DingTalk's remind types (protocol §14) in words.
_REMIND_WORDS = {"app": "in-app", "sms": "SMS", "call": "phone"}


@dataclass(frozen=True, slots=True, kw_only=True)
class DingView:
    """A DING (protocol §14): who is reminded, how (in-app, SMS or phone) and of what.

    Not a chat message: the relay's outbox keeps the DING an escalation step sends (its kind
    ``ding``), and this view draws it in the dashboard.
    """

    kind: ClassVar[str] = "ding"
    content: str
    who: str = ""  #: the on-call person's name, when the sender gave it
    user_ids: tuple[str, ...] = ()
    remind_type: str = "app"  #: ``app``, ``sms`` or ``call``
    fallback: bool = False  #: an SMS or phone DING that fails is sent in-app instead

    @property
    def remind(self) -> str:
        """The remind type in words: ``in-app``, ``SMS`` or ``phone``."""
        return _REMIND_WORDS.get(self.remind_type, self.remind_type or "in-app")

    @property
    def receivers(self) -> str:
        return self.who or ", ".join(self.user_ids) or "(nobody)"

    @property
    def preview(self) -> str:
        return f"[DING {self.remind}] {self.receivers}: {self.content}"


def view_from_ding(request: Mapping[str, Any]) -> DingView:
    """Read a DING request (``user_ids``, ``content``, ``remind_type``, ``fallback``, ``who``)."""
    users = request.get("user_ids")
    return DingView(
        content=_str(request.get("content")),
        who=_str(request.get("who")),
        user_ids=tuple(_str(u) for u in users if _str(u)) if isinstance(users, list) else (),
        remind_type=_str(request.get("remind_type")) or "app",
        fallback=request.get("fallback") is True,
    )


MessageView = (
    TextView
    | MarkdownView
    | LinkView
    | ActionCardView
    | FeedCardView
    | ImageView
    | FileView
    | AudioView
    | VideoView
    | OAView
    | DingView
    | UnsupportedView
)


def _seconds(value: Any, *, scale: float = 1.0) -> float | None:
    try:
        return float(_str(value)) * scale
    except ValueError:
        return None


def _color(value: Any) -> str:
    """``FFBBBBBB`` or ``0xFFBBBBBB`` (ARGB) or ``BBBBBB`` → ``#BBBBBB``; anything else: empty."""
    match = _HEX_COLOR_RE.match(_str(value).strip())
    return f"#{match.group(1).upper()}" if match else ""


# -- custom robot webhook (§1.3) ----------------------------------------------------------------


def _mentions(payload: Mapping[str, Any]) -> tuple[tuple[str, ...], bool]:
    at = _obj(payload.get("at"))
    targets: list[str] = []
    for key in ("atMobiles", "atUserIds", "atDingtalkIds"):
        values = at.get(key)
        if isinstance(values, list):
            targets.extend(t for t in (_str(v).strip() for v in values) if t)
    return tuple(dict.fromkeys(targets)), _flag(at.get("isAtAll"))


def _robot_action_card(card: Mapping[str, Any]) -> ActionCardView:
    title, text = _str(card.get("title")), _str(card.get("text"))
    orientation: Orientation = "horizontal" if _flag(card.get("btnOrientation")) else "vertical"
    hide = _flag(card.get("hideAvatar"))
    single_title, single_url = _str(card.get("singleTitle")), _str(card.get("singleURL"))
    # §1.3: with singleTitle and singleURL the card is a whole-card jump and btns is ignored.
    if single_title.strip() and single_url.strip():
        button = ButtonView(single_title, single_url)
        return ActionCardView(
            title=title, text=text, buttons=(button,), single=True, hide_avatar=hide
        )
    raw = card.get("btns")
    buttons = tuple(
        ButtonView(_str(_obj(b).get("title")), _str(_obj(b).get("actionURL")))
        for b in (raw if isinstance(raw, list) else [])
    )
    return ActionCardView(
        title=title, text=text, buttons=buttons, orientation=orientation, hide_avatar=hide
    )


def view_from_robot(payload: Mapping[str, Any]) -> MessageView:
    """Read a custom robot's request body (``msgtype`` and its object, ``at``; protocol §1.3)."""
    msgtype = _str(payload.get("msgtype"))
    body = _obj(payload.get(msgtype)) if msgtype else {}
    mentions, at_all = _mentions(payload)
    if msgtype == "text":
        return TextView(content=_str(body.get("content")), mentions=mentions, at_all=at_all)
    if msgtype == "markdown":
        return MarkdownView(
            title=_str(body.get("title")),
            text=_str(body.get("text")),
            mentions=mentions,
            at_all=at_all,
        )
    if msgtype == "link":
        return LinkView(
            title=_str(body.get("title")),
            text=_str(body.get("text")),
            url=_str(body.get("messageUrl")),
            image=MediaRef.parse(body.get("picUrl")),
        )
    if msgtype == "actionCard":
        return _robot_action_card(body)
    if msgtype == "feedCard":
        links = body.get("links")
        items = tuple(
            FeedItemView(
                _str(_obj(i).get("title")),
                _str(_obj(i).get("messageURL")),
                MediaRef.parse(_obj(i).get("picURL")),
            )
            for i in (links if isinstance(links, list) else [])
        )
        return FeedCardView(items=items)
    if msgtype == "image":
        # Undocumented for webhooks, but sent by DingtalkChatbot and parsed by DingTalk (§1.3).
        return ImageView(image=MediaRef.parse(body.get("picURL")))
    return UnsupportedView(
        label=msgtype or "(no msgtype)", reason="not a message type of custom robots (§1.3)"
    )


# -- app robot msgKey + msgParam (§3.3) ---------------------------------------------------------


def _app_action_card(key: str, param: Mapping[str, Any]) -> ActionCardView:
    title, text = _str(param.get("title")), _str(param.get("text"))
    if key == "sampleActionCard":
        button = ButtonView(_str(param.get("singleTitle")), _str(param.get("singleURL")))
        return ActionCardView(title=title, text=text, buttons=(button,), single=True)
    if key == "sampleActionCard6":
        pairs = [("buttonTitle1", "buttonUrl1"), ("buttonTitle2", "buttonUrl2")]
        orientation: Orientation = "horizontal"
    else:
        count = int(key[-1])
        pairs = [(f"actionTitle{n}", f"actionURL{n}") for n in range(1, count + 1)]
        orientation = "vertical"
    buttons = tuple(
        ButtonView(_str(param.get(t)), _str(param.get(u)))
        for t, u in pairs
        if _str(param.get(t)) or _str(param.get(u))
    )
    return ActionCardView(title=title, text=text, buttons=buttons, orientation=orientation)


_APP_ACTION_CARDS = frozenset({"sampleActionCard", *(f"sampleActionCard{n}" for n in range(2, 7))})


def view_from_app_robot(msg_key: str, msg_param: str | Mapping[str, Any]) -> MessageView:
    """Read an app robot's message: ``msgKey`` and its ``msgParam`` (a JSON string; §3.3)."""
    if isinstance(msg_param, str):
        try:
            decoded = json.loads(msg_param)
        except ValueError:
            return UnsupportedView(label=msg_key, reason="msgParam is not valid JSON")
    else:
        decoded = msg_param
    param = _obj(decoded)
    if msg_key == "sampleText":
        return TextView(content=_str(param.get("content")))
    if msg_key == "sampleMarkdown":
        return MarkdownView(title=_str(param.get("title")), text=_str(param.get("text")))
    if msg_key == "sampleImageMsg":
        return ImageView(image=MediaRef.parse(param.get("photoURL")))
    if msg_key == "sampleLink":
        return LinkView(
            title=_str(param.get("title")),
            text=_str(param.get("text")),
            url=_str(param.get("messageUrl")),
            image=MediaRef.parse(param.get("picUrl")),
        )
    if msg_key in _APP_ACTION_CARDS:
        return _app_action_card(msg_key, param)
    if msg_key == "sampleAudio":
        # §3.3: sampleAudio's duration is in milliseconds, sampleVideo's in seconds.
        return AudioView(
            media=MediaRef.parse(param.get("mediaId")),
            duration=_seconds(param.get("duration"), scale=0.001),
        )
    if msg_key == "sampleFile":
        return FileView(
            media=MediaRef.parse(param.get("mediaId")),
            name=_str(param.get("fileName")),
            file_type=_str(param.get("fileType")),
        )
    if msg_key == "sampleVideo":
        return VideoView(
            media=MediaRef.parse(param.get("videoMediaId")),
            cover=MediaRef.parse(param.get("picMediaId")),
            duration=_seconds(param.get("duration")),
            video_type=_str(param.get("videoType")),
        )
    return UnsupportedView(label=msg_key or "(no msgKey)", reason="not an app robot msgKey (§3.3)")


# -- work notification msg (§4.1) ---------------------------------------------------------------


def _notice_action_card(card: Mapping[str, Any]) -> ActionCardView:
    title, text = _str(card.get("title")), _str(card.get("markdown"))
    single_title, single_url = _str(card.get("single_title")), _str(card.get("single_url"))
    if single_title.strip() and single_url.strip():
        button = ButtonView(single_title, single_url)
        return ActionCardView(title=title, text=text, buttons=(button,), single=True)
    raw = card.get("btn_json_list")
    buttons = tuple(
        ButtonView(_str(_obj(b).get("title")), _str(_obj(b).get("action_url")))
        for b in (raw if isinstance(raw, list) else [])
    )
    orientation: Orientation = "horizontal" if _flag(card.get("btn_orientation")) else "vertical"
    return ActionCardView(title=title, text=text, buttons=buttons, orientation=orientation)


def _notice_oa(oa: Mapping[str, Any]) -> OAView:
    head, body = _obj(oa.get("head")), _obj(oa.get("body"))
    status, rich = _obj(oa.get("status_bar")), _obj(body.get("rich"))
    raw_form = body.get("form")
    form = tuple(
        (_str(_obj(row).get("key")), _str(_obj(row).get("value")))
        for row in (raw_form if isinstance(raw_form, list) else [])
    )
    return OAView(
        url=_str(oa.get("pc_message_url")) or _str(oa.get("message_url")),
        head_text=_str(head.get("text")),
        head_color=_color(head.get("bgcolor")),
        title=_str(body.get("title")),
        form=form,
        rich_num=_str(rich.get("num")),
        rich_unit=_str(rich.get("unit")),
        content=_str(body.get("content")),
        image=MediaRef.parse(body.get("image")),
        file_count=_str(body.get("file_count")),
        author=_str(body.get("author")),
        status_value=_str(status.get("status_value")),
        status_color=_color(status.get("status_bg")),
    )


def view_from_work_notice(msg: str | Mapping[str, Any]) -> MessageView:
    """Read a work notification's ``msg`` (an object, or the JSON string of a form post; §4.1)."""
    if isinstance(msg, str):
        try:
            msg = json.loads(msg)
        except ValueError:
            return UnsupportedView(label="msg", reason="msg is not valid JSON")
    data = _obj(msg)
    msgtype = _str(data.get("msgtype"))
    body = _obj(data.get(msgtype)) if msgtype else {}
    if msgtype == "text":
        return TextView(content=_str(body.get("content")))
    if msgtype == "markdown":
        return MarkdownView(title=_str(body.get("title")), text=_str(body.get("text")))
    if msgtype == "link":
        return LinkView(
            title=_str(body.get("title")),
            text=_str(body.get("text")),
            url=_str(body.get("messageUrl")),
            image=MediaRef.parse(body.get("picUrl")),
        )
    if msgtype == "image":
        return ImageView(image=MediaRef.parse(body.get("media_id")))
    if msgtype == "file":
        return FileView(media=MediaRef.parse(body.get("media_id")))
    if msgtype == "voice":
        return AudioView(
            media=MediaRef.parse(body.get("media_id")), duration=_seconds(body.get("duration"))
        )
    if msgtype == "action_card":
        return _notice_action_card(body)
    if msgtype == "oa":
        return _notice_oa(body)
    return UnsupportedView(
        label=msgtype or "(no msgtype)", reason="not a work notification msgtype (§4.1)"
    )


def view_for(payload: Mapping[str, Any], channel: str | None = None) -> MessageView:
    """Read a recorded message of any channel.

    ``channel`` is the emulator's ``Message.channel``: ``"app-robot"`` payloads carry ``msgKey``
    and ``msgParam``; ``"work-notice"`` payloads carry ``msg`` (or are the ``msg`` itself);
    anything else is a custom robot's body. Without a channel the payload's shape decides.
    ``"ding"`` reads a DING request, as the relay's outbox keeps it (:func:`view_from_ding`).
    """
    if channel == "ding":
        return view_from_ding(payload)
    if channel == "app-robot" or (channel is None and "msgKey" in payload):
        return view_from_app_robot(_str(payload.get("msgKey")), _param(payload.get("msgParam")))
    if channel == "work-notice" or (channel is None and "msg" in payload):
        msg = payload.get("msg", payload)
        return view_from_work_notice(msg if isinstance(msg, str) else _obj(msg))
    return view_from_robot(payload)


def _param(value: Any) -> str | Mapping[str, Any]:
    return value if isinstance(value, str) else _obj(value)
