"""The relay's alert receivers: Alertmanager, Grafana, hooks and prometheus-webhook-dingtalk's
path, over HTTP, delivered to the emulator; idempotency, repeats, auth, 4xx/5xx and no leaks."""

from __future__ import annotations

import json
import pathlib
import typing

import pytest

from dingpush.alerts import AlertSettings, Person, Route, TemplateSpec, sample
from dingpush.relay import AlertReceivers, Relay, RobotTarget
from dingpush.relay.stores import MemoryStore, NewMessage, StoreUnavailable
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving

pytestmark = pytest.mark.anyio

ROBOT_TOKEN = "robot-token-abcdef0123456789"
ONCALL_TOKEN = "oncall-token-abcdef012345678"
API_TOKEN = "relay-api-token-0123456789"
ROUTE_TOKEN = "route-token-for-ops-0123456789"
JSON = {"Content-Type": "application/json"}
#: 2024-05-01T12:12:00Z: twelve minutes after the samples' alerts started firing.
NOW = 1714565520.0


def _settings(**route: typing.Any) -> AlertSettings:
    return AlertSettings(
        routes={
            "ops": Route(
                targets=["ops"],
                routes=[
                    Route(
                        name="critical",
                        match=['severity="critical"'],
                        targets=["oncall"],
                        mention=["alice"],
                        **route,
                    )
                ],
            ),
            "hooks": Route(targets=["ops"], template="gitlab"),
        },
        templates={
            "gitlab": TemplateSpec(
                source="### Pipeline {{ body.object_attributes.status }} on "
                "{{ body.project.name }}\n{{ link('Open', body.object_attributes.url) }}"
            )
        },
        people={"alice": Person(user_id="manager4220")},
    )


def _relay(
    emulator: EmulatorServer,
    clock: FakeClock,
    *,
    store: MemoryStore | None = None,
    tokens: dict[str, str] | None = None,
    settings: AlertSettings | None = None,
    **relay_settings: typing.Any,
) -> Relay:
    emulator.add_robot("ops", ROBOT_TOKEN)
    emulator.add_robot("oncall", ONCALL_TOKEN)
    targets = [
        RobotTarget("ops", emulator.webhook_url("ops")),
        RobotTarget("oncall", emulator.webhook_url("oncall")),
    ]
    receivers = AlertReceivers(settings or _settings(), tokens=tokens)
    return Relay(
        targets,
        store=store if store is not None else MemoryStore(clock=clock),
        settings=fast_settings(**relay_settings),
        clock=clock,
        alerts=receivers,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


async def _delivered(emulator: EmulatorServer, robot: str, count: int) -> list[typing.Any]:
    def enough() -> bool:
        return len(emulator.emulator.messages(robot=robot)) >= count

    await eventually(enough, what=f"{count} message(s) at {robot}")
    return list(emulator.emulator.messages(robot=robot))


async def test_alertmanager_firing_then_resolved_reach_the_group_rendered(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post("/alertmanager/ops", json=firing)
        assert reply.status_code == 200, reply.text
        (item,) = reply.json()["messages"]
        assert item["target"] == "oncall" and item["route"] == "ops/critical"
        assert item["duplicate"] is False
        (sent,) = await _delivered(dingtalk_emulator, "oncall", 1)
        assert sent.msgtype == "markdown"
        assert sent.msg_uuid == item["id"]
        text = sent.payload["markdown"]["text"]
        assert "HighCPU" in text and "@manager4220" in text
        assert sent.at.user_ids == ("manager4220",)
        assert "FIRING" in sent.payload["markdown"]["title"]

        _, resolved = sample("alertmanager-resolved")
        reply = await http.post("/alertmanager/ops", json=resolved)
        assert reply.status_code == 200, reply.text
        sent = (await _delivered(dingtalk_emulator, "oncall", 2))[1]
        assert "RESOLVED" in sent.payload["markdown"]["title"]


async def test_a_resent_notification_is_not_a_second_message(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        first = (await http.post("/alertmanager/ops", json=firing)).json()["messages"][0]
        clock.advance(30)
        again = (await http.post("/alertmanager/ops", json=firing)).json()["messages"][0]
        assert again == {**first, "duplicate": True}
        await _delivered(dingtalk_emulator, "oncall", 1)
        listed = (await http.get("/v1/messages")).json()["items"]
        assert len(listed) == 1


async def test_a_repeat_within_the_window_is_suppressed_and_a_resolution_passes(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = _relay(dingtalk_emulator, clock, settings=_settings(repeat_window=4 * 3600.0))
    async with serving(relay) as http:
        _, firing = sample("alertmanager-firing")
        assert len((await http.post("/alertmanager/ops", json=firing)).json()["messages"]) == 1
        clock.advance(3600)  # Alertmanager's repeat_interval: past the dedup window
        repeat = (await http.post("/alertmanager/ops", json=firing)).json()
        assert repeat["messages"] == []
        assert repeat["suppressed"] == [{"route": "ops/critical", "alerts": 1}]
        _, resolved = sample("alertmanager-resolved")
        passed = (await http.post("/alertmanager/ops", json=resolved)).json()
        assert len(passed["messages"]) == 1
        clock.advance(4 * 3600)
        later = (await http.post("/alertmanager/ops", json=firing)).json()
        assert len(later["messages"]) == 1
        await _delivered(dingtalk_emulator, "oncall", 3)


async def test_without_a_repeat_window_a_reminder_later_is_sent_again(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        await http.post("/alertmanager/ops", json=firing)
        clock.advance(4 * 3600)
        reminder = (await http.post("/alertmanager/ops", json=firing)).json()["messages"]
        assert reminder[0]["duplicate"] is False
        await _delivered(dingtalk_emulator, "oncall", 2)


@pytest.mark.parametrize(
    ("path", "name", "robot", "expected"),
    [
        ("/grafana/ops", "grafana-firing", "ops", "DiskFull"),
        ("/hooks/hooks", "generic-gitlab", "ops", "Pipeline failed on app"),
        ("/dingtalk/ops/send", "alertmanager-firing", "oncall", "HighCPU"),
    ],
)
async def test_each_receiver_renders_and_routes(
    dingtalk_emulator: EmulatorServer,
    clock: FakeClock,
    path: str,
    name: str,
    robot: str,
    expected: str,
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, body = sample(name)
        reply = await http.post(path, json=body)
        assert reply.status_code == 200, reply.text
        (sent,) = await _delivered(dingtalk_emulator, robot, 1)
        assert expected in sent.payload["markdown"]["text"]


@pytest.mark.parametrize(
    ("path", "body", "status", "pointer"),
    [
        ("/alertmanager/ops", b"{not json", 400, ""),
        ("/alertmanager/ops", b'{"version": "4", "status": "firing"}', 422, "/alerts"),
        ("/alertmanager/ops", b'{"version": "4", "status": "burning", "alerts": []}', 422, None),
        ("/grafana/ops", b"[1, 2]", 422, ""),
        ("/hooks/hooks", b'"just a string"', 422, ""),
    ],
)
async def test_a_malformed_payload_is_refused_with_a_pointer_and_not_stored(
    dingtalk_emulator: EmulatorServer,
    clock: FakeClock,
    path: str,
    body: bytes,
    status: int,
    pointer: str | None,
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        reply = await http.post(path, content=body, headers=JSON)
        assert reply.status_code == status, reply.text
        answer = reply.json()
        assert "pointer" in answer
        if pointer is not None:
            assert answer["pointer"] == pointer
        assert (await http.get("/v1/messages")).json()["items"] == []


async def test_an_unknown_route_table_is_a_404_naming_the_known_ones(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post("/alertmanager/nope", json=firing)
        assert reply.status_code == 404
        assert "hooks, ops" in reply.json()["detail"]


class _BrokenStore(MemoryStore):
    async def enqueue_many(self, items: typing.Sequence[NewMessage]) -> typing.Any:
        raise StoreUnavailable("disk full (test)")


async def test_an_outbox_that_cannot_commit_answers_503_so_the_sender_retries(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = _relay(dingtalk_emulator, clock, store=_BrokenStore(clock=clock))
    async with serving(relay) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post("/alertmanager/ops", json=firing)
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "1"
        # Nothing was remembered as sent: the retry is not taken for a repeat.
        assert relay.alerts is not None
        assert len(typing.cast(typing.Any, relay.alerts.repeats)) == 0


async def test_auth_takes_an_api_token_or_the_route_token_in_the_path_or_a_header(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = _relay(dingtalk_emulator, clock, tokens={"ops": ROUTE_TOKEN}, api_tokens=(API_TOKEN,))
    async with serving(relay) as http:
        _, firing = sample("alertmanager-firing")
        refused = await http.post("/alertmanager/ops", json=firing)
        assert refused.status_code == 401
        wrong = await http.post("/alertmanager/ops/not-the-token-at-all", json=firing)
        assert wrong.status_code == 401
        other_table = await http.post(f"/hooks/hooks/{ROUTE_TOKEN}", json={"a": 1})
        assert other_table.status_code == 401
        for attempt in (
            http.post(f"/alertmanager/ops/{ROUTE_TOKEN}", json=firing),
            http.post("/alertmanager/ops", json=firing, headers={"X-Dingpush-Token": ROUTE_TOKEN}),
            http.post(
                "/alertmanager/ops", json=firing, headers={"Authorization": f"Bearer {API_TOKEN}"}
            ),
            http.post(
                "/dingtalk/ops/send",
                json=firing,
                headers={"Authorization": f"Bearer {ROUTE_TOKEN}"},
            ),
        ):
            reply = await attempt
            assert reply.status_code == 200, reply.text
            assert ROUTE_TOKEN not in reply.text


async def test_without_tokens_a_cross_site_post_is_refused(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post(
            "/alertmanager/ops", json=firing, headers={"Origin": "https://evil.example"}
        )
        assert reply.status_code == 403
        form = await http.post(
            "/alertmanager/ops",
            content=json.dumps(firing),
            headers={"Content-Type": "text/plain"},
        )
        assert form.status_code == 415


async def test_a_label_value_cannot_inject_a_link_or_a_mention(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, firing = sample("alertmanager-firing")
        alert = firing["alerts"][0]
        alert["labels"]["instance"] = "[click](https://evil.example) @13800000000"
        alert["annotations"]["summary"] = "**bold** [x](javascript:alert(1)) @all"
        reply = await http.post("/alertmanager/ops", json=firing)
        assert reply.status_code == 200, reply.text
        (sent,) = await _delivered(dingtalk_emulator, "oncall", 1)
        text = sent.payload["markdown"]["text"]
        assert "](https://evil.example)" not in text
        assert "](javascript:" not in text
        assert "@13800000000" not in text and "@all" not in text
        assert sent.at.mobiles == () and not sent.at.all


async def test_a_big_group_is_rendered_off_the_loop_and_sent_whole(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, storm = sample("alertmanager-storm")
        reply = await http.post("/alertmanager/ops", json=storm)
        assert reply.status_code == 200, reply.text
        (item,) = reply.json()["messages"]
        assert item["alerts"] == 50
        sent = await _delivered(dingtalk_emulator, "oncall", 1)
        shown = "".join(m.payload["markdown"]["text"] for m in sent)
        for index in range(1, 51):
            assert f"web-{index:02d}" in shown


async def test_a_failing_template_still_delivers_and_is_counted(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    settings = AlertSettings(
        routes={"ops": Route(targets=["ops"], template="typo")},
        templates={"typo": TemplateSpec(source="{{ nothing_here.at_all }}")},
    )
    async with serving(_relay(dingtalk_emulator, clock, settings=settings)) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post("/alertmanager/ops", json=firing)
        assert reply.status_code == 200
        assert "typo" in reply.json()["render_failures"][0]
        (sent,) = await _delivered(dingtalk_emulator, "ops", 1)
        assert "template 'typo'" in sent.payload["markdown"]["text"].splitlines()[-1]
        metrics = (await http.get("/metrics")).text
        assert 'dingpush_relay_alert_render_failures_total{target="ops"} 1' in metrics
        assert 'dingpush_relay_alerts_total{target="ops"} 1' in metrics


def test_route_tokens_for_unknown_tables_are_refused() -> None:
    from dingpush import ConfigError

    with pytest.raises(ConfigError, match="do not exist"):
        AlertReceivers(_settings(), tokens={"nope": ROUTE_TOKEN})


async def test_responses_are_json_and_name_the_route(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        _, body = sample("generic-gitlab")
        reply = await http.post("/hooks/hooks", json=body)
        assert reply.headers["content-type"].startswith("application/json")
        answer = reply.json()
        assert answer["status"] == "queued"
        assert answer["messages"][0]["route"] == "hooks"
        assert answer["messages"][0]["template"] == "gitlab"


def test_check_separates_errors_from_mention_warnings() -> None:
    receivers = AlertReceivers(_settings())
    errors, warnings = receivers.check({"ops": "robot", "oncall": "app-group"})
    assert errors == []
    assert len(warnings) == 1 and "cannot @-mention" in warnings[0]
    errors, _ = receivers.check({"ops": "robot"})
    assert any("no target named 'oncall'" in e for e in errors)


class _CountingLog:
    """A repeat log of our own (as a shared one would be): seen and remembered are recorded."""

    def __init__(self) -> None:
        self.remembered: list[tuple[str, float, float]] = []

    def seen(self, key: str, now: float) -> bool:
        return any(k == key and now < at + window for k, at, window in self.remembered)

    def remember(self, key: str, now: float, window: float) -> None:
        self.remembered.append((key, now, window))


async def test_another_repeat_log_plugs_in_behind_the_protocol(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    log = _CountingLog()
    dingtalk_emulator.add_robot("ops", ROBOT_TOKEN)
    dingtalk_emulator.add_robot("oncall", ONCALL_TOKEN)
    relay = Relay(
        [
            RobotTarget("ops", dingtalk_emulator.webhook_url("ops")),
            RobotTarget("oncall", dingtalk_emulator.webhook_url("oncall")),
        ],
        store=MemoryStore(clock=clock),
        settings=fast_settings(),
        clock=clock,
        alerts=AlertReceivers(_settings(repeat_window=3600.0), repeats=log),
    )
    async with serving(relay) as http:
        _, firing = sample("alertmanager-firing")
        assert len((await http.post("/alertmanager/ops", json=firing)).json()["messages"]) == 1
        assert [window for _, _, window in log.remembered] == [3600.0]
        clock.advance(700)  # past the dedup bucket, within the window: held back by the log
        held = (await http.post("/alertmanager/ops", json=firing)).json()
        assert held["messages"] == [] and len(held["suppressed"]) == 1
        clock.advance(3600)
        again = (await http.post("/alertmanager/ops", json=firing)).json()
        assert len(again["messages"]) == 1


async def test_a_migrated_pwd_configuration_serves_its_path_with_only_the_host_changed(
    dingtalk_emulator: EmulatorServer,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dingpush.alerts import convert_pwd_config
    from dingpush.relay._config import load_relay

    migration = convert_pwd_config(
        "targets:\n"
        "  webhook1:\n"
        "    url: https://oapi.dingtalk.com/robot/send?access_token=pwdtoken0123456789abcdef\n"
        "    secret: SEC0123456789abcdef0123456789abcdef\n"
        "    mention:\n"
        "      mobiles: ['15600008827']\n"
    )
    dingtalk_emulator.add_robot(
        "webhook1", "pwdtoken0123456789abcdef", secret="SEC0123456789abcdef0123456789abcdef"
    )
    base = dingtalk_emulator.webhook_url("webhook1").partition("?")[0]
    toml = migration.toml.replace("https://oapi.dingtalk.com/robot/send", base)
    toml += '\n[relay]\nallowed_hosts = ["relay"]\nstore = "memory"\n'
    (tmp_path / "dingpush.toml").write_text(toml, encoding="utf-8")
    for name, value in migration.env.items():
        monkeypatch.setenv(name, value)
    loaded = load_relay(str(tmp_path / "dingpush.toml"))
    assert loaded is not None
    async with serving(loaded[0]) as http:
        _, firing = sample("alertmanager-firing")
        reply = await http.post("/dingtalk/webhook1/send", json=firing)
        assert reply.status_code == 200, reply.text
        (sent,) = await _delivered(dingtalk_emulator, "webhook1", 1)
        assert "HighCPU" in sent.payload["markdown"]["text"]
        assert sent.at.mobiles == ("15600008827",)


async def test_the_receivers_are_described_in_openapi(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    async with serving(_relay(dingtalk_emulator, clock)) as http:
        spec = (await http.get("/openapi.json")).json()
        for path in (
            "/alertmanager/{route}",
            "/alertmanager/{route}/{token}",
            "/grafana/{route}",
            "/hooks/{route}",
            "/dingtalk/{route}/send",
        ):
            answers = spec["paths"][path]["post"]["responses"]
            assert {"200", "400", "422", "503"} <= set(answers), path
        assert spec["paths"]["/hooks/{route}/{token}"]["post"]["security"] == []


async def test_a_route_token_in_the_path_is_never_echoed(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = _relay(dingtalk_emulator, clock, tokens={"ops": ROUTE_TOKEN}, api_tokens=(API_TOKEN,))
    async with serving(relay) as http:
        for reply in (
            await http.get(f"/alertmanager/ops/{ROUTE_TOKEN}"),  # 405
            await http.post(f"/alertmanager/ops/{ROUTE_TOKEN}/more", json={}),  # 404
            await http.post(f"/alertmanager/ops/{ROUTE_TOKEN}", content=b"{", headers=JSON),
        ):
            assert reply.status_code in (400, 404, 405), reply.text
            assert ROUTE_TOKEN not in reply.text
