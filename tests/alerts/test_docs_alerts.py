"""The configuration blocks of docs/alerts.md make valid alert settings; its YAML converts.

Until the relay's settings reader reads ``[routes]``, ``[templates]`` and ``[people]``, this test
maps the TOML tables onto the dataclasses field by field (tomllib reads the TOML).
"""

from __future__ import annotations

import tomllib
import typing

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
KINDS = ("alerts-config", "pwd-config")


def route(table: dict[str, typing.Any]) -> Route:
    fields = dict(table)
    if "continue" in fields:
        fields["continue_"] = fields.pop("continue")
    if "repeat_window" in fields:
        fields["repeat_window"] = parse_duration(fields["repeat_window"])
    fields["routes"] = [route(child) for child in fields.get("routes", [])]
    return Route(**fields)


def test_the_configuration_blocks_make_valid_settings() -> None:
    blocks = [b for b in marked_blocks(GUIDE, KINDS) if b.kind == "alerts-config"]
    assert len(blocks) == 2
    data: dict[str, typing.Any] = {}
    for block in blocks:
        for section, tables in tomllib.loads(block.body).items():
            data.setdefault(section, {}).update(tables)
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
