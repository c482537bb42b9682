"""The relay's configuration: [relay] and [relay.targets.NAME], and start-up refusals."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from dingpush import ConfigError, Text
from dingpush.relay import AppTarget, RelaySettings
from dingpush.relay._config import load_relay
from dingpush.relay.stores import MemoryStore, SQLiteStore
from dingpush.testing import EmulatorServer

WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123"


def _write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "dingpush.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_full_relay_table_is_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_API_TOKEN", "a-long-api-token-from-the-env")
    path = _write(
        tmp_path,
        f"""
[targets.ops]
kind = "robot"
webhook = "{WEBHOOK}"
secret = "SEC-robot"
rate = "10/60s"

[relay]
host = "0.0.0.0"
port = 9000
api_tokens = ["${{RELAY_API_TOKEN}}"]
store = "data/outbox.sqlite"
coalesce_after = "2m"
max_body = "2MiB"
retry = {{ max_attempts = 5, base_delay = "2s" }}

[relay.targets.ops]
ingress_token = "ops-ingress-1"
ingress_secret = "SEC-ingress"
coalesce = false
""",
    )
    loaded = load_relay(path)
    assert loaded is not None
    relay, origin = loaded
    assert origin == path
    settings = relay.settings
    assert (settings.host, settings.port, settings.api_tokens) == (
        "0.0.0.0",
        9000,
        ("a-long-api-token-from-the-env",),
    )
    assert settings.coalesce_after == 120.0 and settings.max_body == 2 * 1024 * 1024
    assert settings.retry.max_attempts == 5 and settings.retry.base_delay == 2.0
    target = relay.targets["ops"]
    assert str(target.rate) == "10/60s"
    assert target.options.coalesce is False and relay.ingress["ops-ingress-1"] is target
    assert isinstance(relay.store, SQLiteStore)
    assert relay.store.path == tmp_path / "data" / "outbox.sqlite"  # beside the file
    assert "SEC-robot" not in repr(relay) + repr(target)


@pytest.mark.parametrize(
    ("relay_table", "key", "line", "message"),
    [
        ('[relay]\nbind = "x"', "relay.bind", 5, "unknown setting"),
        ("[relay]\nprot = 80", "relay.prot", 5, "did you mean 'port'?"),
        ('[relay]\nport = "80"', "relay.port", 5, "'80' is not a port number"),
        ('[relay]\napi_tokens = "abc"', "relay.api_tokens", 5, "must be a list of strings"),
        ('[relay]\napi_tokens = ["short"]', "relay.api_tokens", 5, "at least 16 characters"),
        ('[relay]\ncoalesce_after = "soon"', "relay.coalesce_after", 5, "is not a duration"),
        ('[relay]\nmax_body = "big"', "relay.max_body", 5, "is not a size"),
        # A string of 309+ digits reads as infinity: it stopped the dispatcher (coalesce_after)
        # or crashed the start (max_body, shutdown_deadline).
        (
            f'[relay]\ncoalesce_after = "{"9" * 400}"',
            "relay.coalesce_after",
            5,
            "is longer than 100 years",
        ),
        (
            f'[relay]\nshutdown_deadline = "{"9" * 400}"',
            "relay.shutdown_deadline",
            5,
            "longer than 100 years",
        ),
        (f'[relay]\nmax_body = "{"9" * 400}"', "relay.max_body", 5, "larger than 2**53 bytes"),
        ("[relay]\nretry = { max_attempts = 0 }", "relay.retry", 5, "max_attempts"),
        ("[relay.targets.ops]\ncolaesce = true", "relay.targets.ops.colaesce", 5, "coalesce"),
        ('[relay.targets.ops]\ningress_secret = "nosec"', "relay.targets.ops", 4, "SEC"),
        ('[relay.targets.ops]\nrate = "fast"', "relay.targets.ops.rate", 5, "is not a rate"),
        ("[relay.targets.dev]\ncoalesce = true", "relay.targets.dev", 4, "no [targets.dev]"),
        ('[relay]\nstore = "${NOT_SET_ANYWHERE}"', "relay.store", 5, "${NOT_SET_ANYWHERE}"),
    ],
)
def test_a_bad_relay_table_names_the_file_the_line_the_key_and_the_fix(
    tmp_path: pathlib.Path, relay_table: str, key: str, line: int, message: str
) -> None:
    path = _write(tmp_path, f'[targets.ops]\nwebhook = "{WEBHOOK}"\n\n{relay_table}\n')
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'dingpush.toml'}:{line}: {key}: ")
    assert message in text
    assert caught.value.exit_code == 3


def test_every_problem_is_reported_at_once(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        f'[targets.ops]\nwebhook = "{WEBHOOK}"\n[relay]\nport = "x"\nlease = "never"\n',
    )
    with pytest.raises(ConfigError, match="2 problems") as caught:
        load_relay(path)
    assert ":4: relay.port" in str(caught.value) and ":5: relay.lease" in str(caught.value)


def test_a_target_with_an_unset_variable_stops_start_up(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?access_token='
        '${OPS_TOKEN_NOT_SET}"\n',
    )
    with pytest.raises(ConfigError, match="OPS_TOKEN_NOT_SET"):
        load_relay(path)


def test_app_targets_share_one_client_per_app(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        """
[apps.corp]
app_key = "dingappkey0123456789"
app_secret = "app-secret-0123456789-abcdefghijklmnop"
token_cache = false

[targets.ops-group]
kind = "app-group"
app = "corp"
open_conversation_id = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="

[targets.managers]
kind = "work-notice"
app = "corp"
agent_id = 1234567890
users = ["manager4220"]

[relay]
store = "memory"

[relay.targets.managers]
rate = "5/1s"
coalesce = false
""",
    )
    loaded = load_relay(path)
    assert loaded is not None
    relay = loaded[0]
    group, notice = relay.targets["ops-group"], relay.targets["managers"]
    assert (group.kind, notice.kind) == ("app-group", "work-notice")
    assert isinstance(group, AppTarget) and isinstance(notice, AppTarget)
    assert group.app is notice.app
    assert notice.own_rate and not group.own_rate and not notice.options.coalesce
    assert "app-secret-0123456789" not in repr(relay.targets) + str(group.describe())


def test_memory_store_and_no_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, f'[targets.ops]\nwebhook = "{WEBHOOK}"\n[relay]\nstore = "memory"\n')
    loaded = load_relay(path)
    assert loaded is not None and isinstance(loaded[0].store, MemoryStore)
    monkeypatch.chdir(tmp_path / "..")
    assert load_relay(None) is None  # no file anywhere: the embedded default


def test_listening_beyond_loopback_needs_tokens() -> None:
    RelaySettings(host="127.0.0.1").check_exposure()
    RelaySettings(host="0.0.0.0", api_tokens=("x" * 16,)).check_exposure()
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 without API tokens"):
        RelaySettings(host="0.0.0.0").check_exposure()


def test_a_bad_file_stops_start_up_with_exit_status_3(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path, f'[targets.ops]\nwebhook = "{WEBHOOK}"\n[relay]\nhost = "0.0.0.0"\n')
    run = subprocess.run(
        [sys.executable, "-m", "dingpush.relay", "--config", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3
    assert "without API tokens" in run.stderr and "Set api_tokens" in run.stderr


@pytest.mark.parametrize(
    ("relay_table", "key", "message"),
    [
        (
            '[relay]\nretry = { retry_ambiguous = "true" }',
            "relay.retry.retry_ambiguous",
            "is the string 'true', not true or false. Fix: write retry_ambiguous = true, "
            "without quotes",
        ),
        (
            '[relay.targets.ops]\ncoalesce = "false"',
            "relay.targets.ops.coalesce",
            "is the string 'false', not true or false. Fix: write coalesce = false, without quotes",
        ),
        ("[relay]\nhost = 5", "relay.host", 'must be a string, not an integer. Fix: quote it: "…"'),
        (
            '[relay.targets.ops]\nconcurrency = "2"',
            "relay.targets.ops.concurrency",
            "is the string '2', not a number. Fix: write concurrency = 2, without quotes",
        ),
    ],
)
def test_a_string_is_never_taken_for_a_boolean_or_a_number(
    tmp_path: pathlib.Path, relay_table: str, key: str, message: str
) -> None:
    path = _write(tmp_path, f'[targets.ops]\nwebhook = "{WEBHOOK}"\n\n{relay_table}\n')
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    assert str(caught.value) == f"{path}:5: {key}: {message}"


def test_the_targets_and_relay_problems_come_together_in_line_order(
    tmp_path: pathlib.Path,
) -> None:
    path = _write(
        tmp_path,
        '[relay]\nport = "x"\n[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send"\n'
        '[relay.targets.ops]\nrate = "fast"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "the configuration has 3 problems:"
    assert [line.split(": ", 2)[1] for line in lines[1:]] == [
        "relay.port",
        "targets.ops.webhook",
        "relay.targets.ops.rate",
    ]


def test_values_from_variables_and_the_shared_grammar(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAY_PORT", "9001")
    monkeypatch.setenv("RELAY_COALESCE", "false")
    path = _write(
        tmp_path,
        f'[targets.ops]\nwebhook = "{WEBHOOK}"\n[relay]\nport = "${{RELAY_PORT}}"\n'
        'retention = "30d"\nmax_body = "512KiB"\nstore = "memory"\n'
        '[relay.targets.ops]\ncoalesce = "${RELAY_COALESCE}"\nrate = "5000/1m"\n',
    )
    loaded = load_relay(path)
    assert loaded is not None
    relay = loaded[0]
    assert (relay.settings.port, relay.settings.retention) == (9001, 30 * 86400.0)
    assert relay.settings.max_body == 512 * 1024
    target = relay.targets["ops"]
    assert target.options.coalesce is False and str(target.rate) == "5000/60s"


@pytest.mark.anyio
async def test_app_targets_send_as_the_apps_robot_as_the_cli_does(
    tmp_path: pathlib.Path, dingtalk_emulator: EmulatorServer
) -> None:
    # [apps.NAME] robot_code is the default of its app-group and app-users targets, in the
    # relay as in the CLI (dingpush.config.app_destination): one builder, one meaning.
    app = dingtalk_emulator.add_app(
        "corp", robot_code="corp-bot", users=("alice",), groups={"cidOps==": "Ops"}
    )
    path = _write(
        tmp_path,
        f"""
[apps.corp]
app_key = "{app.app_key}"
app_secret = "{app.app_secret}"
api_base = "{dingtalk_emulator.url}"
oapi_base = "{dingtalk_emulator.url}"
token_cache = false
robot_code = "corp-bot"

[targets.ops-group]
kind = "app-group"
app = "corp"
open_conversation_id = "cidOps=="

[targets.alice]
kind = "app-users"
app = "corp"
users = ["alice"]

[relay]
store = "memory"
""",
    )
    loaded = load_relay(path)
    assert loaded is not None
    relay = loaded[0]
    # Chat commands are answered through the same client (one token per app), not a second.
    alice = relay.targets["alice"]
    assert isinstance(alice, AppTarget)
    assert relay.chat is not None and relay.chat._app("corp") is alice.app
    try:
        for name in ("ops-group", "alice"):
            target = relay.targets[name]
            assert isinstance(target, AppTarget) and target.robot_code == "corp-bot"
            await target.send(Text(f"to {name}"), f"m-{name}")
    finally:
        for target in relay.targets.values():
            await target.aclose()
    sent = [m.payload["msgParam"] for m in dingtalk_emulator.emulator.messages()]
    assert len(sent) == 2
