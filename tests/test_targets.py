"""Robot targets: webhook URLs, bare tokens and apprise-style dingtalk:// URLs (table-driven)."""

from __future__ import annotations

import pytest

from dingpush import ConfigError, Robot, WebhookTarget, parse_robot_target

TOKEN = "6c2ae9f0aaaabbbbccccddddeeeeffff0000111122223333444455556666aaaa"
SECRET = "SEC0123456789abcdef"

CASES: list[tuple[str, dict[str, object], WebhookTarget]] = [
    (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        {},
        WebhookTarget("https://oapi.dingtalk.com/robot/send", TOKEN),
    ),
    # A URL copied from a signed request: the stale timestamp and sign are dropped.
    (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}&timestamp=1&sign=abc",
        {"secret": SECRET},
        WebhookTarget("https://oapi.dingtalk.com/robot/send", TOKEN, SECRET),
    ),
    (TOKEN, {}, WebhookTarget("https://oapi.dingtalk.com/robot/send", TOKEN)),
    (
        TOKEN,
        {"base_url": "http://127.0.0.1:9999/"},
        WebhookTarget("http://127.0.0.1:9999/robot/send", TOKEN),
    ),
    (
        f"http://127.0.0.1:8123/robot/send?access_token={TOKEN}",
        {},
        WebhookTarget("http://127.0.0.1:8123/robot/send", TOKEN),
    ),
    (
        f"dingtalk://{TOKEN}/",
        {},
        WebhookTarget("https://oapi.dingtalk.com/robot/send", TOKEN),
    ),
    (
        f"dingtalk://{SECRET}@{TOKEN}/13800000000/13900000000/",
        {},
        WebhookTarget(
            "https://oapi.dingtalk.com/robot/send", TOKEN, SECRET, ("13800000000", "13900000000")
        ),
    ),
    (
        f"dingtalk://{TOKEN}/?secret={SECRET}&to=13800000000,u1&format=markdown",
        {},
        WebhookTarget(
            "https://oapi.dingtalk.com/robot/send", TOKEN, SECRET, ("13800000000", "u1"), True
        ),
    ),
    (
        "dingtalk://ignored/?token=abc123",
        {},
        WebhookTarget("https://oapi.dingtalk.com/robot/send", "abc123"),
    ),
]


@pytest.mark.parametrize(("target", "kwargs", "expected"), CASES)
def test_target_forms(target: str, kwargs: dict[str, str], expected: WebhookTarget) -> None:
    assert parse_robot_target(target, **kwargs) == expected


def test_oapi_base_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DINGPUSH_OAPI_BASE", "http://127.0.0.1:4000")
    assert parse_robot_target(TOKEN).endpoint == "http://127.0.0.1:4000/robot/send"
    # An explicit webhook URL keeps its own host.
    full = parse_robot_target(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}")
    assert full.endpoint == "https://oapi.dingtalk.com/robot/send"


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        ("", {}, "empty"),
        ("https://oapi.dingtalk.com/robot/send", {}, "no access_token"),
        (f"http://oapi.dingtalk.com/robot/send?access_token={TOKEN}", {}, "https:// only"),
        (
            "ftp://example.com/robot/send?access_token=x",
            {},
            "is not a webhook URL: a robot target is an https://",
        ),
        ("oapi.dingtalk.com/robot/send?access_token=x", {}, "neither a webhook URL"),
        (TOKEN, {"secret": "0123456789abcdef"}, "does not start with SEC"),
        (TOKEN, {"base_url": "localhost:9"}, "not an http"),
    ],
)
def test_bad_targets_say_how_to_fix(target: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_robot_target(target, **kwargs)
    assert TOKEN not in str(info.value)
    assert info.value.exit_code == 3


def test_reprs_mask_token_and_secret() -> None:
    target = parse_robot_target(TOKEN, secret=SECRET)
    with Robot(target) as robot:
        for text in (repr(target), repr(robot), target.display):
            assert TOKEN not in text
            assert SECRET not in text
            assert "6c2a…aaaa" in text
    assert target.key.startswith("robot:")
    assert TOKEN not in target.key
