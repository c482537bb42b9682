"""``dingpush alert render`` (a body through a route, printed, nothing sent) and
``dingpush alert test`` (a sample through the running relay, delivered to the emulator)."""

from __future__ import annotations

import json
import pathlib
import time
import typing

from dingpush.alerts import AlertSettings, Person, Route, sample
from dingpush.relay import AlertReceivers, Relay, RelayServer, RelaySettings, RobotTarget
from dingpush.testing import EmulatorServer

from .conftest import Runner

CONFIG = """
[targets.ops]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=${OPS_TOKEN_NOT_SET_HERE}"

[people.alice]
user_id = "manager4220"

[routes.ops]
targets = ["ops"]
mention = ["alice"]
"""


def _config(home: pathlib.Path) -> str:
    path = home / "dingpush.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def test_render_prints_the_message_its_size_and_mentions(home: pathlib.Path, run: Runner) -> None:
    # The target's token is an unset variable: rendering sends nothing and does not need it.
    config = _config(home)
    _, body = sample("alertmanager-firing")
    (home / "alert.json").write_text(json.dumps(body), encoding="utf-8")
    result = run("--config", config, "alert", "render", "--route", "ops", "--payload", "alert.json")
    assert result.exit_code == 0, result.output
    assert "to ops (route ops, template alertmanager, 1 alert(s))" in result.stdout
    assert "bytes, mentions: @manager4220" in result.stdout
    assert "HighCPU" in result.stdout and "title: 🔥 [FIRING:1]" in result.stdout


def test_render_as_json_and_from_a_sample(home: pathlib.Path, run: Runner) -> None:
    config = _config(home)
    result = run(
        "--config",
        config,
        "alert",
        "render",
        "--route",
        "ops",
        "--sample",
        "grafana-firing",
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    (message,) = answer["messages"]
    assert message["template"] == "grafana"
    assert message["bytes"] == len(
        json.dumps(message["payload"], ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert message["mentions"]["user_ids"] == ["manager4220"]


def test_render_refuses_an_unknown_route_and_a_malformed_body(
    home: pathlib.Path, run: Runner
) -> None:
    config = _config(home)
    unknown = run(
        "--config", config, "alert", "render", "--route", "nope", "--sample", "generic-gitlab"
    )
    assert unknown.exit_code == 2 and "the route tables: ops" in unknown.output
    (home / "bad.json").write_text('{"version": "4"}', encoding="utf-8")
    bad = run("--config", config, "alert", "render", "--route", "ops", "--payload", "bad.json")
    assert bad.exit_code == 2 and "at /" in bad.output


def test_alert_test_sends_a_sample_through_the_running_relay(
    dingtalk_emulator: EmulatorServer, home: pathlib.Path, run: Runner
) -> None:
    dingtalk_emulator.add_robot("ops", "robot-token-alert-test-0123456789")
    settings = AlertSettings(
        routes={"ops": Route(targets=["ops"], mention=["alice"])},
        people={"alice": Person(user_id="manager4220")},
    )
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))],
        settings=RelaySettings(port=0, idle_poll=0.2),
        alerts=AlertReceivers(settings),
    )
    with RelayServer(relay) as server:
        for _ in range(2):  # each run is a new notification, never a duplicate
            result = run("alert", "test", "--route", "ops", "--relay", server.url)
            assert result.exit_code == 0, result.output
            assert "queued " in result.stdout and "for ops (route ops" in result.stdout

        def delivered() -> list[typing.Any]:
            return list(dingtalk_emulator.emulator.messages(robot="ops"))

        deadline = time.monotonic() + 30
        while len(delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        sent = delivered()
        assert len(sent) == 2
        assert sent[0].at.user_ids == ("manager4220",)
        missing = run("alert", "test", "--route", "nope", "--relay", server.url)
        assert missing.exit_code == 2 and "no route table named 'nope'" in missing.output


def test_alert_test_without_a_relay_is_a_transport_error(home: pathlib.Path, run: Runner) -> None:
    result = run("alert", "test", "--route", "ops", "--relay", "http://127.0.0.1:9")
    assert result.exit_code == 6
    assert "cannot reach the relay" in result.output


def test_render_stops_on_a_template_that_does_not_compile(home: pathlib.Path, run: Runner) -> None:
    path = home / "dingpush.toml"
    path.write_text(
        CONFIG + 'template = "broken"\n\n[templates.broken]\nsource = "{{ .Labels.x }}"\n',
        encoding="utf-8",
    )
    result = run(
        "--config", str(path), "alert", "render", "--route", "ops", "--sample", "grafana-firing"
    )
    assert result.exit_code == 3
    assert "templates.broken" in result.output and "Go template" in result.output
