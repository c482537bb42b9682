"""``dingpush send``: every message option, in-process and in a real subprocess, against the
emulator, which records exactly what arrived."""

from __future__ import annotations

import json
import pathlib
import typing

import pytest

from .conftest import SECRET, TOKEN, Invoke, Robot, Runner

A, B = "https://example.com/a", "https://example.com/b"
PIC = "https://example.com/a.png"

# (id, arguments, the body DingTalk receives, minus msgUuid)
CASES: list[tuple[str, list[str], dict[str, typing.Any]]] = [
    ("text", ["hello"], {"msgtype": "text", "text": {"content": "hello"}}),
    (
        "text-cjk-newlines",
        ["第一行\n  第二行 \n\n第四行"],
        {"msgtype": "text", "text": {"content": "第一行\n  第二行 \n\n第四行"}},
    ),
    ("no-escapes", ["a\\nb"], {"msgtype": "text", "text": {"content": "a\\nb"}}),
    (
        "escapes",
        ["-e", "a\\nb\\tc\\\\d\\q"],
        {"msgtype": "text", "text": {"content": "a\nb\tc\\d\\q"}},
    ),
    (
        "markdown",
        ["-m", "--title", "Nightly", "# Report\n\n**ok**"],
        {"msgtype": "markdown", "markdown": {"title": "Nightly", "text": "# Report\n\n**ok**"}},
    ),
    (
        "markdown-derived-title",
        ["--markdown", "## Disk on web-01\n> 97%"],
        {
            "msgtype": "markdown",
            "markdown": {"title": "Disk on web-01", "text": "## Disk on web-01\n> 97%"},
        },
    ),
    (
        "link",
        ["--link", A, "--pic", PIC, "--title", "Release", "what changed"],
        {
            "msgtype": "link",
            "link": {"title": "Release", "text": "what changed", "messageUrl": A, "picUrl": PIC},
        },
    ),
    (
        "card-one-button",
        ["--card", "--title", "Deploy", "--button", f"Open={A}?x=1", "### v2.3"],
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "Deploy",
                "text": "### v2.3",
                "singleTitle": "Open",
                "singleURL": f"{A}?x=1",
                "btnOrientation": "0",
            },
        },
    ),
    (
        "card-buttons",
        [
            "--card",
            "--button",
            f"Yes={A}",
            "--button",
            f"No={B}",
            "--horizontal",
            "--hide-avatar",
            "Vote",
        ],
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "Vote",
                "text": "Vote",
                "btns": [{"title": "Yes", "actionURL": A}, {"title": "No", "actionURL": B}],
                "btnOrientation": "1",
                "hideAvatar": "1",
            },
        },
    ),
    (
        "feed",
        ["--feed", "--item", f"First|{A}|{PIC}", "--item", f"Second|{B}|{PIC}"],
        {
            "msgtype": "feedCard",
            "feedCard": {
                "links": [
                    {"title": "First", "messageURL": A, "picURL": PIC},
                    {"title": "Second", "messageURL": B, "picURL": PIC},
                ]
            },
        },
    ),
    (
        "image-url",
        ["--image", PIC, "--title", "Chart"],
        {"msgtype": "markdown", "markdown": {"title": "Chart", "text": f"![Chart]({PIC})"}},
    ),
    (
        "at",
        [
            "--at",
            "13800000000",
            "--at",
            "user:0123",
            "--at",
            "ops-lead",
            "--at",
            "mobile:+852-98765432",
            "hi",
        ],
        {
            "msgtype": "text",
            "text": {"content": "hi @13800000000 @+852-98765432 @0123 @ops-lead"},
            "at": {
                "atMobiles": ["13800000000", "+852-98765432"],
                "atUserIds": ["0123", "ops-lead"],
                "isAtAll": False,
            },
        },
    ),
    (
        "at-all-markdown",
        ["-m", "--at-all", "--at", "13800000000", "alert @13800000000"],
        {
            "msgtype": "markdown",
            "markdown": {"title": "alert @13800000000", "text": "alert @13800000000"},
            "at": {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": True},
        },
    ),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_message_option_arrives_as_sent(
    dingpush: Invoke, env_robot: Robot, args: list[str], expected: dict[str, typing.Any]
) -> None:
    result = dingpush("send", *args)
    assert result.exit_code == 0, result.output
    assert env_robot.payloads() == [expected]
    assert result.stdout.startswith("sent ")


# Piped bytes, and what arrives: one final newline goes, everything else stays.
STDIN = [
    ("one-final-newline", "发布完成 ✅\n", "发布完成 ✅"),
    ("no-final-newline", "line 1\nline 2", "line 1\nline 2"),
    ("crlf", "第一行\r\n第二行\r\n", "第一行\r\n第二行"),
    ("blank-lines-kept", "a\n\n\nb\n\n", "a\n\n\nb\n"),
    ("spaces-kept", "  indented  \n\ttab\n", "  indented  \n\ttab"),
    ("bom-dropped", "\ufeffhello\n", "hello"),
]


@pytest.mark.parametrize(("data", "expected"), [s[1:] for s in STDIN], ids=[s[0] for s in STDIN])
@pytest.mark.parametrize("form", [[], ["-"], ["--input", "-"]], ids=["pipe", "dash", "input-dash"])
def test_stdin_is_sent_byte_for_byte(
    dingpush: Invoke, env_robot: Robot, form: list[str], data: str, expected: str
) -> None:
    result = dingpush("send", *form, input=data.encode("utf-8"))
    assert result.exit_code == 0, result.output
    assert env_robot.contents() == [expected]
    received = env_robot.server.emulator.requests(robot="ops")[0]
    assert received.body_size == len(
        json.dumps(
            {"msgtype": "text", "text": {"content": expected}, "msgUuid": received.msg_uuid},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )


def test_input_file_and_markdown(dingpush: Invoke, env_robot: Robot, home: pathlib.Path) -> None:
    report = home / "report.md"
    report.write_bytes("# 日报\r\n\r\n- 构建: **通过**\r\n".encode())
    result = dingpush("send", "-m", "--input", str(report))
    assert result.exit_code == 0, result.output
    assert env_robot.payloads() == [
        {
            "msgtype": "markdown",
            "markdown": {"title": "日报", "text": "# 日报\r\n\r\n- 构建: **通过**"},
        }
    ]


def test_msg_uuid_is_the_idempotency_key(dingpush: Invoke, env_robot: Robot) -> None:
    for _ in range(2):
        result = dingpush("send", "--msg-uuid", "deploy-42", "--json", "deployed")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["msg_uuid"] == "deploy-42"
    (message,) = env_robot.server.emulator.messages(robot="ops")
    assert message.msg_uuid == "deploy-42"
    assert env_robot.server.emulator.stats().robots["ops"].duplicates == 1


def test_json_result(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--json", "hello")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == {
        "ok": True,
        "target": "default",
        "kind": "robot",
        "msgtype": "text",
        "msg_uuid": env_robot.server.emulator.messages()[0].msg_uuid,
        "errcode": 0,
        "errmsg": "ok",
    }


def test_quiet_prints_nothing(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "-q", "--timeout", "5", "hello")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert env_robot.contents() == ["hello"]


def test_to_a_webhook_url_takes_the_secret_from_the_environment(
    dingpush: Invoke, robot: Robot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DINGPUSH_SECRET", SECRET)
    result = dingpush("send", "--to", robot.url, "via url")
    assert result.exit_code == 0, result.output
    assert robot.contents() == ["via url"]
    assert TOKEN not in result.output


def test_to_a_dingtalk_url(dingpush: Invoke, robot: Robot, monkeypatch: pytest.MonkeyPatch) -> None:
    base = robot.server.url
    monkeypatch.setenv("DINGPUSH_OAPI_BASE", base)
    result = dingpush("send", "--to", f"dingtalk://{SECRET}@{TOKEN}/13800000000", "hi")
    assert result.exit_code == 0, result.output
    assert robot.payloads()[0]["at"] == {
        "atMobiles": ["13800000000"],
        "atUserIds": [],
        "isAtAll": False,
    }
    assert SECRET not in result.output and TOKEN not in result.output


def test_dry_run_prints_the_exact_body_and_sends_nothing(
    dingpush: Invoke, env_robot: Robot
) -> None:
    result = dingpush(
        "send", "--dry-run", "--msg-uuid", "u-1", "--at", "13800000000", "你好\r\n世界"
    )
    assert result.exit_code == 0, result.output
    head, body = result.stdout_bytes.split(b"\n\n", 1)
    lines = head.decode().splitlines()
    assert lines[0].startswith(
        f"POST {env_robot.server.url}/robot/send?access_token=0f3c…0e2a&timestamp="
    )
    assert lines[0].endswith("&sign=****")
    assert "Content-Type: application/json;charset=utf-8" in lines
    expected = {
        "msgtype": "text",
        "text": {"content": "你好\r\n世界 @13800000000"},
        "at": {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False},
        "msgUuid": "u-1",
    }
    assert body == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    assert env_robot.server.emulator.requests() == []
    assert TOKEN not in result.output and SECRET not in result.output


def test_dry_run_json(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", "--dry-run", "--json", "--msg-uuid", "u-2", "-m", "**hi**")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (request,) = data["requests"]
    assert data["dry_run"] is True and data["target"] == "default"
    assert request["body"] == {
        "msgtype": "markdown",
        "markdown": {"title": "hi", "text": "**hi**"},
        "msgUuid": "u-2",
    }
    assert request["bytes"] == len(json.dumps(request["body"], separators=(",", ":")).encode())
    assert "access_token=0f3c…0e2a" in request["url"] and "sign=****" in request["url"]
    assert env_robot.server.emulator.requests() == []


USAGE_ERRORS = [
    (["--image", "chart.png"], "a webhook robot cannot upload a local file"),
    (["--file", "report.txt"], "use --input report.txt"),
    (["--link", A, "--at", "138", "x"], "--at goes with text or --markdown or --image messages"),
    (["--pic", PIC, "x"], "--pic goes with --link messages"),
    (["--button", f"a={A}", "x"], "--button goes with --card messages"),
    (["--item", f"a|{A}|{PIC}", "x"], "--item goes with --feed messages"),
    (["--title", "t", "x"], "--title goes with --markdown or --link or --card or --image"),
    (["--card", "x"], "--card needs at least one --button"),
    (["--card", "--button", "no-url", "x"], "write TITLE=URL"),
    (["--feed"], "--feed needs at least one --item"),
    (
        [
            "--feed",
            "--item",
            "a|b",
        ],
        "write TITLE|URL|PICTURE_URL",
    ),
    (["--feed", "--item", f"a|{A}|{PIC}", "text"], "--feed cards take no TEXT"),
    (["-m", "--link", A, "x"], "choose one message type: --markdown and --link conflict"),
    (["--at", "user:", "x"], "names nobody"),
    (["   "], "the message text is empty"),
    (["--link", "not a url", "x"], "link.messageUrl: must be an absolute URL"),
    (["x", "--input", "report.txt"], "either as TEXT or with --input"),
    (["--input", "missing.txt"], "cannot read 'missing.txt'"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[e[1][:30] for e in USAGE_ERRORS])
def test_usage_errors_exit_2_and_send_nothing(
    run: Runner, env_robot: Robot, home: pathlib.Path, args: list[str], message: str
) -> None:
    (home / "report.txt").write_text("the report")
    result = run("send", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert env_robot.server.emulator.requests() == []


def test_no_text_and_nothing_piped(run: Runner, env_robot: Robot) -> None:
    result = run("send", input=b"")
    assert result.exit_code == 2
    assert "the message text is empty" in result.stderr


def test_stdin_that_is_not_utf8(dingpush: Invoke, env_robot: Robot) -> None:
    result = dingpush("send", input="告警".encode("gbk"))
    assert result.exit_code == 2
    assert "stdin is not UTF-8 text (invalid byte 0xb8 at offset 0)" in result.stderr
    assert "iconv -f GBK -t UTF-8" in result.stderr


def test_feed_does_not_read_stdin(run: Runner, env_robot: Robot) -> None:
    # An open stdin that never closes (some CI runners) must not hang a send that needs no text.
    result = run("send", "--feed", "--item", f"a|{A}|{PIC}", input=b"ignored")
    assert result.exit_code == 0, result.output
    assert env_robot.payloads()[0]["msgtype"] == "feedCard"


def test_dry_run_warns_about_markdown_dingtalk_will_not_draw(
    dingpush: Invoke, env_robot: Robot
) -> None:
    table = "### Disk\n| host | used |\n|---|---|\n| web-01 | 97% |"
    result = dingpush("send", "--dry-run", "-m", "--title", "Disk", table)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "warning: DingTalk will not render this as written: line 2: table (lines 2-4)"
    )
    assert json.loads(result.stdout.rsplit("\n\n", 1)[1])["markdown"]["text"] == table
    result = dingpush("send", "--dry-run", "--json", "-m", "**fine**")
    assert json.loads(result.stdout)["warnings"] == []


@pytest.mark.parametrize(
    "where", ["--config before the command", "--config after it", "$DINGPUSH_CONFIG"]
)
def test_to_a_named_target_of_a_config_file(
    dingpush: Invoke,
    robot: Robot,
    home: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    config = home / "elsewhere" / "team.toml"
    config.parent.mkdir()
    config.write_text(
        f'[targets.ops]\nwebhook = "{robot.url}"\nsecret = "${{OPS_SECRET}}"\nkeyword = "告警"\n'
    )
    monkeypatch.setenv("OPS_SECRET", SECRET)
    args = ["send", "--to", "ops", "磁盘满了"]
    if where == "--config before the command":
        args = ["--config", str(config), *args]
    elif where == "--config after it":
        args = [*args, "--config", str(config)]
    else:
        monkeypatch.setenv("DINGPUSH_CONFIG", str(config))
    result = dingpush(*args)
    assert result.exit_code == 0, result.output
    assert robot.contents() == ["磁盘满了\n告警"]


def test_the_max_wait_help_says_the_librarys_default() -> None:
    # The CLI's help states the library's constant; it is written out so that the help loads
    # nothing of the library, and kept equal here.
    from dingpush.cli._send import send
    from dingpush.lowlevel import DEFAULT_MAX_WAIT

    [option] = [p for p in send.params if p.name == "max_wait"]
    assert f"(default {DEFAULT_MAX_WAIT:g})" in (getattr(option, "help", None) or "")
