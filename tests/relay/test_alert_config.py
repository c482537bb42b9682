"""[routes.NAME], [templates.NAME] and [people.NAME] in the relay's configuration: read by the one
settings reader, every problem at once with file, line and fix; templates compiled at load."""

from __future__ import annotations

import logging
import pathlib

import pytest

from dingpush import ConfigError
from dingpush.alerts import MemoryRepeatLog
from dingpush.relay._config import load_relay

WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123"
TARGETS = f"""
[targets.ops]
webhook = "{WEBHOOK}"

[targets.oncall]
webhook = "{WEBHOOK}9"
"""


def _write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "dingpush.toml"
    path.write_text(TARGETS + text, encoding="utf-8")
    return str(path)


def test_routes_templates_and_people_are_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_ALERT_TOKEN", "route-token-from-the-environment")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "db.md.j2").write_text("### {{ headline }}\n", encoding="utf-8")
    path = _write(
        tmp_path,
        """
[people.alice]
user_id = "manager4220"
mobile = "13800000000"

[templates.db]
file = "templates/db.md.j2"

[templates.short]
source = '''### {{ headline }}'''

[routes.ops]
targets = ["ops"]
token = "${OPS_ALERT_TOKEN}"
timezone = "Asia/Shanghai"

[[routes.ops.routes]]
name = "critical"
match = ['severity="critical"', 'team=~"db|infra"']
targets = ["oncall"]
template = "db"
mention = ["alice"]
continue = true
repeat_window = "4h"
""",
    )
    loaded = load_relay(path)
    assert loaded is not None
    relay, _ = loaded
    alerts = relay.alerts
    assert alerts is not None
    root = alerts.routes["ops"]
    (child,) = root.routes
    assert child.name == "critical" and child.continue_ is True
    assert child.repeat_window == 4 * 3600.0
    assert [str(m) for m in child.matchers] == ['severity="critical"', 'team=~"db|infra"']
    assert alerts.tokens == {"ops": "route-token-from-the-environment"}
    assert "db" in alerts.templates and "short" in alerts.templates
    assert alerts.people.get("alice") is not None
    assert isinstance(alerts.repeats, MemoryRepeatLog)


def test_without_routes_the_relay_has_no_receivers(tmp_path: pathlib.Path) -> None:
    loaded = load_relay(_write(tmp_path, ""))
    assert loaded is not None and loaded[0].alerts is None


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ('[routes.ops]\ntargets = ["nope"]', "routes.ops.targets", "no target named 'nope'"),
        ('[routes.ops]\ntargets = ["ops"]\ntemplat = "x"', "routes.ops.templat", "template"),
        ('[routes.ops]\ntargets = ["ops"]\nrepeat_window = "soon"', "routes.ops.repeat_window", ""),
        (
            '[routes.ops]\ntargets = ["ops"]\n[[routes.ops.routes]]\nmatch = ["severity"]',
            "routes.ops.routes[0]",
            "severity",
        ),
        ('[routes.ops]\ntargets = ["ops"]\ntemplate = "nope"', "routes.ops.template", "nope"),
        ('[routes.ops]\ntargets = ["ops"]\nmention = ["bob"]', "routes.ops.mention", "bob"),
        (
            '[routes.ops]\ntargets = ["ops"]\n[people.bob]\nmobile = "12"',
            "people.bob",
            "not a mobile",
        ),
        ('[templates.t]\nsource = "x"', "templates", "there are none"),
        (
            '[routes.ops]\ntargets = ["ops"]\n[[routes.ops.routes]]\ntoken = "abc"',
            "routes.ops.routes[0].token",
            "top route",
        ),
    ],
)
def test_a_bad_alert_table_names_the_key_and_the_fix(
    tmp_path: pathlib.Path, table: str, key: str, message: str
) -> None:
    path = _write(tmp_path, table + "\n")
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    text = str(caught.value)
    assert f": {key}" in text, text
    assert message in text
    assert caught.value.exit_code == 3


def test_every_broken_template_is_reported_with_its_line_at_once(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path,
        """
[routes.ops]
targets = ["ops"]
template = "one"

[templates.one]
source = '''### {{ .Labels.x }}'''

[templates.two]
source = '''{% for a in alerts %}'''

[templates.fine]
source = '''ok'''
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_relay(path)
    text = str(caught.value)
    assert "templates.one" in text and "templates.two" in text, text
    assert "Go template" in text  # the fix
    assert "dingpush.toml:" in text


def test_a_mention_towards_an_app_target_is_said_at_load(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dingpush.toml"
    path.write_text(
        f"""
[apps.corp]
app_key = "dingappkey0123456789"
app_secret = "app-secret-0123456789abcdef0123456789"

[targets.ops]
webhook = "{WEBHOOK}"

[targets.room]
kind = "app-group"
app = "corp"
open_conversation_id = "cid0123456789=="
robot_code = "dingrobot0123"

[people.alice]
user_id = "manager4220"

[routes.ops]
targets = ["ops", "room"]
mention = ["alice"]
""",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="dingpush.relay"):
        loaded = load_relay(str(path))
    assert loaded is not None and loaded[0].alerts is not None
    assert any("'room' is a app-group target" in r.getMessage() for r in caplog.records)
