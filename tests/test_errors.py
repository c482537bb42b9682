"""The exception tree: every errcode maps to a typed, actionable exception."""

from __future__ import annotations

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


def test_default_message_is_the_docstring() -> None:
    assert str(dingpush.ConfigError()).startswith("A target, credential or setting is wrong")
