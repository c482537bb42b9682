"""RobotConfig, EmulatorOptions and the command-line parsers; the package's public names."""

from __future__ import annotations

from typing import Any

import pytest

import dingpush.emulator
from dingpush.emulator import (
    DEFAULT_KEYWORD_FIELDS,
    EmulatorOptions,
    RobotConfig,
    parse_rate,
    parse_robot_spec,
)

from ._support import SECRET, TOKEN


def test_all_is_sorted_and_complete() -> None:
    # "@py_…" names come from pytest's assertion rewriting of plugin packages.
    public = {name for name in vars(dingpush.emulator) if not name.startswith(("_", "@"))}
    public -= {"annotations", "inspect"}
    assert set(dingpush.emulator.__all__) == public
    constants = [n for n in dingpush.emulator.__all__ if n.isupper()]
    others = [n for n in dingpush.emulator.__all__ if not n.isupper()]
    assert dingpush.emulator.__all__ == sorted(constants) + sorted(others)
    assert dingpush.emulator.Emulator.__module__ == "dingpush.emulator"


def test_robot_defaults() -> None:
    robot = RobotConfig("ops", TOKEN)
    assert robot.group == "ops group"
    assert (robot.rate_limit, robot.rate_window, robot.lockout) == (20, 60.0, 600.0)
    assert robot.status == "active" and robot.secret is None


def test_robot_repr_masks_the_token_and_hides_the_secret() -> None:
    text = repr(RobotConfig("ops", TOKEN, secret=SECRET))
    assert TOKEN not in text and SECRET not in text
    assert "signed=True" in text and TOKEN[:4] in text


def test_robot_lists_become_tuples() -> None:
    robot = RobotConfig("ops", "t", keywords=["a", "b"], ip_allowlist=["1.1.1.1"])  # type: ignore[arg-type]
    assert robot.keywords == ("a", "b") and robot.ip_allowlist == ("1.1.1.1",)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "name"),
        ({"token": ""}, "token"),
        ({"secret": ""}, "secret"),
        ({"keywords": tuple(str(i) for i in range(11))}, "at most 10"),
        ({"keywords": ("",)}, "keywords"),
        ({"ip_allowlist": ("::1",)}, "IPv6"),
        ({"ip_allowlist": ("example.com",)}, "IPv4"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_window": 0}, "rate_window"),
        ({"lockout": -1}, "lockout"),
        ({"status": "paused"}, "status"),
    ],
)
def test_robot_validation(kwargs: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"name": "ops", "token": "t", **kwargs}
    with pytest.raises(ValueError, match=match):
        RobotConfig(**values)


def test_ten_keywords_and_cidr_ranges_are_fine() -> None:
    robot = RobotConfig("ops", "t", keywords=tuple("abcdefghij"), ip_allowlist=("1.1.1.0/24",))
    assert len(robot.keywords) == 10


def test_webhook_url_encodes_the_token() -> None:
    robot = RobotConfig("ops", "a b&c")
    assert robot.webhook_url("http://h:1/") == "http://h:1/robot/send?access_token=a%20b%26c"


def test_option_defaults_follow_observed_behaviour() -> None:
    options = EmulatorOptions()
    assert options.rate_limit_errcode == 130101
    assert options.unknown_token_errcode == 300001
    assert options.body_limit == 20_000
    assert options.signature_window_ms == 3_600_000
    assert options.keyword_fields == DEFAULT_KEYWORD_FIELDS
    assert options.to_dict()["keyword_fields"] == list(DEFAULT_KEYWORD_FIELDS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_limit_errcode": 1},
        {"unknown_token_errcode": 1},
        {"rate_window_kind": "tumbling"},
        {"errmsg_style": "klingon"},
        {"body_limit": 0},
        {"signature_window_ms": -1},
        {"keyword_fields": ("text..content",)},
    ],
)
def test_option_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmulatorOptions(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20/60s", (20, 60.0)),
        ("20/min", (20, 60.0)),
        ("20/m", (20, 60.0)),
        ("3/1s", (3, 1.0)),
        ("3/1.5s", (3, 1.5)),
        ("100/h", (100, 3600.0)),
        ("5/2", (5, 2.0)),
        ("5000/1m", (5000, 60.0)),
        ("3/1d", (3, 86400.0)),  # the grammar every entry point shares (dingpush.Rate.parse)
    ],
)
def test_parse_rate(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "20", "0/60s", "x/60s", "20/0s", "20/60y"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_parse_robot_spec() -> None:
    assert parse_robot_spec("ops:tok").token == "tok"
    full = parse_robot_spec(f"ops:tok:{SECRET}", keywords=("k",))
    assert (full.name, full.token, full.secret, full.keywords) == ("ops", "tok", SECRET, ("k",))
    generated = parse_robot_spec("ops")
    assert len(generated.token) == 64 and generated.secret is None
    assert parse_robot_spec("ops").token != generated.token
    keyed = parse_robot_spec("ops:tok::ALERT,告警", keywords=("shared", "ALERT"))
    assert (keyed.secret, keyed.keywords) == (None, ("ALERT", "告警", "shared"))
    with pytest.raises(ValueError, match="has no name"):
        parse_robot_spec(":tok")
