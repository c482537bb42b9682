"""The configuration blocks of docs/alerts.md make valid alert settings — mapped field by field
and read by the relay's own settings reader —, Alertmanager's amtool accepts its Alertmanager
configuration, and its prometheus-webhook-dingtalk YAML converts.
"""

from __future__ import annotations

import pathlib
import subprocess
import tomllib
import typing

import pytest

from _docblocks import ROOT, marked_blocks
from dingpush import parse_duration
from dingpush.alerts import (
    AlertSettings,
    Person,
    Route,
    Templates,
    TemplateSpec,
    convert_pwd_config,
)

GUIDE = ROOT / "docs" / "alerts.md"
KINDS = ("alerts-config", "pwd-config", "alertmanager-config")


def route(table: dict[str, typing.Any]) -> Route:
    fields = dict(table)
    fields.pop("token", None)  # the relay's: beside the route, not in it
    if "continue" in fields:
        fields["continue_"] = fields.pop("continue")
    if "repeat_window" in fields:
        fields["repeat_window"] = parse_duration(fields["repeat_window"])
    fields["routes"] = [route(child) for child in fields.get("routes", [])]
    return Route(**fields)


def test_the_configuration_blocks_make_valid_settings() -> None:
    data = _config_data()
    settings = AlertSettings(
        routes={name: route(table) for name, table in data["routes"].items()},
        templates={name: TemplateSpec(**table) for name, table in data["templates"].items()},
        people={name: Person(**table) for name, table in data["people"].items()},
    )
    assert settings.check(dict.fromkeys(data["targets"], "robot")) == []
    db = settings.routes["ops"].routes[1]
    assert isinstance(db, Route) and db.repeat_window == 4 * 3600 and db.mention == ("alice",)
    inline = [spec for spec in settings.templates.values() if spec.source is not None]
    assert "short" in Templates(inline)  # the inline template compiles


def test_the_yaml_block_converts() -> None:
    (block,) = [b for b in marked_blocks(GUIDE, KINDS) if b.kind == "pwd-config"]
    migration = convert_pwd_config(block.body)
    routes = tomllib.loads(migration.toml)["routes"]
    assert set(routes) == {"webhook1", "webhook_mention_users", "webhook_legacy"}
    assert routes["webhook_mention_users"]["mention"] == ["15600008827", "18900008325"]
    assert migration.notes == (
        "targets.webhook_legacy.message: the legacy layout becomes dingpush's builtin "
        "alertmanager template (the labels that differ, the annotations, links)",
    )


def _config_blocks() -> list[str]:
    blocks = [b.body for b in marked_blocks(GUIDE, KINDS) if b.kind == "alerts-config"]
    assert len(blocks) == 3
    return blocks


def _config_data() -> dict[str, typing.Any]:
    data: dict[str, typing.Any] = {}
    for body in _config_blocks():
        for section, tables in tomllib.loads(body).items():
            data.setdefault(section, {}).update(tables)
    return data


def test_the_relay_reads_the_configuration_blocks(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dingpush.relay._config import load_relay

    for name in ("OPS_WEBHOOK", "ONCALL_WEBHOOK"):
        token = name.lower().replace("_webhook", "") + "0123456789abcdef0123"
        monkeypatch.setenv(name, f"https://oapi.dingtalk.com/robot/send?access_token={token}")
    monkeypatch.setenv("OPS_SECRET", "SEC" + "0" * 64)
    monkeypatch.setenv("GITLAB_HOOK_TOKEN", "gitlab-hook-token-0123456789")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "db.md.j2").write_text("### {{ headline }}\n", encoding="utf-8")
    path = tmp_path / "dingpush.toml"
    path.write_text("\n".join(_config_blocks()), encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    alerts = loaded[0].alerts
    assert alerts is not None
    assert sorted(alerts.routes) == ["gitlab", "ops"]
    assert alerts.tokens == {"gitlab": "gitlab-hook-token-0123456789"}
    assert {"db", "short", "pipeline"} <= set(alerts.templates.names)


def test_amtool_accepts_the_alertmanager_configuration(tmp_path: pathlib.Path) -> None:
    (block,) = [b for b in marked_blocks(GUIDE, KINDS) if b.kind == "alertmanager-config"]
    (tmp_path / "dingpush-token").write_text("route-token", encoding="utf-8")
    config = block.body.replace(
        "/etc/alertmanager/dingpush-token", str(tmp_path / "dingpush-token")
    )
    (tmp_path / "alertmanager.yml").write_text(config, encoding="utf-8")
    checked = subprocess.run(
        ["/usr/bin/amtool", "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
