"""The exception tree: every errcode maps to a typed, actionable exception."""

from __future__ import annotations

import fnmatch
import pathlib
import re

import pytest

import dingpush
from dingpush import (
    APIError,
    BadCredentials,
    ContentRejected,
    DingPushError,
    InvalidAccessToken,
    InvalidRequest,
    MessageTooLarge,
    PermissionDenied,
    PlatformThrottled,
    ProtocolError,
    RateLimited,
    RobotUnavailable,
    SecurityRejected,
    ServerBusy,
    TokenNotFound,
    TransportError,
    UnsupportedMessageType,
    error_from_reply,
)
from dingpush._errors import _ERRCODES

TABLE: list[tuple[int | str, type[DingPushError], bool]] = [
    (-1, ServerBusy, True),
    (40035, InvalidRequest, False),
    (43004, InvalidRequest, False),
    (310000, SecurityRejected, False),
    (300001, TokenNotFound, False),
    (300005, TokenNotFound, False),
    (400101, TokenNotFound, False),
    (400102, RobotUnavailable, False),
    (400106, RobotUnavailable, False),
    (400013, RobotUnavailable, False),
    (400105, UnsupportedMessageType, False),
    (410100, RateLimited, True),
    (130101, RateLimited, True),
    (430101, ContentRejected, False),
    (430104, ContentRejected, False),
    (460101, MessageTooLarge, False),
    (90018, PlatformThrottled, True),
    (90002, PlatformThrottled, True),
    (40014, InvalidAccessToken, False),
    (42001, InvalidAccessToken, False),
    (40089, BadCredentials, False),
    (123456, InvalidRequest, False),
    ("InvalidAuthentication", InvalidAccessToken, False),
    ("invalidClientIdOrSecret", BadCredentials, False),
    ("Forbidden.AccessDenied.QpsLimitForApi", PlatformThrottled, True),
    ("Forbidden.AccessDenied.AccessTokenPermissionDenied", PermissionDenied, False),
    ("invalidParameter.msgParam.tooLong", MessageTooLarge, False),
    ("contain.unsafe.url", ContentRejected, False),
    ("system.error", ServerBusy, True),
]


@pytest.mark.parametrize(("errcode", "cls", "transient"), TABLE)
def test_errcode_table(errcode: int | str, cls: type[DingPushError], transient: bool) -> None:
    exc = error_from_reply(errcode, "some message", request_id="req-1", status_code=200)
    assert type(exc) is cls
    assert exc.transient is transient
    if isinstance(exc, APIError):
        assert exc.errcode == errcode
        assert exc.request_id == "req-1"
        assert str(errcode) in str(exc)


@pytest.mark.parametrize(
    ("errmsg", "reason"),
    [
        (
            "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            "keyword",
        ),
        ("description:关键词不匹配;solution:请联系群管理员查看此机器人的关键词;", "keyword"),
        (
            "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            "signature",
        ),
        ("description:机器人发送签名不匹配;solution:…", "signature"),
        ("invalid timestamp", "timestamp"),
        (
            "description:机器人发送签名过期;solution:签名生成时间和发送时间请保持在"
            " timestampms 以内;",
            "timestamp",
        ),
        ("ip 1.2.3.4 not in whitelist", "ip"),
        ("description:ip 不在白名单中;solution:请联系对应群的管理员", "ip"),
        ("错误描述:something new;解决方案:…", "unknown"),
    ],
)
def test_security_reason(errmsg: str, reason: str) -> None:
    exc = error_from_reply(310000, errmsg)
    assert isinstance(exc, SecurityRejected)
    assert exc.reason == reason


def test_exit_codes() -> None:
    assert dingpush.InvalidMessage("x").exit_code == 2
    assert dingpush.ConfigError().exit_code == 3
    assert APIError(1, "x").exit_code == 4
    assert RateLimited(130101, "x").exit_code == 5
    assert TransportError().exit_code == 6


def test_protocol_error_transience_follows_status() -> None:
    assert ProtocolError("gateway", status_code=502).transient
    assert ProtocolError("cut off").transient
    assert not ProtocolError("not found", status_code=404).transient


def test_local_message_too_large_names_size_limit_and_split() -> None:
    exc = MessageTooLarge.local(size=20_345, limit=20_000, channel="robot webhook")
    assert (exc.size, exc.limit, exc.errcode) == (20_345, 20_000, 460101)
    assert "20,345" in str(exc) and "20,000" in str(exc) and "split=True" in str(exc)


def test_refusals_of_dingpush_itself_say_nothing_reached_dingtalk() -> None:
    slot = RateLimited.local(target="ops", retry_at=0.0, wait=1.0, reason="at its limit")
    size = MessageTooLarge.local(size=20_001, limit=20_000, channel="robot webhook")
    assert slot.refused_locally and size.refused_locally
    for errcode in (130101, 460101):
        error = error_from_reply(errcode, "refused by DingTalk")
        assert isinstance(error, APIError) and not error.refused_locally


def test_default_message_is_the_docstring() -> None:
    assert str(dingpush.ConfigError()).startswith("A target, credential or setting is wrong")


def _documented_errors() -> dict[str, tuple[str, str, int]]:
    """Rows of docs/delivery.md's errors table: exception → (codes, retried, exit)."""
    doc = (pathlib.Path(__file__).parents[1] / "docs" / "delivery.md").read_text("utf-8")
    table = doc.split("<!-- errors table:", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, tuple[str, str, int]] = {}
    for line in table.splitlines()[3:]:
        name, codes, retried, exit_code, _ = (c.strip() for c in line.strip("|").split(" | "))
        rows[name.strip("`")] = (codes, retried, int(exit_code))
    return rows


def _codes_in(cell: str) -> list[str]:
    """The codes a cell names: numbers, `names`, ranges like 430101–430104, and wildcards."""
    codes: list[str] = []
    if cell.startswith("("):  # not an answer of DingTalk's: "(no answer in time)"
        return codes
    for part in re.findall(r"`[^`]+`|-?\d+(?:–\d+)?", cell):
        if "–" in part:
            first, last = part.split("–")
            codes += [str(n) for n in range(int(first), int(last) + 1)]
        else:
            codes.append(part.strip("`"))
    return codes


def test_the_documented_errors_table_is_the_code() -> None:
    rows = _documented_errors()
    classes = {
        name: cls
        for name in dingpush.__all__
        if isinstance(cls := getattr(dingpush, name), type) and issubclass(cls, DingPushError)
    }
    assert set(rows) == set(classes) - {"DingPushError", "APIError"}
    for name, (cell, retried, exit_code) in rows.items():
        cls = classes[name]
        assert exit_code == cls.exit_code, name
        if cls is RateLimited:
            assert retried == "cool-down"
        elif cls is dingpush.LimiterUnavailable:
            # Transient, but raised before any attempt: the caller sends again later.
            assert retried == "by the caller" and cls.transient
        elif retried != "as its cause":
            assert (retried == "yes") == cls.transient, name
        patterns = _codes_in(cell)
        for code, mapped in _ERRCODES.items():
            if mapped is cls:
                assert any(fnmatch.fnmatchcase(str(code), p) for p in patterns), (name, code)
        for pattern in patterns:
            if not any(ch in pattern for ch in "*?"):
                code = int(pattern) if pattern.lstrip("-").isdigit() else pattern
                assert type(error_from_reply(code, "x")) is cls, (name, code)
