"""Errors name their fix in command-line terms: the option, the variable, or the file line the
setting came from; the library keeps its Python wording (issue 15)."""

from __future__ import annotations

import pathlib

import pytest

import dingpush
from dingpush.cli._advice import cli_message

from .conftest import TOKEN, Robot, Runner
from .test_exit_codes import PYTHON_WORDS


def errors() -> list[dingpush.DingPushError]:
    """One error of every class of docs/delivery.md's table, as the library raises them."""
    from dingpush import _errors

    made: list[dingpush.DingPushError] = [
        dingpush.MessageTooLarge.local(size=31_100, limit=20_000, channel="robot webhook"),
        dingpush.RateLimited.local(target="ops", retry_at=0, wait=3, reason="at its limit"),
        dingpush.PartialDelivery(
            sent=[], total=2, error=dingpush.ServerBusy(-1, "busy"), msg_uuid="X"
        ),
        dingpush.PoolExhausted({"a": dingpush.TokenNotFound(300001, "token is not exist")}),
        dingpush.LimiterUnavailable(),
        dingpush.ConfigError("no target"),
        dingpush.InvalidMessage("bad", field="text"),
        dingpush.UnsupportedMessage("no mentions: drop at=", field="at"),
        dingpush.BadCredentials("wrong", credential="app_secret"),
    ]
    made[-2].advice = dingpush.Advice("at", "drop at=")
    for code in (-1, 90018, 130101, 310000, 300001, 400102, 40014, 43007, 460101, 400105, 430101):
        made.append(_errors.error_from_reply(code, "keywords not in content"))
    made.append(_errors.error_from_reply(310000, "sign not match"))
    made.append(_errors.error_from_reply(40035, "bad"))
    made.append(_errors.QueryKeyExpired(-1, "processQueryKey expired"))
    made.append(_errors.DingQuotaExhausted(-1, "no quota"))
    made.append(_errors.CallbackRejected("wrong sign", reason="signature"))
    return made


def transport_errors() -> list[dingpush.DingPushError]:
    """The transport family, as the library's one mapping of httpx's errors builds them."""
    import httpx

    from dingpush._masking import Redactor
    from dingpush._wire import map_transport_errors

    made: list[dingpush.DingPushError] = [dingpush.ProtocolError("HTTP 502", status_code=502)]
    for cause in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow")):
        try:
            with map_transport_errors(Redactor(), "DingTalk"):
                raise cause
        except dingpush.TransportError as exc:
            made.append(exc)
    return made


@pytest.mark.parametrize("error", [*errors(), *transport_errors()], ids=lambda e: type(e).__name__)
def test_every_error_speaks_command_line(error: dingpush.DingPushError) -> None:
    text = cli_message(error, None, None)
    for python in PYTHON_WORDS:
        assert python not in text
    if error.advice is not None and error.advice.phrase:
        # The library's message keeps its Python wording, the CLI's replaces exactly it.
        assert error.advice.phrase.lower() in str(error).lower()
        assert text != str(error)


def test_a_keyword_in_the_file_is_named_by_its_line(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    robot.server.emulator.update_robot("ops", keywords=("告警",))
    (home / "dingpush.toml").write_text(
        f'default = "ops"\n\n[targets.ops]\nkind = "robot"\nwebhook = "{robot.url}"\n'
        f'secret = "{robot.secret}"\nkeyword = "wrong"\n'
    )
    result = run("send", "hello")
    assert result.exit_code == 4
    assert 'set keyword = "…" at dingpush.toml:7' in result.stderr
    assert "pass keyword=" not in result.stderr


def test_a_missing_keyword_is_added_to_the_target_table(
    run: Runner, robot: Robot, home: pathlib.Path
) -> None:
    robot.server.emulator.update_robot("ops", keywords=("告警",))
    (home / "dingpush.toml").write_text(
        f'default = "ops"\n\n[targets.ops]\nkind = "robot"\nwebhook = "{robot.url}"\n'
        f'secret = "{robot.secret}"\n'
    )
    result = run("send", "--json", "hello")
    assert result.exit_code == 4
    assert 'add keyword = \\"…\\" to [targets.ops] (dingpush.toml:' in result.stdout
    assert '"setting": "keyword"' in result.stdout


def test_environment_settings_are_named_as_variables(run: Runner, env_robot: Robot) -> None:
    env_robot.server.emulator.update_robot("ops", keywords=("告警",))
    result = run("send", "hello")
    assert "pass --keyword WORD or set DINGPUSH_KEYWORD='…' (one of them" in result.stderr
    result = run("send", "hello", env={"DINGPUSH_SECRET": None})
    assert "set DINGPUSH_SECRET='SEC…' as shown under 加签" in result.stderr
    assert TOKEN not in result.output


def test_the_library_keeps_python_wording(env_robot: Robot) -> None:
    env_robot.server.emulator.update_robot("ops", keywords=("告警",))
    with (
        dingpush.Robot(env_robot.url, secret=env_robot.secret) as client,
        pytest.raises(dingpush.SecurityRejected) as caught,
    ):
        client.send("hello")
    assert "pass keyword='…'" in str(caught.value)
    assert caught.value.advice == dingpush.Advice("keyword", "pass keyword='…'")


def test_the_cases_cover_docs_delivery_table() -> None:
    import re

    from _docblocks import ROOT

    table = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    start = table.index("<!-- errors table")
    classes = set(re.findall(r"^\| `(\w+)` \|", table[start:], flags=re.MULTILINE))
    covered = {type(e).__name__ for e in [*errors(), *transport_errors()]}
    assert classes and classes <= covered, classes - covered


def test_a_batch_line_names_the_fix_in_command_line_terms(run: Runner, env_robot: Robot) -> None:
    import json

    env_robot.server.emulator.update_robot("ops", keywords=("告警",))
    result = run("send", "--batch", "-", "--json", input='"a"\n')
    error = json.loads(result.stdout)["lines"][0]["error"]
    assert "set DINGPUSH_KEYWORD='…'" in error and "keyword='" not in error.replace(
        "DINGPUSH_KEYWORD='", ""
    )


def test_too_many_mentions_name_the_at_all_option(run: Runner, env_robot: Robot) -> None:
    mentions = [arg for n in range(51) for arg in ("--at", f"138000000{n:02d}")]
    result = run("send", "--dry-run", *mentions, "hi")
    assert result.exit_code == 2
    assert "use --at-all or split the mentions" in result.stderr
    assert "all=True" not in result.stderr


def test_quoted_errors_are_said_in_command_line_terms_too(tmp_path: pathlib.Path) -> None:
    from dingpush import _errors
    from dingpush.config import load_config

    (tmp_path / "dingpush.toml").write_text(
        '[targets.a]\nwebhook = "aaa"\n[targets.b]\nwebhook = "bbb"\n'
        '[targets.both]\nkind = "pool"\nmembers = ["a", "b"]\n'
    )
    config = load_config(tmp_path / "dingpush.toml")
    keyword = _errors.error_from_reply(310000, "keywords not in content")
    pool = dingpush.PoolExhausted({"a": keyword, "b": keyword})
    text = cli_message(pool, config.resolve("both"), config)
    assert text.count('set keyword = "…" in the robots of the pool (a, b)') == 2
    assert "keyword='" not in text
    too_large = dingpush.MessageTooLarge(460101, "too long")
    partial = dingpush.PartialDelivery(sent=[], total=2, error=too_large, msg_uuid="m")
    text = cli_message(partial, config.resolve("a"), config)
    assert "Use --split" in text and "with --msg-uuid m" in text
    assert "split=True" not in text and "msg_uuid=" not in text


def test_keyword_given_as_an_option(run: Runner, env_robot: Robot) -> None:
    env_robot.server.emulator.update_robot("ops", keywords=("告警",))
    result = run("send", "--keyword", "告警", "disk full")
    assert result.exit_code == 0, result.output
    assert env_robot.contents() == ["disk full\n告警"]
    result = run("send", "--keyword", "deploy", "disk full")
    assert result.exit_code == 4
    assert "pass --keyword WORD (it is appended when missing)" in result.stderr
    assert "keyword='" not in result.stderr
    result = run("send", "--keyword", "x", "--to", "app:nope/group/cid", "hi")
    assert result.exit_code in (2, 3)


def test_keyword_in_a_dry_run(run: Runner, env_robot: Robot) -> None:
    result = run("send", "--dry-run", "--keyword", "告警", "disk full")
    assert result.exit_code == 0
    assert "告警" in result.stdout


def test_horizontal_buttons_an_app_cannot_show_name_the_option(
    run: Runner, corp: object, home: pathlib.Path
) -> None:
    buttons = [arg for i in range(3) for arg in ("--button", f"B{i}=https://example.com/{i}")]
    result = run("send", "--dry-run", "--to", "room", "--card", "--horizontal", *buttons, "body")
    assert result.exit_code != 0
    assert "drop --horizontal (up to 5 buttons)" in result.stderr
    assert "orientation=" not in result.output


def test_an_unnamed_file_says_files_once(tmp_path: pathlib.Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    with pytest.raises(dingpush.InvalidMessage) as caught:
        dingpush.File.from_file(blob)
    assert "file files" not in str(caught.value)
    assert "DingTalk takes files as" in str(caught.value)
