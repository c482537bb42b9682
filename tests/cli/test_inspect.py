"""``targets``, ``config show`` and ``check``: what is configured, masked, and from where."""

from __future__ import annotations

import json
import pathlib

import pytest

from .conftest import SECRET, TOKEN, Invoke, Robot, Runner

APP_SECRET = "corp-app-secret-0123456789"
RELAY_TOKEN = "relay-api-token-0123456789"


@pytest.fixture
def configured(robot: Robot, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Robot:
    monkeypatch.setenv("OPS_SECRET", SECRET)
    monkeypatch.setenv("CORP_SECRET", APP_SECRET)
    (home / "dingpush.toml").write_text(
        f"""\
default = "ops"

[targets.ops]
webhook = "{robot.url}"
secret = "${{OPS_SECRET}}"
keyword = "告警"
description = "operations group"

[targets.pair]
kind = "pool"
members = ["ops", "ops2"]

[targets.ops2]
webhook = "{robot.url}"
secret = "{SECRET}"

[targets.room]
kind = "app-group"
app = "corp"
open_conversation_id = "cidRoom=="

[targets.later]
webhook = "${{LATER_WEBHOOK}}"

[apps.corp]
app_key = "dingcorpkey"
app_secret = "${{CORP_SECRET}}"

[relay]
bind = "127.0.0.1:8080"
api_token = "{RELAY_TOKEN}"
""",
        encoding="utf-8",
    )
    return robot


def no_secrets(text: str) -> None:
    for secret in (TOKEN, SECRET, APP_SECRET, RELAY_TOKEN):
        assert secret not in text
    assert SECRET[3:] not in text and TOKEN[4:-4] not in text


def test_targets(dingpush: Invoke, configured: Robot) -> None:
    result = dingpush("targets")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "DESTINATION", "NOTE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == ["later", "ops", "ops2", "pair", "room"]
    assert "robot" in rows["ops"] and "access_token=0f3c…0e2a" in rows["ops"]
    assert "default, operations group" in rows["ops"]
    assert "pool" in rows["pair"] and "2 robots: ops, ops2" in rows["pair"]
    assert "app corp, group cidRoom==" in rows["room"]
    assert "not usable now: refers to ${LATER_WEBHOOK}, which is not set" in rows["later"]
    no_secrets(result.output)


def test_targets_json(run: Runner, configured: Robot) -> None:
    result = run("targets", "--json")
    data = {t["name"]: t for t in json.loads(result.stdout)}
    assert data["ops"] == {
        "name": "ops",
        "kind": "robot",
        "destination": f"{configured.server.url}/robot/send?access_token=0f3c…0e2a",
        "note": "default, operations group",
    }
    no_secrets(result.output)


def test_targets_without_any(run: Runner, home: pathlib.Path) -> None:
    result = run("targets")
    assert result.exit_code == 0
    assert result.stdout.startswith("no targets configured")


def test_config_show(dingpush: Invoke, configured: Robot) -> None:
    result = dingpush("config", "show")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("# configuration file: ")
    assert "# looked for: $DINGPUSH_CONFIG (not set), ./dingpush.toml (found)" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert 'default = "ops" # dingpush.toml:1' in lines
    assert 'secret = "****" # dingpush.toml:5 via ${OPS_SECRET}' in lines
    assert 'keyword = "告警" # dingpush.toml:6' in lines
    assert 'rate = "20/60s" # default (DingTalk\'s limit)' in lines
    assert 'kind = "robot" # default (a table with a webhook is a robot)' in lines
    assert 'members = ["ops", "ops2"] # dingpush.toml:11' in lines
    assert 'robot_code = "dingcorpkey" # default (the app\'s AppKey)' in lines
    assert 'app_secret = "corp…6789" # dingpush.toml:27 via ${CORP_SECRET}' in lines
    assert 'api_token = "****" # dingpush.toml:31' in lines
    assert any(
        line.startswith("# not usable now: dingpush.toml:23: targets.later.webhook: refers to")
        for line in lines
    )
    no_secrets(result.output)


def test_config_show_json(run: Runner, configured: Robot) -> None:
    result = run("config", "show", "--json")
    data = json.loads(result.stdout)
    assert data["default"] == "ops"
    assert data["targets"]["ops"]["secret"] == {
        "value": "****",
        "origin": "dingpush.toml:5 via ${OPS_SECRET}",
    }
    assert data["apps"]["corp"]["app_secret"]["value"] == "corp…6789"
    assert list(data["unresolved"]) == ["targets.later"]
    no_secrets(result.output)


def test_config_show_environment(run: Runner, env_robot: Robot) -> None:
    result = run("config", "show")
    assert result.exit_code == 0
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "# configuration file: none found; using the environment" in lines
    assert 'secret = "****" # $DINGPUSH_SECRET' in lines
    no_secrets(result.output)


def test_config_show_names_problems(run: Runner, home: pathlib.Path) -> None:
    (home / "dingpush.toml").write_text('[targets.ops]\nwebhook = "x/y"\n')
    result = run("config", "show")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: dingpush.toml:2: targets.ops.webhook: ")


def test_check_without_posting(dingpush: Invoke, configured: Robot) -> None:
    result = dingpush("check", "ops")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ops (robot): " in out
    statuses = {line.split()[1]: line.split()[0] for line in out.splitlines()[1:-1]}
    assert statuses["reachable"] == "ok", out
    assert statuses["clock"] in ("ok", "warn"), out  # the server's Date has 1 s resolution
    assert "'告警' is appended to messages that lack it" in out
    for check in ("token accepted", "secret matches", "keyword required", "IP allow-list"):
        assert f"?     {check}" in out
    assert "run `dingpush check ops --send-test`" in out
    assert configured.server.emulator.requests() == []  # nothing was posted
    no_secrets(result.output)


def test_check_send_test(run: Runner, configured: Robot) -> None:
    configured.server.emulator.update_robot("ops", keywords=("告警",))
    result = run("check", "--send-test", "--json")  # the default target
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["findings"][-1]["check"] == "test message"
    (message,) = configured.payloads()
    assert str(message["text"]["content"]).endswith("告警")  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "check", "code"),
    [
        ({"secret": "SEC-other"}, "secret matches", 3),
        ({"token": "other-token"}, "token accepted", 3),
        ({"ip_allowlist": ("10.0.0.1",)}, "IP allow-list", 3),
        ({"keywords": ("deploy",)}, "keyword required", 3),
    ],
)
def test_check_send_test_diagnoses(
    run: Runner, configured: Robot, change: dict[str, object], check: str, code: int
) -> None:
    configured.server.emulator.update_robot("ops", **change)
    result = run("check", "ops", "--send-test")
    assert result.exit_code == code
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert len(failed) == 1 and check in failed[0]
    # The fix in command-line terms: the file line of the setting, not keyword='…'.
    assert "keyword='" not in result.stdout and "secret='" not in result.stdout
    if check == "secret matches":
        assert 'set secret = "SEC…" at dingpush.toml:' in result.stdout
    no_secrets(result.output)


def test_check_a_pool_member_by_member(run: Runner, configured: Robot) -> None:
    result = run("check", "pair", "--json")
    checks = [f["check"] for f in json.loads(result.stdout)["findings"]]
    assert "ops: reachable" in checks and "ops2: reachable" in checks


def test_check_an_unreachable_host(run: Runner, home: pathlib.Path) -> None:
    result = run("check", f"http://127.0.0.1:9/robot/send?access_token={TOKEN}")
    assert result.exit_code == 6
    assert "FAIL  reachable" in result.stdout
    no_secrets(result.output)


def test_check_form_warnings(run: Runner, home: pathlib.Path) -> None:
    (home / "dingpush.toml").write_text(
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?access_token=short"\n'
        'secret = "SECshort"\n'
    )
    from dingpush.cli._check import robot_form
    from dingpush.config import RobotTarget, load_config

    target = load_config().targets["ops"]
    assert isinstance(target, RobotTarget)
    findings = {f.check: f for f in robot_form(target)}
    assert findings["token form"].status == "warn"
    assert "64 hexadecimal characters; this one has 5" in findings["token form"].detail
    assert findings["signing"].status == "warn"
    assert "8 characters where DingTalk's have 67" in findings["signing"].detail


def test_completion_scripts(run: Runner) -> None:
    for shell, marker in (
        ("bash", "_dingpush_completion"),
        ("zsh", "#compdef dingpush"),
        ("fish", "complete --no-files --command dingpush"),
    ):
        result = run("completion", shell)
        assert result.exit_code == 0
        assert marker in result.stdout and "_DINGPUSH_COMPLETE" in result.stdout


def test_completion_of_target_names(run: Runner, configured: Robot) -> None:
    result = run(
        env={
            "_DINGPUSH_COMPLETE": "bash_complete",
            "COMP_WORDS": "dingpush send --to o",
            "COMP_CWORD": "3",
        },
    )
    assert result.stdout.split() == ["plain,ops", "plain,ops2"]
    result = run(
        env={
            "_DINGPUSH_COMPLETE": "zsh_complete",
            "COMP_WORDS": "dingpush check ",
            "COMP_CWORD": "2",
        },
    )
    assert "ops\nrobot: operations group" in result.stdout and "app\\:corp/" in result.stdout
    no_secrets(result.output)
