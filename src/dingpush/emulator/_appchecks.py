"""Sans-I/O checks of the app APIs: msgKey templates (§3.3), work-notification ``msg`` (§4.1),
media uploads (§5) and multipart bodies.

Each check returns ``None`` when the input passes, or the refusal DingTalk answers with. These
are independent of the client's models: the emulator reads the protocol, not dingpush.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._json import loads

__all__ = [
    "MEDIA_LIMITS",
    "MSG_KEYS",
    "NOTICE_TYPES",
    "OapiError",
    "Part",
    "V1Error",
    "check_notice_msg",
    "check_template",
    "parse_multipart",
]

_MB = 1024 * 1024

#: §5, the current official page (2026); ``jpeg`` is the same format as the listed ``jpg``.
_CURRENT_LIMITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "image": (20 * _MB, ("jpg", "jpeg", "gif", "png", "bmp")),
    "voice": (2 * _MB, ("amr", "mp3", "wav")),
    "video": (20 * _MB, ("mp4",)),
    "file": (20 * _MB, ("doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar")),
}
#: §5/§9.9, the older global error table: image 1 MB, file 10 MB, voice 2 MB (video unstated:
#: 10 MB assumed, like a file).
_LEGACY_LIMITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "image": (1 * _MB, _CURRENT_LIMITS["image"][1]),
    "voice": (2 * _MB, _CURRENT_LIMITS["voice"][1]),
    "video": (10 * _MB, _CURRENT_LIMITS["video"][1]),
    "file": (10 * _MB, _CURRENT_LIMITS["file"][1]),
}
MEDIA_LIMITS = {"current": _CURRENT_LIMITS, "legacy": _LEGACY_LIMITS}


@dataclass(frozen=True, slots=True)
class V1Error:
    """A v1.0 refusal: HTTP status plus ``{"code", "message", "requestid"}`` (§3.4)."""

    status: int
    code: str
    message: str
    detail: Mapping[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class OapiError:
    """An oapi refusal: HTTP 200 with ``{"errcode", "errmsg"}`` (§1.6)."""

    errcode: int
    errmsg: str
    reason: str


def _bad(code: str, message: str) -> V1Error:
    return V1Error(400, code, message)


# -- app-robot templates (§3.3) -------------------------------------------------------------

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")


def _card(n: int) -> tuple[str, ...]:
    names = ["title", "text"]
    for i in range(1, n + 1):
        names += [f"actionTitle{i}", f"actionURL{i}"]
    return tuple(names)


#: msgKey → the msgParam fields DingTalk requires (§3.3); ``picUrl`` of sampleLink is optional.
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    **{f"sampleActionCard{n}": _card(n) for n in (2, 3, 4, 5)},
    "sampleActionCard6": (
        "title",
        "text",
        "buttonTitle1",
        "buttonUrl1",
        "buttonTitle2",
        "buttonUrl2",
    ),
    "sampleAudio": ("mediaId", "duration"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleVideo": ("duration", "videoMediaId", "videoType", "picMediaId"),
}
# Fields that must name media uploaded to this organisation (a URL is fine for photoURL).
_MEDIA_FIELDS: dict[str, tuple[str, ...]] = {
    "sampleImageMsg": ("photoURL",),
    "sampleAudio": ("mediaId",),
    "sampleFile": ("mediaId",),
    "sampleVideo": ("videoMediaId", "picMediaId"),
}
# The official error list names a few missing fields; the rest follow miss.param.<field>.
_MISSING_CODES = {("sampleText", "content"): "miss.param.contentOfText"}


def _text(value: Any) -> bool:
    return isinstance(value, str | int | float) and bool(str(value).strip())


def check_template(
    msg_key: Any,
    msg_param: Any,
    *,
    limit: int,
    object_ok: bool,
    media_exists: Callable[[str], bool],
) -> tuple[V1Error | None, dict[str, Any]]:
    """Check ``msgKey``/``msgParam`` (§3.1, §3.3); return the error or the parsed parameters."""
    if not isinstance(msg_key, str) or not msg_key:
        return _bad("invalidParameter.msgKey.empty", "msgKey不能为空"), {}
    if msg_key not in MSG_KEYS:
        return _bad("invalidParameter.msgKey.invalid", f"msgKey {msg_key} 不存在"), {}
    if isinstance(msg_param, Mapping) and object_ok:
        msg_param = json.dumps(msg_param, ensure_ascii=False)
    if not isinstance(msg_param, str):
        return _bad("invalidParameter.msgParam.invalid", "msgParam必须是JSON格式的字符串"), {}
    if len(msg_param.encode()) > limit:
        return _bad("invalidParameter.msgParam.tooLong", f"msgParam长度超过{limit}字节"), {}
    try:
        param = loads(msg_param)
    except ValueError:
        param = None
    if not isinstance(param, dict):
        return _bad("invalidParameter.msgParam.invalid", "msgParam必须是JSON对象字符串"), {}
    for name in MSG_KEYS[msg_key]:
        if not _text(param.get(name)):
            code = _MISSING_CODES.get((msg_key, name), f"miss.param.{name}")
            return _bad(code, f"缺少参数 {name}"), param
    for name in _MEDIA_FIELDS.get(msg_key, ()):
        value = str(param[name])
        if not (name == "photoURL" and _URL_RE.match(value)) and not media_exists(value):
            return _bad(
                "invalidParameter.msgParam.invalid", f"{name} 不是有效的URL或media_id"
            ), param
    return None, param


# -- work notifications (§4.1) ---------------------------------------------------------------

NOTICE_TYPES: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "image": ("media_id",),
    "voice": ("media_id", "duration"),
    "file": ("media_id",),
    "link": ("messageUrl", "picUrl", "title", "text"),
    "oa": ("message_url", "head", "body"),
    "markdown": ("title", "text"),
    "action_card": ("title", "markdown"),
}


def _missing(field_name: str) -> OapiError:
    return OapiError(40035, f"缺少参数 {field_name}", "missing_param")


def check_notice_msg(
    msg: Mapping[str, Any], media_exists: Callable[[str], bool]
) -> OapiError | None:
    """Check a work notification's ``msg`` object field by field (snake_case, §4.1)."""
    msgtype = msg.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in NOTICE_TYPES:
        return OapiError(40008, "不合法的消息类型", "bad_msgtype")
    body = msg.get(msgtype)
    if not isinstance(body, Mapping):
        return _missing(f"msg.{msgtype}")
    for name in NOTICE_TYPES[msgtype]:
        value = body.get(name)
        if not (_text(value) or (isinstance(value, Mapping) and name in ("head", "body"))):
            return _missing(f"msg.{msgtype}.{name}")
    if msgtype == "action_card":
        problem = _check_action_card(body)
        if problem is not None:
            return problem
    if msgtype == "oa" and not _text(body["head"].get("bgcolor")):
        return _missing("msg.oa.head.bgcolor")
    for value in _media_refs(msgtype, body):
        if not media_exists(value):
            return OapiError(40007, "不合法的媒体文件id", "bad_media_id")
    return None


def _check_action_card(card: Mapping[str, Any]) -> OapiError | None:
    if _text(card.get("single_title")) and _text(card.get("single_url")):
        return None
    buttons = card.get("btn_json_list")
    if not isinstance(buttons, list) or not buttons:
        return _missing("msg.action_card.single_title")
    for index, button in enumerate(buttons):
        if not isinstance(button, Mapping):
            return _missing(f"msg.action_card.btn_json_list[{index}]")
        for name in ("title", "action_url"):
            if not _text(button.get(name)):
                return _missing(f"msg.action_card.btn_json_list[{index}].{name}")
    return None


def _media_refs(msgtype: str, body: Mapping[str, Any]) -> list[str]:
    if msgtype in ("image", "voice", "file"):
        return [str(body["media_id"])]
    if msgtype == "link" and not _URL_RE.match(str(body["picUrl"])):
        return [str(body["picUrl"])]
    oa_body = body.get("body") if msgtype == "oa" else None
    if isinstance(oa_body, Mapping) and _text(oa_body.get("image")):
        return [str(oa_body["image"])]
    return []


# -- multipart (media/upload) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a ``multipart/form-data`` body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)


_PARAM_RE = re.compile(r';\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def _params(header: str) -> dict[str, str]:
    return {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3).strip())
        for m in _PARAM_RE.finditer(header)
    }


def parse_multipart(content_type: str | None, body: bytes) -> list[Part] | None:
    """Split a ``multipart/form-data`` body into parts; ``None`` when it is not one."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    boundary = _params(content_type).get("boundary")
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        return None
    parts: list[Part] = []
    for chunk in chunks[1:-1]:
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            return None
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = _params(headers.get("content-disposition", ""))
        if "name" not in disposition:
            return None
        parts.append(
            Part(
                disposition["name"],
                disposition.get("filename"),
                headers.get("content-type"),
                data,
            )
        )
    return parts


def form_value(parts: Sequence[Part], name: str) -> str | None:
    """The text of the first non-file part called ``name``."""
    for part in parts:
        if part.name == name and part.filename is None:
            return part.data.decode("utf-8", "replace")
    return None
