"""Typed robot messages (protocol §1.3): validated at construction, exact JSON out and back in."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass

from dingpush._errors import InvalidMessage

__all__ = [
    "ActionCard",
    "At",
    "Button",
    "FeedCard",
    "FeedItem",
    "Link",
    "Markdown",
    "Message",
    "Text",
    "parse_message",
]

#: DingTalk @-mentions at most 50 people in one message (protocol §1.3).
MAX_MENTIONS = 50

Orientation = typing.Literal["vertical", "horizontal"]
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")


def _require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessage(
            f"{field}: empty, but DingTalk requires it (protocol §1.3)",
            field=field,
            rule="required",
        )


def _require_url(value: object, field: str) -> None:
    _require_text(value, field)
    if not _URL_RE.match(typing.cast(str, value)):
        raise InvalidMessage(
            f"{field}: must be an absolute URL such as https://example.com/page, got {value!r}",
            field=field,
            rule="absolute URL",
        )


def _strings(value: str | Sequence[str]) -> tuple[str, ...]:
    # A lone string is one entry, not a sequence of characters.
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class At:
    """Whom a text or markdown message mentions: phone numbers, user ids, or everyone."""

    mobiles: Sequence[str] = ()
    user_ids: Sequence[str] = ()
    all: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mobiles", _strings(self.mobiles))
        object.__setattr__(self, "user_ids", _strings(self.user_ids))
        for field, values in (("at.mobiles", self.mobiles), ("at.user_ids", self.user_ids)):
            for value in values:
                if not isinstance(value, str) or not value.strip() or value != value.strip():
                    raise InvalidMessage(
                        f"{field}: {value!r} is not a mention; each entry must be a non-empty "
                        "string without surrounding spaces",
                        field=field,
                        rule="non-empty string",
                    )
        count = len(self.mobiles) + len(self.user_ids)
        if count > MAX_MENTIONS:
            raise InvalidMessage(
                f"at: {count} people named, but DingTalk mentions at most {MAX_MENTIONS} in one "
                "message; use all=True or split the mentions over several messages",
                field="at",
                rule=f"at most {MAX_MENTIONS} mentions",
            )

    def __bool__(self) -> bool:
        return bool(self.mobiles or self.user_ids or self.all)

    @property
    def targets(self) -> tuple[str, ...]:
        """The mobiles then the user ids, as they appear after ``@`` in the text."""
        return (*self.mobiles, *self.user_ids)

    def to_payload(self) -> dict[str, typing.Any]:
        return {
            "atMobiles": list(self.mobiles),
            "atUserIds": list(self.user_ids),
            "isAtAll": self.all,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> At:
        return cls(
            mobiles=payload.get("atMobiles") or (),
            user_ids=payload.get("atUserIds") or payload.get("atDingtalkIds") or (),
            all=bool(payload.get("isAtAll", False)),
        )

    def merged(self, other: At | None) -> At:
        """Return the union of two mention sets, keeping first-seen order."""
        if other is None:
            return self
        return At(
            mobiles=tuple(dict.fromkeys((*self.mobiles, *other.mobiles))),
            user_ids=tuple(dict.fromkeys((*self.user_ids, *other.user_ids))),
            all=self.all or other.all,
        )


def insert_mentions(text: str, at: At | None, *, separator: str = "\n") -> str:
    """Append ``@mobile``/``@userId`` for every mention the text does not already carry.

    DingTalk only notifies a mentioned person in markdown when ``@target`` is in the text.
    """
    if not at:
        return text
    missing = [
        f"@{target}"
        for target in at.targets
        if not re.search(rf"@{re.escape(target)}(?![0-9A-Za-z_\-])", text)
    ]
    if not missing:
        return text
    return f"{text}{separator}{' '.join(missing)}"


class Message:
    """Base of every message type: ``msgtype``, ``to_payload()`` and a parsing registry."""

    __slots__ = ()

    msgtype: typing.ClassVar[str]
    _registry: typing.ClassVar[dict[str, type[Message]]] = {}

    def __init_subclass__(cls, **kwargs: typing.Any) -> None:
        super().__init_subclass__(**kwargs)
        msgtype = cls.__dict__.get("msgtype")
        if isinstance(msgtype, str):
            Message._registry[msgtype] = cls

    def to_payload(self) -> dict[str, typing.Any]:
        """Return the robot webhook JSON body of protocol §1.3 (without ``msgUuid``)."""
        raise NotImplementedError

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> Message:
        raise NotImplementedError

    @property
    def mentions(self) -> At | None:
        """Who the message mentions, for the types that can mention."""
        return None

    def searchable_text(self) -> str:
        """All human-visible text, as DingTalk's keyword check might scan it."""
        raise NotImplementedError

    def with_keyword(self, keyword: str) -> Message:
        """Return the message with ``keyword`` added to its body when it lacks it."""
        raise NotImplementedError


def _refuse_mentions(kind: str, at: At | None) -> None:
    if at:
        raise InvalidMessage(
            f"at: {kind} messages cannot mention anyone (protocol §1.3); use Text or Markdown "
            "to @ people",
            field="at",
            rule=f"no mentions in {kind}",
        )


def _append(text: str, keyword: str, separator: str) -> str:
    return text if keyword in text else f"{text}{separator}{keyword}"


@dataclass(frozen=True, slots=True)
class Text(Message):
    """A plain-text message."""

    msgtype: typing.ClassVar[str] = "text"

    content: str
    _: KW_ONLY
    at: At | None = None

    def __post_init__(self) -> None:
        _require_text(self.content, "text.content")

    @property
    def mentions(self) -> At | None:
        return self.at

    def to_payload(self) -> dict[str, typing.Any]:
        payload: dict[str, typing.Any] = {
            "msgtype": "text",
            "text": {"content": insert_mentions(self.content, self.at, separator=" ")},
        }
        if self.at:
            payload["at"] = self.at.to_payload()
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> Text:
        body = _section(payload, "text")
        return cls(body.get("content", ""), at=_parse_at(payload))

    def searchable_text(self) -> str:
        return self.content

    def with_keyword(self, keyword: str) -> Text:
        return dataclasses.replace(self, content=_append(self.content, keyword, "\n"))


@dataclass(frozen=True, slots=True)
class Markdown(Message):
    """A markdown message; DingTalk renders the subset of protocol §1.4."""

    msgtype: typing.ClassVar[str] = "markdown"

    title: str
    text: str
    _: KW_ONLY
    at: At | None = None

    def __post_init__(self) -> None:
        _require_text(self.title, "markdown.title")
        _require_text(self.text, "markdown.text")

    @property
    def mentions(self) -> At | None:
        return self.at

    @classmethod
    def with_image(
        cls, title: str, image_url: str, *, text: str = "", at: At | None = None
    ) -> Markdown:
        """Show an image by URL through a webhook robot, which cannot upload files."""
        _require_url(image_url, "image_url")
        body = f"![{title}]({image_url})"
        return cls(title, f"{text}\n\n{body}" if text else body, at=at)

    def to_payload(self) -> dict[str, typing.Any]:
        payload: dict[str, typing.Any] = {
            "msgtype": "markdown",
            "markdown": {
                "title": self.title,
                "text": insert_mentions(self.text, self.at, separator="\n\n"),
            },
        }
        if self.at:
            payload["at"] = self.at.to_payload()
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> Markdown:
        body = _section(payload, "markdown")
        return cls(body.get("title", ""), body.get("text", ""), at=_parse_at(payload))

    def searchable_text(self) -> str:
        return f"{self.title}\n{self.text}"

    def with_keyword(self, keyword: str) -> Markdown:
        return dataclasses.replace(self, text=_append(self.text, keyword, "\n\n"))


@dataclass(frozen=True, slots=True)
class Link(Message):
    """A link card: title, summary text, target URL and an optional picture."""

    msgtype: typing.ClassVar[str] = "link"

    title: str
    text: str
    message_url: str
    pic_url: str | None = None
    _: KW_ONLY
    at: dataclasses.InitVar[At | None] = None

    def __post_init__(self, at: At | None) -> None:
        _refuse_mentions("link", at)
        _require_text(self.title, "link.title")
        _require_text(self.text, "link.text")
        _require_url(self.message_url, "link.messageUrl")
        if self.pic_url is not None:
            _require_url(self.pic_url, "link.picUrl")

    def to_payload(self) -> dict[str, typing.Any]:
        link = {"title": self.title, "text": self.text, "messageUrl": self.message_url}
        if self.pic_url:
            link["picUrl"] = self.pic_url
        return {"msgtype": "link", "link": link}

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> Link:
        body = _section(payload, "link")
        return cls(
            body.get("title", ""),
            body.get("text", ""),
            body.get("messageUrl", ""),
            body.get("picUrl") or None,
            at=_parse_at(payload),
        )

    def searchable_text(self) -> str:
        return f"{self.title}\n{self.text}"

    def with_keyword(self, keyword: str) -> Link:
        return dataclasses.replace(self, text=_append(self.text, keyword, " "))


@dataclass(frozen=True, slots=True)
class Button:
    """A button of an action card: a title and the URL it opens."""

    title: str
    url: str

    def __post_init__(self) -> None:
        _require_text(self.title, "button.title")
        _require_url(self.url, "button.url")


@dataclass(frozen=True, slots=True)
class ActionCard(Message):
    """An action card with one whole-card button (``button=``) or several (``buttons=``)."""

    msgtype: typing.ClassVar[str] = "actionCard"

    title: str
    text: str
    _: KW_ONLY
    button: Button | None = None
    buttons: Sequence[Button] = ()
    orientation: Orientation = "vertical"
    hide_avatar: bool = False
    at: dataclasses.InitVar[At | None] = None

    def __post_init__(self, at: At | None) -> None:
        if at:
            raise InvalidMessage(
                "at: actionCard messages take no 'at' (protocol §1.3); write @userId inside "
                "the card's text instead",
                field="at",
                rule="no mentions in actionCard",
            )
        object.__setattr__(self, "buttons", tuple(self.buttons))
        _require_text(self.title, "actionCard.title")
        _require_text(self.text, "actionCard.text")
        if self.button is None and not self.buttons:
            raise InvalidMessage(
                "actionCard.btns: give button=Button(title, url) for a whole-card jump or "
                "buttons=[Button(...), ...] for independent buttons",
                field="actionCard.btns",
                rule="one button or several",
            )
        if self.button is not None and self.buttons:
            raise InvalidMessage(
                "actionCard.btns: give button= or buttons=, not both; DingTalk ignores btns "
                "when singleTitle/singleURL are set",
                field="actionCard.btns",
                rule="one button or several",
            )
        if self.orientation not in ("vertical", "horizontal"):
            raise InvalidMessage(
                f"actionCard.btnOrientation: must be 'vertical' or 'horizontal', got "
                f"{self.orientation!r}",
                field="actionCard.btnOrientation",
                rule="vertical or horizontal",
            )

    def to_payload(self) -> dict[str, typing.Any]:
        card: dict[str, typing.Any] = {"title": self.title, "text": self.text}
        if self.button is not None:
            card["singleTitle"] = self.button.title
            card["singleURL"] = self.button.url
        else:
            card["btns"] = [{"title": b.title, "actionURL": b.url} for b in self.buttons]
        card["btnOrientation"] = "1" if self.orientation == "horizontal" else "0"
        if self.hide_avatar:
            card["hideAvatar"] = "1"
        return {"msgtype": "actionCard", "actionCard": card}

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> ActionCard:
        body = _section(payload, "actionCard")
        button = None
        if body.get("singleTitle") or body.get("singleURL"):
            button = Button(body.get("singleTitle", ""), body.get("singleURL", ""))
        buttons = () if button else tuple(_buttons(body.get("btns")))
        return cls(
            body.get("title", ""),
            body.get("text", ""),
            button=button,
            buttons=buttons,
            orientation="horizontal" if str(body.get("btnOrientation", "0")) == "1" else "vertical",
            hide_avatar=str(body.get("hideAvatar", "0")) == "1",
            at=_parse_at(payload),
        )

    def searchable_text(self) -> str:
        titles = [b.title for b in ((self.button,) if self.button else self.buttons)]
        return "\n".join([self.title, self.text, *titles])

    def with_keyword(self, keyword: str) -> ActionCard:
        return dataclasses.replace(self, text=_append(self.text, keyword, "\n\n"))


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a feed card."""

    title: str
    message_url: str
    pic_url: str

    def __post_init__(self) -> None:
        _require_text(self.title, "feedCard.links.title")
        _require_url(self.message_url, "feedCard.links.messageURL")
        _require_url(self.pic_url, "feedCard.links.picURL")


@dataclass(frozen=True, slots=True)
class FeedCard(Message):
    """A feed card: a list of titled links with pictures."""

    msgtype: typing.ClassVar[str] = "feedCard"

    items: Sequence[FeedItem]
    _: KW_ONLY
    at: dataclasses.InitVar[At | None] = None

    def __post_init__(self, at: At | None) -> None:
        _refuse_mentions("feedCard", at)
        object.__setattr__(self, "items", tuple(self.items))
        if not self.items:
            raise InvalidMessage(
                "feedCard.links: empty; give at least one FeedItem(title, message_url, pic_url)",
                field="feedCard.links",
                rule="required",
            )

    def to_payload(self) -> dict[str, typing.Any]:
        links = [
            {"title": i.title, "messageURL": i.message_url, "picURL": i.pic_url} for i in self.items
        ]
        return {"msgtype": "feedCard", "feedCard": {"links": links}}

    @classmethod
    def from_payload(cls, payload: Mapping[str, typing.Any]) -> FeedCard:
        links = _section(payload, "feedCard").get("links") or []
        if not isinstance(links, list):
            raise _shape_error("feedCard.links", "a list")
        entries = [_mapping(link, "feedCard.links") for link in links]
        items = [
            FeedItem(e.get("title", ""), e.get("messageURL", ""), e.get("picURL", ""))
            for e in entries
        ]
        return cls(items, at=_parse_at(payload))

    def searchable_text(self) -> str:
        return "\n".join(i.title for i in self.items)

    def with_keyword(self, keyword: str) -> FeedCard:
        if keyword in self.searchable_text():
            return self
        first, *rest = self.items
        return FeedCard([dataclasses.replace(first, title=f"{first.title} {keyword}"), *rest])


def parse_message(payload: Mapping[str, typing.Any]) -> Message:
    """Parse a robot webhook body (protocol §1.3) into its message model."""
    if not isinstance(payload, Mapping):
        raise _shape_error("message", "a JSON object")
    msgtype = payload.get("msgtype")
    cls = Message._registry.get(msgtype) if isinstance(msgtype, str) else None
    if cls is None:
        known = ", ".join(sorted(Message._registry, key=str.casefold))
        raise InvalidMessage(
            f"msgtype: {msgtype!r} is not a message type dingpush knows; use one of {known}",
            field="msgtype",
            rule=f"one of {known}",
        )
    return cls.from_payload(payload)


def _section(payload: Mapping[str, typing.Any], key: str) -> Mapping[str, typing.Any]:
    return _mapping(payload.get(key), key)


def _mapping(value: object, field: str) -> Mapping[str, typing.Any]:
    if not isinstance(value, Mapping):
        raise _shape_error(field, "a JSON object")
    return value


def _shape_error(field: str, expected: str) -> InvalidMessage:
    return InvalidMessage(f"{field}: must be {expected}", field=field, rule=expected)


def _parse_at(payload: Mapping[str, typing.Any]) -> At | None:
    at = payload.get("at")
    if at is None:
        return None
    return At.from_payload(_mapping(at, "at")) or None


def _buttons(value: object) -> typing.Iterator[Button]:
    if value is None:
        return
    if not isinstance(value, list):
        raise _shape_error("actionCard.btns", "a list")
    for item in value:
        button = _mapping(item, "actionCard.btns")
        yield Button(button.get("title", ""), button.get("actionURL", ""))
