"""Sans-I/O checks of a custom-robot send (protocol §1): errcodes, errmsgs and what each checks.

Each ``check_*`` function returns ``None`` when the request passes, or the :class:`Verdict` the
server answers with. The stateful steps (robot lookup, rate window, msgUuid) live in
:class:`~dingpush.emulator.Emulator`; these functions only look at the request and the config.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dingpush.lowlevel import verify_signature

from ._config import EmulatorOptions, RobotConfig
from ._json import loads

__all__ = [
    "DUPLICATE",
    "MSGTYPES",
    "OK",
    "Verdict",
    "WebhookCall",
    "check_content_type",
    "check_ip",
    "check_keywords",
    "check_message",
    "check_signature",
    "keyword_texts",
    "missing",
    "parse_body",
    "query_value",
    "reject",
    "wrong_method",
]

#: Message types robot/send knows: the five documented ones (§1.3), plus ``image`` [U], which
#: DingtalkChatbot's ``send_image`` sends and the server is known to parse (§1.3, §9.7). The
#: official support matrix says custom robots cannot send images, so a robot accepts it only
#: with ``RobotConfig(accept_image=True)``; otherwise it is refused like an unknown type.
MSGTYPES = ("text", "link", "markdown", "actionCard", "feedCard", "image")

# reason → (errcode, english errmsg, description errmsg); "{ip}" and "{limit}" are filled in.
_CATALOGUE: dict[str, tuple[int, str, str]] = {
    "keyword": (
        310000,
        "keywords not in content",
        "description:关键词不匹配;solution:请联系群管理员查看此机器人的关键词，"
        "并在发送的信息中包含此关键词;",
    ),
    "signature": (
        310000,
        "sign not match",
        "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的"
        "网址中，请确认机器人的密钥加密和填写正确;",
    ),
    "timestamp": (
        310000,
        "invalid timestamp",
        "description:机器人发送签名过期;solution:签名生成时间和发送时间请保持在 timestampms 以内;",
    ),
    "ip": (
        310000,
        "ip {ip} not in whitelist",
        "description:ip 不在白名单中;solution:请联系对应群的管理员，设置机器人安全ip地址段",
    ),
    "disabled": (400102, "机器人已停用", "机器人已停用"),
    "not_in_group": (400106, "机器人不存在", "机器人不存在"),
    "dissolved": (400013, "群已被解散", "群已被解散"),
    "content_type": (43004, "无效的HTTP HEADER Content-Type", "无效的HTTP HEADER Content-Type"),
    "bad_json": (40035, "缺少参数 json", "缺少参数 json"),
    "too_large": (
        460101,
        "description:body 大小不合法;solution:请保持大小在 {limit}bytes 以内;",
        "description:body 大小不合法;solution:请保持大小在 {limit}bytes 以内;",
    ),
    "bad_msgtype": (400105, "不支持的消息类型", "不支持的消息类型"),
}
# Missing sign/timestamp on a signed robot: DingTalk's own advice for "签名不匹配" is to put both
# in the URL, so the emulator answers a missing pair the way it answers a wrong one.
_CATALOGUE["sign_missing"] = _CATALOGUE["signature"]

_UNKNOWN_TOKEN = {
    300001: "token is not exist",
    300005: "token is not exist",
    400101: "access_token不存在",
}
_RATE_LIMITED = {130101: "send too fast, exceed 20 times per minute", 410100: "发送速度太快而限流"}
_TIMESTAMP_RE = re.compile(r"[0-9]{1,19}")
_JSON_TYPES = ("application/json",)
_UTF8 = ("utf-8", "utf8")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The server's answer to one request: ``errcode``, ``errmsg`` and a ``reason`` tag."""

    errcode: int
    errmsg: str
    reason: str

    @property
    def ok(self) -> bool:
        """Whether the answer is ``{"errcode":0,"errmsg":"ok"}``."""
        return self.errcode == 0


OK = Verdict(0, "ok", "accepted")
DUPLICATE = Verdict(0, "ok", "duplicate")


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """What the server sees of one ``POST /robot/send``, before any check."""

    path: str
    query: Sequence[tuple[str, str]]
    content_type: str | None
    body: bytes
    client_ip: str | None
    forwarded_for: str | None = None

    def client_address(self, options: EmulatorOptions) -> str | None:
        """Return the IP the allow-list is checked against."""
        if options.trust_forwarded_for and self.forwarded_for:
            return self.forwarded_for.split(",")[0].strip()
        return self.client_ip


def reject(reason: str, options: EmulatorOptions, *, ip: str | None = None) -> Verdict:
    """Return the refusal for ``reason`` in the configured errmsg style."""
    if reason == "unknown_token":
        token_code = options.unknown_token_errcode
        return Verdict(token_code, _UNKNOWN_TOKEN[token_code], reason)
    if reason in ("throttled", "locked"):
        rate_code = options.rate_limit_errcode
        return Verdict(rate_code, _RATE_LIMITED[rate_code], reason)
    errcode, english, description = _CATALOGUE[reason]
    text = english if options.errmsg_style == "english" else description
    return Verdict(errcode, text.format(ip=ip or "unknown", limit=options.body_limit), reason)


#: The official global error table's method errors (43001 需要GET请求, 43002 需要POST请求),
#: answered like every oapi error: HTTP 200 with an errcode (§1.6). Whether robot/send answers
#: a GET with them is not confirmed [U]: ``EmulatorOptions.wrong_method`` can pick a bare 405.
_METHOD_ERRCODES = {"GET": (43001, "需要GET请求"), "POST": (43002, "需要POST请求")}


def wrong_method(allowed: str) -> Verdict:
    """The refusal of a request whose method is not ``allowed`` (``"GET"`` or ``"POST"``)."""
    errcode, errmsg = _METHOD_ERRCODES[allowed]
    return Verdict(errcode, errmsg, "wrong_method")


def missing(param: str) -> Verdict:
    """Return the 40035 refusal naming a missing (or malformed) parameter."""
    return Verdict(40035, f"缺少参数 {param}", "missing_param")


def query_value(query: Sequence[tuple[str, str]], key: str) -> str | None:
    """Return the first value of ``key``, as a servlet container's ``getParameter`` would."""
    return next((value for name, value in query if name == key), None)


def check_content_type(value: str | None) -> bool:
    """Whether the Content-Type is JSON in UTF-8 (older docs demanded UTF-8, §1.1)."""
    if not value:
        return False
    media_type, *params = (part.strip().lower() for part in value.split(";"))
    if media_type not in _JSON_TYPES:
        return False
    for param in params:
        name, _, charset = param.partition("=")
        if name.strip() == "charset" and charset.strip().strip('"') not in _UTF8:
            return False
    return True


def parse_body(body: bytes) -> dict[str, Any] | None:
    """Return the body as a JSON object, or ``None`` when it is empty, invalid or not an object."""
    try:
        data = loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_message(
    payload: Mapping[str, Any], options: EmulatorOptions, *, accept_image: bool = True
) -> Verdict | None:
    """Check ``msgtype`` and the fields it requires, with their exact casing (§1.3).

    ``accept_image``: whether the undocumented ``image`` type passes (see :data:`MSGTYPES`).
    """
    msgtype = payload.get("msgtype")
    if not isinstance(msgtype, str) or not msgtype:
        return missing("msgtype")
    if msgtype not in MSGTYPES or (msgtype == "image" and not accept_image):
        return reject("bad_msgtype", options)
    body = payload.get(msgtype)
    if not isinstance(body, Mapping):
        return missing(msgtype)
    problem = _REQUIRED_CHECKS[msgtype](body)
    if problem is not None:
        return missing(f"{msgtype}.{problem}")
    if options.reject_unknown_fields:
        unknown = sorted(set(payload) - {"msgtype", msgtype, "at", "msgUuid"})
        if unknown:
            return Verdict(40035, f"不合法的参数 {unknown[0]}", "unknown_field")
    return None


def _first_missing(body: Mapping[str, Any], names: Sequence[str]) -> str | None:
    # Empty strings count as missing: the clients in §1.3 never send them for required fields.
    return next((name for name in names if not _text(body.get(name))), None)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_action_card(card: Mapping[str, Any]) -> str | None:
    problem = _first_missing(card, ("title", "text"))
    if problem is not None:
        return problem
    # §1.3: with singleTitle and singleURL set the card is a whole-card jump and btns is ignored.
    if _text(card.get("singleTitle")) and _text(card.get("singleURL")):
        return None
    if "btns" not in card:
        return _first_missing(card, ("singleTitle", "singleURL"))
    return _check_items(card.get("btns"), "btns", ("title", "actionURL"))


def _check_items(items: Any, name: str, required: Sequence[str]) -> str | None:
    if not isinstance(items, list) or not items:
        return name
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            return f"{name}[{index}]"
        problem = _first_missing(item, required)
        if problem is not None:
            return f"{name}[{index}].{problem}"
    return None


_REQUIRED_CHECKS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "text": lambda body: _first_missing(body, ("content",)),
    "link": lambda body: _first_missing(body, ("title", "text", "messageUrl")),
    "markdown": lambda body: _first_missing(body, ("title", "text")),
    "actionCard": _check_action_card,
    "feedCard": lambda body: _check_items(
        body.get("links"), "links", ("title", "messageURL", "picURL")
    ),
    "image": lambda body: _first_missing(body, ("picURL",)),
}


def check_ip(robot: RobotConfig, client_ip: str | None, options: EmulatorOptions) -> Verdict | None:
    """Check the client IP against the robot's IPv4 allow-list, if it has one."""
    if not robot.ip_allowlist:
        return None
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return reject("ip", options, ip=client_ip)
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 client reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
        if address.ipv4_mapped is None:
            return reject("ip", options, ip=client_ip)
        address = address.ipv4_mapped
    for entry in robot.ip_allowlist:
        if address in ipaddress.ip_network(entry, strict=False):
            return None
    return reject("ip", options, ip=str(address))


def check_signature(
    robot: RobotConfig,
    query: Sequence[tuple[str, str]],
    now_ms: int,
    options: EmulatorOptions,
) -> Verdict | None:
    """Verify 加签 (§1.2): both parameters present, timestamp in the window, HMAC equal."""
    timestamp = query_value(query, "timestamp")
    signature = query_value(query, "sign")
    if robot.secret is None:
        if options.ignore_sign_params_when_unsigned or (timestamp is None and signature is None):
            return None
        return reject("signature", options)
    if not timestamp or not signature:
        return reject("sign_missing", options)
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        return reject("timestamp", options)
    skew = now_ms - int(timestamp)
    if skew < 0 and not options.accept_future_timestamps:
        return reject("timestamp", options)
    window = options.signature_window_ms
    if abs(skew) > window or (abs(skew) == window and not options.signature_window_inclusive):
        return reject("timestamp", options)
    if options.plus_in_sign_as_space_ok:
        # Form decoding turned an unencoded '+' into ' '; Base64 never contains a space.
        signature = signature.replace(" ", "+")
    if not verify_signature(robot.secret, timestamp, signature):
        return reject("signature", options)
    return None


def keyword_texts(payload: Mapping[str, Any], paths: Sequence[str]) -> Iterator[str]:
    """Yield the strings found at the dotted ``paths`` (``a.b[].c`` walks the list ``a.b``)."""
    for path in paths:
        yield from _walk(payload, path.split("."))


def _walk(node: Any, parts: Sequence[str]) -> Iterator[str]:
    if not parts:
        if isinstance(node, str):
            yield node
        return
    head, rest = parts[0], parts[1:]
    if not isinstance(node, Mapping):
        return
    if head.endswith("[]"):
        items = node.get(head[:-2])
        if isinstance(items, list):
            for item in items:
                yield from _walk(item, rest)
        return
    yield from _walk(node.get(head), rest)


def check_keywords(
    robot: RobotConfig, payload: Mapping[str, Any], options: EmulatorOptions
) -> Verdict | None:
    """Require at least one of the robot's keywords in the scanned fields (case-sensitive) [U]."""
    if not robot.keywords:
        return None
    for text in keyword_texts(payload, options.keyword_fields):
        if any(keyword in text for keyword in robot.keywords):
            return None
    return reject("keyword", options)
