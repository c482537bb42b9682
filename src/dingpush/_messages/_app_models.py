"""Messages only apps can send: ``Image``, ``File`` (protocol §3.3, §4.1, §5) and ``OA`` (§4.1).

They join the robot messages' ``{msgtype: class}`` registry, so ``parse_message`` reads their
JSON forms too. Those forms are dingpush's own (DingTalk has no single one: the same image is
``photoURL`` to an app robot and ``media_id`` to a work notification)::

    {"msgtype": "image", "image": {"picURL": "https://…"}}          an image by URL
    {"msgtype": "image", "image": {"mediaId": "@lAD…"}}             an uploaded image
    {"msgtype": "image", "image": {"data": "<base64>", "fileName": "chart.png"}}
    {"msgtype": "file", "file": {"mediaId": "@lAD…", "fileName": "q3.pdf"}}
    {"msgtype": "file", "file": {"data": "<base64>", "fileName": "q3.pdf"}}
    {"msgtype": "oa", "oa": {…the work notification's oa object, §4.1…}}

The ``data`` forms carry a local file's bytes, so a queued message stays self-contained; an app
uploads them (once per content) and sends the ``media_id``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dingpush._errors import InvalidMessage

from ._fields import JSONObject, field_name, require_text, require_url
from ._media import check_media
from ._models import Message

__all__ = ["OA", "File", "Image", "OAField"]

_COLOR_RE = re.compile(r"[0-9A-Fa-f]{8}")


def _read(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(), os.path.basename(os.fspath(path))
    except OSError as exc:
        raise InvalidMessage(
            f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}; check the path",
            field="path",
            rule="readable file",
        ) from None


def _one_source(kind: str, sources: Mapping[str, object]) -> None:
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        names = " or ".join(f"{name}=" for name in sources)
        raise InvalidMessage(
            f"{kind}: give exactly one of {names} (or {kind.title()}.from_file(path)), "
            f"got {', '.join(given) or 'none'}",
            field=kind,
            rule="one source",
        )


def _decode_data(body: JSONObject) -> bytes | None:
    data = body.optional_text("data")
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pointer = body.at("data")
        raise InvalidMessage(
            f"{field_name(pointer)}: not valid Base64",
            field=field_name(pointer),
            rule="base64",
            pointer=pointer,
        ) from None


def _first(body: JSONObject, *keys: str, url: bool = False) -> str | None:
    """The first non-empty of ``keys`` (dingpush reads both spellings of a field)."""
    values = [(key, body.optional_text(key)) for key in keys]
    for key, value in values:
        if value:
            if url:
                require_url(value, field_name(body.at(key)), body.at(key))
            return value
    return None


def _digest(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Image(Message):
    """An image: by URL (``url=``), already uploaded (``media_id=``) or from a local file.

    ``Image.from_file(path)`` holds the file's bytes; an app uploads them before sending
    (once per content within a client). Custom robot webhooks cannot carry images at all:
    use ``Markdown.with_image(title, url)`` there.
    """

    msgtype: typing.ClassVar[str] = "image"

    url: str | None = None
    media_id: str | None = None
    data: bytes | None = field(default=None, repr=False)
    filename: str | None = None
    #: SHA-256 of ``data``: the key of an app's upload cache.
    digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _one_source("image", {"url": self.url, "media_id": self.media_id, "data": self.data})
        if self.url is not None:
            require_url(self.url, "image.url")
        if self.media_id is not None:
            require_text(self.media_id, "image.media_id")
        if self.data is not None:
            data = bytes(self.data)
            object.__setattr__(self, "data", data)
            object.__setattr__(self, "filename", check_media(data, "image", self.filename))
            object.__setattr__(self, "digest", _digest(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Image:
        """Read a local image (jpg, png, gif, bmp; at most 20 MB) to upload when sent."""
        data, name = _read(path)
        return cls(data=data, filename=name)

    @classmethod
    def from_bytes(cls, data: bytes, filename: str | None = None) -> Image:
        """An image from bytes; the format is sniffed when ``filename`` is not given."""
        return cls(data=data, filename=filename)

    @property
    def needs_upload(self) -> bool:
        """Whether the image is local content an app must upload before sending."""
        return self.data is not None

    def with_media_id(self, media_id: str) -> Image:
        """Return the uploaded form of this image."""
        return Image(media_id=media_id)

    def to_payload(self) -> dict[str, typing.Any]:
        if self.url is not None:
            body = {"picURL": self.url}
        elif self.media_id is not None:
            body = {"mediaId": self.media_id}
        else:
            body = {
                "data": base64.b64encode(typing.cast(bytes, self.data)).decode("ascii"),
                "fileName": typing.cast(str, self.filename),
            }
        return {"msgtype": "image", "image": body}

    @classmethod
    def _from_json(cls, root: JSONObject) -> Image:
        body = root.object("image")
        return cls(
            url=_first(body, "picURL", "photoURL", url=True),
            media_id=_first(body, "mediaId", "media_id"),
            data=_decode_data(body),
            filename=body.optional_text("fileName"),
        )

    def searchable_text(self) -> str:
        return ""

    def with_keyword(self, keyword: str) -> Image:
        # Keywords guard webhook robots, which cannot carry images anyway.
        return self

    def __repr__(self) -> str:
        if self.data is not None:
            return f"Image(filename={self.filename!r}, {len(self.data):,} bytes)"
        if self.media_id is not None:
            return f"Image(media_id={self.media_id!r})"
        return f"Image(url={self.url!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class File(Message):
    """A file: already uploaded (``media_id=`` and ``name=``) or from a local file.

    ``File.from_file(path)`` holds the bytes; an app uploads them when sending. The name's
    extension is the file type DingTalk shows (pdf, docx, xlsx, zip…). Only apps send files.
    """

    msgtype: typing.ClassVar[str] = "file"

    media_id: str | None = None
    name: str | None = None
    data: bytes | None = field(default=None, repr=False)
    digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _one_source("file", {"media_id": self.media_id, "data": self.data})
        if self.media_id is not None:
            require_text(self.media_id, "file.media_id")
        if self.name is not None:
            require_text(self.name, "file.name")
        if self.data is not None:
            data = bytes(self.data)
            object.__setattr__(self, "data", data)
            object.__setattr__(self, "name", check_media(data, "file", self.name))
            object.__setattr__(self, "digest", _digest(data))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> File:
        """Read a local file (doc(x), xls(x), ppt(x), pdf, zip, rar; at most 20 MB)."""
        data, name = _read(path)
        return cls(data=data, name=name)

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> File:
        """A file from bytes; ``name`` gives its type by its extension."""
        return cls(data=data, name=name)

    @property
    def needs_upload(self) -> bool:
        """Whether the file is local content an app must upload before sending."""
        return self.data is not None

    @property
    def file_type(self) -> str:
        """The extension of ``name`` (``pdf``), which DingTalk shows as the file's type."""
        return os.path.splitext(self.name or "")[1].lstrip(".").lower()

    def with_media_id(self, media_id: str) -> File:
        """Return the uploaded form of this file, keeping its name."""
        return File(media_id=media_id, name=self.name)

    def to_payload(self) -> dict[str, typing.Any]:
        body: dict[str, typing.Any] = {}
        if self.media_id is not None:
            body["mediaId"] = self.media_id
        else:
            body["data"] = base64.b64encode(typing.cast(bytes, self.data)).decode("ascii")
        if self.name is not None:
            body["fileName"] = self.name
        return {"msgtype": "file", "file": body}

    @classmethod
    def _from_json(cls, root: JSONObject) -> File:
        body = root.object("file")
        return cls(
            media_id=_first(body, "mediaId", "media_id"),
            name=body.optional_text("fileName"),
            data=_decode_data(body),
        )

    def searchable_text(self) -> str:
        return self.name or ""

    def with_keyword(self, keyword: str) -> File:
        return self

    def __repr__(self) -> str:
        if self.data is not None:
            return f"File(name={self.name!r}, {len(self.data):,} bytes)"
        return f"File(media_id={self.media_id!r}, name={self.name!r})"


def _optional(parent: JSONObject, key: str) -> JSONObject:
    """An optional part of an OA message; an absent one reads as empty."""
    return parent.optional_object(key) or JSONObject({}, parent.at(key), [])


def _count(body: JSONObject, key: str) -> int | None:
    # to_payload writes file_count as a string of digits (§4.1); a JSON integer is taken too.
    value = body.get(key)
    if value is None or value == "":
        return None
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    pointer = body.at(key)
    raise InvalidMessage(
        f'{field_name(pointer)}: must be a whole number such as "3", got {value!r}',
        field=field_name(pointer),
        rule="a whole number",
        pointer=pointer,
    )


@dataclass(frozen=True, slots=True)
class OAField:
    """One ``key: value`` row of an OA message's form."""

    key: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OA(Message):
    """An OA (office) card, a work-notification type (protocol §4.1).

    ``head_text`` is replaced by the app's name on the client; ``status_value`` adds the
    status bar, which DingTalk allows only for at most 5 users (no departments, not everyone).
    ``image`` is a ``media_id``.
    """

    msgtype: typing.ClassVar[str] = "oa"

    message_url: str
    pc_message_url: str | None = None
    head_text: str = ""
    head_bgcolor: str = "FFBBBBBB"
    status_value: str | None = None
    status_bg: str | None = None
    title: str | None = None
    form: Sequence[OAField] = ()
    rich_num: str | None = None
    rich_unit: str | None = None
    content: str | None = None
    image: str | None = None
    file_count: int | None = None
    author: str | None = None

    def __post_init__(self) -> None:
        require_url(self.message_url, "oa.message_url")
        if self.pc_message_url is not None:
            require_url(self.pc_message_url, "oa.pc_message_url")
        for name, color in (("head.bgcolor", self.head_bgcolor), ("status_bar", self.status_bg)):
            if color is not None and not _COLOR_RE.fullmatch(color):
                raise InvalidMessage(
                    f"oa.{name}: {color!r} is not an ARGB colour such as FFBBBBBB",
                    field=f"oa.{name}",
                    rule="8 hex digits",
                )
        form = tuple(OAField(*row) if isinstance(row, tuple | list) else row for row in self.form)
        object.__setattr__(self, "form", form)
        if not (self.title or self.content or form or self.rich_num or self.image):
            raise InvalidMessage(
                "oa.body: empty; give at least title=, content=, form=, rich_num= or image=",
                field="oa.body",
                rule="not empty",
            )

    def body(self) -> dict[str, typing.Any]:
        """The ``body`` object of §4.1, with only the parts that are set."""
        body: dict[str, typing.Any] = {}
        if self.title:
            body["title"] = self.title
        if self.form:
            body["form"] = [{"key": row.key, "value": row.value} for row in self.form]
        if self.rich_num is not None:
            body["rich"] = {"num": self.rich_num, "unit": self.rich_unit or ""}
        for key in ("content", "image", "author"):
            value = getattr(self, key)
            if value:
                body[key] = value
        if self.file_count is not None:
            body["file_count"] = str(self.file_count)
        return body

    def to_payload(self) -> dict[str, typing.Any]:
        oa: dict[str, typing.Any] = {"message_url": self.message_url}
        if self.pc_message_url:
            oa["pc_message_url"] = self.pc_message_url
        oa["head"] = {"bgcolor": self.head_bgcolor, "text": self.head_text}
        if self.status_value is not None:
            oa["status_bar"] = {"status_value": self.status_value}
            if self.status_bg:
                oa["status_bar"]["status_bg"] = self.status_bg
        oa["body"] = self.body()
        return {"msgtype": "oa", "oa": oa}

    @classmethod
    def _from_json(cls, root: JSONObject) -> OA:
        oa = root.object("oa")
        message_url = oa.url("message_url")
        pc_message_url = oa.optional_url("pc_message_url")
        head, status, body = (
            _optional(oa, "head"),
            _optional(oa, "status_bar"),
            _optional(oa, "body"),
        )
        rich = _optional(body, "rich")
        form = [
            OAField(row.optional_text("key") or "", row.optional_text("value") or "")
            for row in body.objects("form")
        ]
        return cls(
            message_url=message_url,
            pc_message_url=pc_message_url,
            head_text=head.optional_text("text") or "",
            head_bgcolor=head.optional_text("bgcolor") or "FFBBBBBB",
            status_value=status.optional_text("status_value"),
            status_bg=status.optional_text("status_bg"),
            title=body.optional_text("title"),
            form=form,
            rich_num=rich.optional_text("num"),
            rich_unit=rich.optional_text("unit") or None,
            content=body.optional_text("content"),
            image=body.optional_text("image"),
            file_count=_count(body, "file_count"),
            author=body.optional_text("author"),
        )

    def searchable_text(self) -> str:
        rows = [f"{row.key} {row.value}" for row in self.form]
        return "\n".join(filter(None, [self.title, self.content, *rows]))

    def with_keyword(self, keyword: str) -> OA:
        if keyword in self.searchable_text():
            return self
        return dataclasses.replace(self, content=f"{self.content or ''}\n{keyword}".strip())
