"""The alert pipeline: each receiver's payloads render, route and mention as configured."""

from __future__ import annotations

import json
import typing

import pytest

from dingpush import ActionCard, ConfigError, Markdown, Splitter
from dingpush.alerts import (
    AlertSettings,
    MemoryRepeatLog,
    People,
    Person,
    Route,
    Templates,
    TemplateSpec,
    process_alerts,
    sample,
)
from dingpush.testing import FakeClock

PEOPLE = People(
    [
        Person(name="alice", user_id="alice01", mobile="13800000001"),
        Person(name="bob", mobile="13800000002"),
        Person(name="carol", user_id="carol03"),
    ]
)


def text_of(message: object) -> str:
    payload = typing.cast(typing.Any, message).to_payload()
    return str(payload[payload["msgtype"]]["text"])


def run(
    kind: str,
    body: object,
    routes: Route,
    clock: FakeClock,
    templates: Templates | None = None,
    **options: typing.Any,
) -> typing.Any:
    return process_alerts(
        kind,  # type: ignore[arg-type]
        routes,
        body,  # type: ignore[arg-type]
        people=PEOPLE,
        templates=templates or Templates(),
        clock=clock,
        name="ops",
        **options,
    )


# -- each receiver's payloads --------------------------------------------------------------------

# (sample, what the message must show)
TABLE = [
    (
        "alertmanager-firing",
        "🔥 [FIRING:1] HighCPU · critical",
        [
            "### 🔥 FIRING 1 · HighCPU",
            "**CRITICAL**",
            "CPU above 90% on web-01",
            "firing for 12 min, since 2024-05-01 20:00 CST",
            "[Runbook](https://runbooks.example/cpu)",
            "[Silence](http://alertmanager.example:9093/#/silences/new?filter=%7Balertname%3D%22HighCPU%22",
            "[Source](http://prometheus.example:9090/graph?",
        ],
    ),
    (
        "alertmanager-resolved",
        "✅ [RESOLVED] HighCPU · critical",
        ["### ✅ RESOLVED · HighCPU", "resolved after 35 min, at 2024-05-01 20:35 CST"],
    ),
    (
        "grafana-firing",
        "🔥 [FIRING:1] DiskFull · warning",
        [
            "**WARNING**",
            "- **value:** A=95.7, B=1",
            "[Dashboard](http://grafana.example:3000/d/disk01?orgId=1)",
            "[Panel](",
            "![DiskFull](https://grafana.example/public/img/disk01.png)",
            "[Silence](http://grafana.example:3000/alerting/silence/new?",
        ],
    ),
    (
        "generic-gitlab",
        "📨 pipeline",
        ["### 📨 pipeline", "- **object\\_attributes.status:** failed", "- **user.name:** Alice"],
    ),
]


@pytest.mark.parametrize(("name", "title", "shown"), TABLE)
def test_each_receiver_renders_its_payload(
    name: str, title: str, shown: list[str], clock: FakeClock
) -> None:
    kind, body = sample(name)
    outcome = run(
        kind, json.dumps(body).encode(), Route(targets=["ops"], timezone="Asia/Shanghai"), clock
    )
    (sent,) = outcome.messages
    assert isinstance(sent.message, Markdown)
    assert sent.message.title == title
    for fragment in shown:
        assert fragment in sent.message.text, (fragment, sent.message.text)
    assert (sent.target, sent.route, sent.template) == ("ops", "ops", kind)
    assert outcome.problems == () and outcome.render_failures == ()


def test_each_alert_is_routed_on_its_own_labels(clock: FakeClock) -> None:
    kind, body = sample("alertmanager-firing")
    second = json.loads(json.dumps(body["alerts"][0]))
    second["labels"].update(severity="warning", instance="web-02:9100")
    second["fingerprint"] = "ffff"
    body["alerts"].append(second)
    routes = Route(
        targets=["ops"],
        routes=[Route(name="critical", match=['severity="critical"'], targets=["pager"])],
    )
    outcome = run(kind, body, routes, clock)
    by_target = {m.target: m for m in outcome.messages}
    assert set(by_target) == {"pager", "ops"}
    assert "web-01" in text_of(by_target["pager"].message)
    assert "web-02" not in text_of(by_target["pager"].message)
    assert "web-02" in text_of(by_target["ops"].message) and by_target["ops"].alerts == 1
    assert by_target["ops"].message.title.endswith("warning")  # its own common labels


def test_generic_hooks_route_on_their_fields(clock: FakeClock) -> None:
    kind, body = sample("generic-gitlab")
    routes = Route(
        targets=["ci"],
        routes=[
            Route(name="failed", match=['object_attributes.status="failed"'], targets=["oncall"])
        ],
    )
    assert [m.target for m in run(kind, body, routes, clock).messages] == ["oncall"]
    body["object_attributes"]["status"] = "success"
    assert [m.target for m in run(kind, body, routes, clock).messages] == ["ci"]


def test_a_route_template_with_buttons_makes_an_action_card(clock: FakeClock) -> None:
    templates = Templates(
        [
            TemplateSpec(
                name="card",
                source=(
                    "{% set title %}{{ default_title }}{% endset %}"
                    "### {{ headline }}\n{% for a in alerts %}- {{ a.summary }}\n{% endfor %}"
                    '{{ button("Silence", alerts[0].silence_url) }}'
                    "{% if alerts[0].runbook_url %}"
                    '{{ button("Runbook", alerts[0].runbook_url) }}'
                    "{% endif %}"
                ),
            )
        ]
    )
    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"]["owner"] = "alice bob"
    outcome = run(kind, body, Route(targets=["ops"], template="card"), clock, templates)
    (sent,) = outcome.messages
    assert isinstance(sent.message, ActionCard)
    assert [b.title for b in sent.message.buttons] == ["Silence", "Runbook"]
    assert sent.message.text.endswith("@alice01")  # a card mentions by userId in its text
    assert any("by mobile" in p for p in outcome.problems)  # bob has only a mobile


# -- mentions ------------------------------------------------------------------------------------


def mentions_for(
    labels: dict[str, str], clock: FakeClock, **route: typing.Any
) -> tuple[typing.Any, tuple[str, ...]]:
    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"].update(labels)
    outcome = run(kind, body, Route(targets=["ops"], **route), clock)
    message = outcome.messages[0].message
    return message, outcome.problems


def test_labels_choose_who_is_mentioned(clock: FakeClock) -> None:
    message, problems = mentions_for(
        {"owner": "alice, bob", "dingtalk_at": "13900000000 dave99"}, clock
    )
    assert message.at.user_ids == ("alice01", "dave99")
    assert message.at.mobiles == ("13800000002", "13900000000")
    payload = message.to_payload()
    for target in ("@alice01", "@dave99", "@13800000002", "@13900000000"):
        assert target in payload["markdown"]["text"]  # DingTalk needs @… in the text (§1.3)
    assert problems == ()


def test_annotations_choose_too_and_route_mentions_come_first(clock: FakeClock) -> None:
    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["annotations"]["owner"] = "carol"
    outcome = run(kind, body, Route(targets=["ops"], mention=["bob", "13700000000"]), clock)
    at = outcome.messages[0].message.at
    assert at.mobiles == ("13800000002", "13700000000") and at.user_ids == ("carol03",)


def test_unknown_owners_are_reported_not_guessed(clock: FakeClock) -> None:
    message, problems = mentions_for({"owner": "mallory"}, clock)
    assert message.at is None
    assert problems == (
        "route ops: label owner: 'mallory' is not in the people directory (nor a mobile number)",
    )


def test_at_all_only_where_the_route_allows_it(clock: FakeClock) -> None:
    message, problems = mentions_for({"dingtalk_at": "all"}, clock)
    assert message.at is None and "does not allow" in problems[0]
    message, problems = mentions_for({"dingtalk_at": "@all"}, clock, allow_mention_all=True)
    assert message.at.all and "@all" in message.to_payload()["markdown"]["text"] and problems == ()
    message, _ = mentions_for({}, clock, mention_all=True)
    assert message.at.all


def test_mentions_are_capped_at_fifty(clock: FakeClock) -> None:
    owners = " ".join(f"138{index:08d}" for index in range(60))
    message, problems = mentions_for({"dingtalk_at": owners}, clock)
    assert len(message.at.mobiles) == 50
    assert "10 more people not mentioned" in problems[0]


def test_targets_that_cannot_mention_get_the_message_without(clock: FakeClock) -> None:
    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"]["owner"] = "alice"
    outcome = run(
        kind,
        body,
        Route(targets=["ops", "room"]),
        clock,
        target_kinds={"ops": "robot", "room": "app-group"},
    )
    by_target = {m.target: m.message for m in outcome.messages}
    assert by_target["ops"].at.user_ids == ("alice01",)
    assert by_target["room"].at is None
    assert "cannot @-mention" in outcome.problems[0]


# -- repeats -------------------------------------------------------------------------------------


def test_identical_repeats_are_suppressed_within_the_window(clock: FakeClock) -> None:
    log = MemoryRepeatLog()
    routes = Route(targets=["ops"], repeat_window=4 * 3600)
    kind, body = sample("alertmanager-firing")
    first = run(kind, body, routes, clock, repeats=log)
    assert len(first.messages) == 1 and first.repeat_windows
    again = run(kind, body, routes, clock, repeats=log)
    assert len(again.messages) == 1  # not remembered yet: e.g. the commit failed, a retry came
    first.remember(log, clock.time())
    clock.advance(3600)
    held = run(kind, body, routes, clock, repeats=log)
    assert held.messages == () and held.suppressed[0].alerts == 1
    clock.advance(3 * 3600)
    assert len(run(kind, body, routes, clock, repeats=log).messages) == 1  # window over


def test_a_change_or_a_resolution_always_passes(clock: FakeClock) -> None:
    log = MemoryRepeatLog()
    routes = Route(targets=["ops"], repeat_window=3600)
    kind, body = sample("alertmanager-firing")
    run(kind, body, routes, clock, repeats=log).remember(log, clock.time())
    body["alerts"].append({**body["alerts"][0], "fingerprint": "new"})
    assert len(run(kind, body, routes, clock, repeats=log).messages) == 1
    kind, resolved = sample("alertmanager-resolved")
    for _ in range(2):
        outcome = run(kind, resolved, routes, clock, repeats=log)
        assert len(outcome.messages) == 1 and outcome.repeat_windows == ()
        outcome.remember(log, clock.time())


# -- long groups ---------------------------------------------------------------------------------


def storm(count: int) -> dict[str, typing.Any]:
    _, body = sample("alertmanager-storm")
    template = body["alerts"][0]
    body["alerts"] = []
    for index in range(count):
        alert = json.loads(json.dumps(template))
        alert["labels"]["instance"] = f"host-{index:04d}:9100"
        alert["annotations"]["summary"] = f"CPU above 90% on host-{index:04d} 告警"
        alert["fingerprint"] = f"{index:016x}"
        body["alerts"].append(alert)
    return body


def test_a_large_group_is_complete_and_splits_into_parts_that_fit(clock: FakeClock) -> None:
    body = storm(500)
    body["truncatedAlerts"] = 120
    outcome = run("alertmanager", body, Route(targets=["ops"]), clock)
    (sent,) = outcome.messages
    text = text_of(sent.message)
    assert "Alertmanager left out 120 more alerts" in text  # never hidden
    parts = Splitter().split(sent.message)
    assert len(parts) > 1
    for part in parts:
        body_bytes = json.dumps(
            {**part.to_payload(), "msgUuid": "0" * 43}, ensure_ascii=False, separators=(",", ":")
        )
        assert len(body_bytes.encode()) <= 20_000
    joined = "\n".join(text_of(p) for p in parts)
    for index in range(500):
        assert f"host-{index:04d}" in joined  # every alert is in some part, none truncated


def test_an_action_card_too_large_to_split_becomes_markdown(clock: FakeClock) -> None:
    templates = Templates(
        [
            TemplateSpec(
                name="card",
                source='{{ button("Open", external_url) }}'
                "{% for a in alerts %}{{ a.summary }}\n\n{% endfor %}",
            )
        ]
    )
    outcome = run(
        "alertmanager", storm(700), Route(targets=["ops"], template="card"), clock, templates
    )
    (sent,) = outcome.messages
    assert isinstance(sent.message, Markdown)
    assert sent.message.text.endswith("[Open](http://alertmanager.example:9093)")
    assert "cannot be split" in outcome.problems[0]


def test_routes_without_targets_are_reported(clock: FakeClock) -> None:
    kind, body = sample("alertmanager-firing")
    outcome = run(kind, body, Route(), clock)
    assert outcome.messages == () and "no targets" in outcome.problems[0]


# -- settings ------------------------------------------------------------------------------------


def settings() -> AlertSettings:
    return AlertSettings(
        routes={
            "ops": Route(
                targets=["ops"],
                routes=[
                    Route(
                        name="db",
                        match=['team="db"'],
                        targets=["room", "opz"],
                        mention=["alice", "zed"],
                    ),
                    Route(name="x", match=['a="b"'], template="nope"),
                ],
            )
        },
        templates={"db": TemplateSpec(name="", source="{{ headline }}")},
        people={"alice": Person(name="alice", user_id="alice01")},
    )


def test_settings_name_their_entries_and_check_references() -> None:
    alerts = settings()
    assert alerts.routes["ops"].name == "ops" and alerts.templates["db"].name == "db"
    problems = alerts.check({"ops": "robot", "room": "app-group"})
    assert problems == [
        "routes.ops.routes.db.targets: no target named 'opz' (targets: ops, room)",
        "routes.ops.routes.db.mention: 'zed' is not in [people] nor a mobile number",
        "routes.ops.routes.db: target 'room' is a app-group target, which cannot @-mention "
        "people (DingTalk has no @ outside webhook robots); mention through a robot target, "
        "or drop the mentions",
        "routes.ops.routes.x.template: no template named 'nope' (builtin: alertmanager, "
        "grafana, generic; configured: db)",
    ]
    compiled = alerts.compile()
    assert "db" in compiled.templates and compiled.people.get("alice") is not None


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ConfigError, match="takes no matchers"):
        AlertSettings(routes={"ops": Route(match=['a="b"'], targets=["x"])})
    with pytest.raises(ConfigError, match="leave name out"):
        AlertSettings(people={"alice": Person(name="bob", mobile="13800000000")})
    with pytest.raises(ConfigError, match="user_id"):
        Person(name="nobody")
    with pytest.raises(ConfigError, match="not a mobile"):
        Person(name="x", mobile="call me")
    assert AlertSettings(routes={"ops": Route()}).check({}) == [
        "routes.ops.targets: the top route needs targets (what no child route takes goes there)"
    ]
