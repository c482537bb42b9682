"""dingpush migrate pwd: prometheus-webhook-dingtalk's YAML becomes dingpush TOML."""

from __future__ import annotations

import os
import pathlib
import stat
import textwrap
import tomllib

import pytest

from dingpush import ConfigError
from dingpush.alerts import AlertSettings, Route, convert_pwd_config
from dingpush.cli import main
from dingpush.config import RobotTarget, load_config

TOKEN = "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f2b4d6f8a0c2e4a6c8e0a2c4e6a8c0e2a"
SECRET = "SEC000000000000000000000"

# The example configuration prometheus-webhook-dingtalk ships (config.example.yml), with real-
# looking tokens and mobiles.
PWD_CONFIG = textwrap.dedent(
    f"""\
    ## Request timeout
    timeout: 5s

    targets:
      webhook1:
        url: https://oapi.dingtalk.com/robot/send?access_token={TOKEN}
        # secret for signature
        secret: {SECRET}
      webhook2:
        url: https://oapi.dingtalk.com/robot/send?access_token=2{TOKEN[1:]}
      webhook_legacy:
        url: https://oapi.dingtalk.com/robot/send?access_token=3{TOKEN[1:]}
        message:
          title: '{{{{ template "legacy.title" . }}}}'
          text: '{{{{ template "legacy.content" . }}}}'
      webhook_mention_all:
        url: https://oapi.dingtalk.com/robot/send?access_token=4{TOKEN[1:]}
        mention:
          all: true
      webhook_mention_users:
        url: https://oapi.dingtalk.com/robot/send?access_token=5{TOKEN[1:]}
        mention:
          mobiles: ['15600008827', '+852-98765432']
      custom:
        url: https://oapi.dingtalk.com/robot/send?access_token=6{TOKEN[1:]}
        message:
          title: '{{{{ .CommonLabels.alertname }}}}'
          text: |
            {{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}{{{{ end }}}}
    """
)


def test_targets_and_routes_with_secrets_in_the_environment() -> None:
    migration = convert_pwd_config(PWD_CONFIG)
    assert TOKEN not in migration.toml and SECRET not in migration.toml
    data = tomllib.loads(migration.toml)
    assert data["targets"]["webhook1"] == {
        "kind": "robot",
        "webhook": "https://oapi.dingtalk.com/robot/send?access_token=${WEBHOOK1_TOKEN}",
        "secret": "${WEBHOOK1_SECRET}",
    }
    assert migration.env["WEBHOOK1_TOKEN"] == TOKEN
    assert migration.env["WEBHOOK1_SECRET"] == SECRET
    routes = data["routes"]
    assert set(routes) == set(data["targets"])  # one route per target, same name
    assert routes["webhook2"] == {"targets": ["webhook2"], "template": "alertmanager"}
    assert routes["webhook_mention_all"]["mention_all"] is True
    assert routes["webhook_mention_users"]["mention"] == ["15600008827", "+852-98765432"]


def test_the_output_is_a_valid_configuration() -> None:
    migration = convert_pwd_config(PWD_CONFIG)
    data = tomllib.loads(migration.toml)
    # The targets load with dingpush's configuration reader, the variables set...
    tables = migration.toml.split("\n\n")
    targets_only = "\n\n".join(t for t in tables if t.startswith("[targets."))
    path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"migrated-{os.getpid()}.toml"
    path.write_text(targets_only, encoding="utf-8")
    try:
        config = load_config(path, env=dict(migration.env))
    finally:
        path.unlink()
    assert sorted(config.targets) == sorted(data["targets"])
    webhook1 = config.targets["webhook1"]
    assert isinstance(webhook1, RobotTarget)
    assert (webhook1.webhook.token, webhook1.webhook.secret) == (TOKEN, SECRET)
    # ...and the routes make alert settings whose references all resolve.
    settings = AlertSettings(
        routes={name: Route(**table) for name, table in data["routes"].items()}
    )
    assert settings.check(dict.fromkeys(data["targets"], "robot")) == []


def test_what_cannot_be_converted_is_said() -> None:
    migration = convert_pwd_config(PWD_CONFIG)
    notes = "\n".join(migration.notes)
    assert "timeout: not converted" in notes
    assert "targets.webhook_legacy.message: the legacy layout becomes" in notes
    assert "targets.custom.message.title and text: a custom Go template" in notes
    assert migration.replaced_templates
    assert "webhook1" not in notes  # the builtin default needs no note


def test_template_files_cannot_be_converted() -> None:
    text = "templates:\n  - contrib/templates/legacy/template.tmpl\n" + PWD_CONFIG
    migration = convert_pwd_config(text)
    assert "contrib/templates/legacy/template.tmpl are Go templates" in migration.notes[1]
    assert "targets.webhook_legacy.message.title and text: a custom Go template" in "\n".join(
        migration.notes
    )


def test_odd_mobiles_and_unknown_keys_are_noted() -> None:
    migration = convert_pwd_config(
        "targets:\n  t:\n    url: https://example.com/hook\n    extra: 1\n"
        "    mention:\n      mobiles: ['156xxxx8827']\n"
    )
    assert migration.env == {"T_WEBHOOK": "https://example.com/hook"}  # no token: the whole URL
    assert "t.extra: not a prometheus-webhook-dingtalk setting" in migration.notes[0]
    assert "156xxxx8827 is not a mobile number" in migration.notes[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: [", "config.yml:1: not valid YAML"),
        ("- a\n- b\n", "expected a mapping with targets"),
        ("timeout: 5s\n", "no targets"),
        ("targets:\n  t: {}\n", "targets.t.url: the robot's webhook URL is missing"),
        ("targets:\n  9t:\n    url: x\n", "not a valid target name"),
    ],
)
def test_bad_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        convert_pwd_config(text)


def test_the_command_prints_toml_and_never_a_secret(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "config.yml"
    source.write_text(PWD_CONFIG, encoding="utf-8")
    assert main(["migrate", "pwd", str(source)]) == 0
    out, err = capsys.readouterr()
    assert tomllib.loads(out)["routes"]["webhook1"]["targets"] == ["webhook1"]
    assert TOKEN[1:] not in out + err and SECRET not in out + err
    assert "set these variables" in err and "WEBHOOK1_SECRET" in err
    assert "note: targets.custom.message.title and text" in err
    assert '{% import "dingpush/macros" as m %}' in err  # the builtin that replaces it


def test_the_command_writes_files(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "config.yml"
    source.write_text(PWD_CONFIG, encoding="utf-8")
    output, env_file = tmp_path / "dingpush.toml", tmp_path / "relay.env"
    argv = ["migrate", "pwd", str(source), "-o", str(output), "--env-file", str(env_file), "-q"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "" and "macros" not in err
    assert "[targets.webhook1]" in output.read_text(encoding="utf-8")
    assert f"WEBHOOK1_SECRET={SECRET}\n" in env_file.read_text(encoding="utf-8")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert main(argv) == 3  # never overwrites
    assert "exists already" in capsys.readouterr().err
