"""Exit status by error class, errors in one or two lines, ``--verbose`` details, ``--json``
errors, and no secret in any of it. The emulator's fault injection gives every errcode."""

from __future__ import annotations

import json
import time
import typing

import pytest

from dingpush.testing import EmulatorServer

from .conftest import SECRET, TOKEN, Invoke, Robot, Runner


def inject(robot: Robot, kind: str, **options: typing.Any) -> None:
    robot.server.emulator.inject_fault(kind, robot="ops", count=None, **options)  # type: ignore[arg-type]


# (id, set-up, exit status, error class, a phrase of the message)
Setup = typing.Callable[[Robot], object]
CASES: list[tuple[str, Setup, int, str, str]] = [
    (
        "unknown token",
        lambda r: r.server.emulator.update_robot("ops", token="another-token"),
        3,
        "TokenNotFound",
        "300001 token is not exist",
    ),
    (
        "robot disabled",
        lambda r: r.server.emulator.update_robot("ops", status="disabled"),
        3,
        "RobotUnavailable",
        "400102",
    ),
    (
        "no permission",
        lambda r: inject(r, "errcode", errcode=43007),
        3,
        "PermissionDenied",
        "43007",
    ),
    (
        "wrong secret",
        lambda r: r.server.emulator.update_robot("ops", secret="SEC-another-one"),
        4,
        "SecurityRejected",
        "310000 sign not match",
    ),
    (
        "keyword",
        lambda r: r.server.emulator.update_robot("ops", keywords=("告警",)),
        4,
        "SecurityRejected",
        "310000 keywords not in content",
    ),
    ("too large", lambda r: inject(r, "errcode", errcode=460101), 4, "MessageTooLarge", "460101"),
    ("server busy", lambda r: inject(r, "errcode", errcode=-1), 4, "ServerBusy", "-1 系统繁忙"),
    ("moderation", lambda r: inject(r, "errcode", errcode=430102), 4, "ContentRejected", "430102"),
    ("bad request", lambda r: inject(r, "errcode", errcode=40035), 4, "InvalidRequest", "40035"),
    (
        "bad msgtype",
        lambda r: inject(r, "errcode", errcode=400105),
        4,
        "UnsupportedMessageType",
        "400105",
    ),
    ("throttled", lambda r: inject(r, "errcode", errcode=130101), 5, "RateLimited", "130101"),
    (
        "platform qps",
        lambda r: inject(r, "errcode", errcode=90018),
        5,
        "PlatformThrottled",
        "90018",
    ),
    ("http 500", lambda r: inject(r, "http500"), 6, "ProtocolError", "HTTP 500"),
    ("dropped", lambda r: inject(r, "drop"), 6, "TransportError", "could not complete the request"),
    ("timeout", lambda r: inject(r, "delay", delay=3), 6, "Timeout", "did not answer in time"),
]


@pytest.mark.parametrize(
    ("setup", "code", "cls", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_exit_status_by_error_class(
    dingpush: Invoke, env_robot: Robot, setup: Setup, code: int, cls: str, phrase: str
) -> None:
    setup(env_robot)
    result = dingpush("send", "--timeout", "1", "--retries", "0", "--no-wait", "hello")
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Error: "))
    warnings, error, notes = lines[:at], lines[at], lines[at + 1 :]
    assert phrase in error
    # A wrong webhook says where it came from, in command-line terms.
    assert notes == (
        ["  the webhook comes from $DINGPUSH_WEBHOOK: fix it there"]
        if cls in ("TokenNotFound", "RobotUnavailable")
        else []
    )
    # A throttle also says, once, that the robot now rests (the library's warning).
    assert [w.split(" (errcode")[0] for w in warnings] == (
        [f"warning: DingTalk throttled {env_robot.server.url}/robot/send?access_token=0f3c…0e2a"]
        if cls == "RateLimited"
        else []
    )
    assert TOKEN not in result.output and SECRET not in result.output
    # The fix is said in command-line terms, never the library's Python arguments.
    for python in PYTHON_WORDS:
        assert python not in result.output
    settle(env_robot)


PYTHON_WORDS = (
    "split=True",
    "keyword='",
    "secret='",
    "timeout=",
    "proxy=",
    "max_wait=",
    "at=",
    "orientation=",
)


def settle(robot: Robot) -> None:
    """Wait for a request the client gave up on (a ``delay`` fault) to land in the emulator, so
    that it is not counted by the next test."""
    if any(f.kind == "delay" for f in robot.server.emulator.faults()):
        deadline = time.monotonic() + 10
        while not robot.server.emulator.requests() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("setup", "code", "cls", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_json_errors(
    run: Runner, env_robot: Robot, setup: Setup, code: int, cls: str, phrase: str
) -> None:
    setup(env_robot)
    result = run("send", "--json", "--timeout", "1", "--retries", "0", "--no-wait", "hello")
    assert result.exit_code == code
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["error"]["type"] == cls and data["error"]["exit_code"] == code
    assert phrase in data["error"]["message"]
    assert TOKEN not in result.output and SECRET not in result.output
    # The fix is said in command-line terms, never the library's Python arguments.
    for python in PYTHON_WORDS:
        assert python not in result.output
    settle(env_robot)


def test_verbose_adds_details_never_secrets(dingpush: Invoke, env_robot: Robot) -> None:
    env_robot.server.emulator.update_robot("ops", secret="SEC-another-one")
    result = dingpush("send", "-v", "hello")
    assert result.exit_code == 4
    lines = result.stderr.splitlines()
    assert lines[0].startswith("· configuration: environment (no file found)")
    assert "  error class: dingpush.SecurityRejected (exit status 4)" in lines
    assert "  DingTalk answered: errcode 310000, errmsg 'sign not match'" in lines
    assert "  retrying may help: no" in lines
    assert any("HTTP Request: POST" in line and "access_token=0f3c…0e2a" in line for line in lines)
    assert TOKEN not in result.output and SECRET not in result.output


def test_verbose_transport_cause(run: Runner, env_robot: Robot) -> None:
    inject(env_robot, "drop")
    result = run("send", "--verbose", "--retries", "0", "hello")
    assert result.exit_code == 6
    assert "  retrying may help: yes" in result.stderr
    assert "  caused by: RemoteProtocolError" in result.stderr


def test_unreachable_host(dingpush: Invoke, home: object) -> None:
    result = dingpush(
        "send", "--to", f"http://127.0.0.1:9/robot/send?access_token={TOKEN}", "hello"
    )
    assert result.exit_code == 6
    assert "check the network" in result.stderr and TOKEN not in result.output


def test_configuration_errors_exit_3(dingpush: Invoke, home: object) -> None:
    result = dingpush("send", "hello")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: no target to send to: give --to")
    result = dingpush("send", "--config", "missing.toml", "hello")
    assert result.exit_code == 3
    assert "--config names 'missing.toml', which does not exist" in result.stderr


def test_usage_errors_exit_2(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option '--no-such-option'" in result.stderr
    result = dingpush("nonsense")
    assert result.exit_code == 2


def test_locally_too_large_is_refused_before_sending(run: Runner, env_robot: Robot) -> None:
    result = run("send", "长" * 7000)
    assert result.exit_code == 4
    assert "not sent: the body is 21,089 bytes, the robot webhook takes at most 20,000" in (
        result.stderr
    )
    assert "split" in result.stderr
    assert env_robot.server.emulator.requests() == []


def test_rate_limit_from_the_emulator(
    dingtalk_emulator: EmulatorServer, run: Runner, home: object
) -> None:
    dingtalk_emulator.add_robot("tiny", "tiny-token", rate_limit=1)
    url = dingtalk_emulator.webhook_url("tiny")
    assert run("send", "--to", url, "one").exit_code == 0
    result = run("send", "--to", url, "--no-wait", "two")
    assert result.exit_code == 5
    assert "130101" in result.stderr


@pytest.mark.parametrize(
    ("webhook", "expected"),
    [
        (
            "a/b",
            "give the whole URL starting with https:// or only the value after access_token=. "
            "Fix: copy",
        ),
        ("dingtalk://", "'dingtalk://' has no token: use dingtalk://SECRET@TOKEN/. Fix: copy"),
        (
            "https://x.example/hook?sign=abc123)",
            "the webhook URL 'https://x.example/hook?sign=****)' has no access_token",
        ),
    ],
)
def test_masking_keeps_the_templates_of_help_texts(
    run: Runner, home: object, webhook: str, expected: str
) -> None:
    result = run("send", "--dry-run", "hi", env={"DINGPUSH_WEBHOOK": webhook})
    assert result.exit_code == 3
    assert expected in result.stderr
