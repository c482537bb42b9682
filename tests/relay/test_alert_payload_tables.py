"""Receiver payload tables: bodies written from Alertmanager's, Grafana's,
prometheus-webhook-dingtalk's and generic senders' documented schemas, through the relay's
receivers: each is routed, rendered and mentioned as configured, or refused (400/422, nothing
stored); templates stay in their sandbox behind the receivers too."""

from __future__ import annotations

import json
import typing

import pytest

from dingpush.alerts import AlertSettings, Person, Route, TemplateSpec, sample
from dingpush.relay import AlertReceivers, Relay, RobotTarget
from dingpush.relay.stores import MemoryStore
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving

pytestmark = pytest.mark.anyio

NOW = 1714565520.0
ROBOTS = ("ops", "db", "audit")


def _settings() -> AlertSettings:
    return AlertSettings(
        routes={
            "ops": Route(
                targets=["ops"],
                allow_mention_all=True,
                routes=[
                    Route(
                        name="audit",
                        match=['severity=~"critical|warning"'],
                        targets=["audit"],
                        continue_=True,
                    ),
                    Route(name="db", match=['team=~"db|dba"'], targets=["db"], mention=["bob"]),
                ],
            ),
            "sandbox": Route(targets=["ops"], template="escape"),
            "files": Route(targets=["ops"], template="passwd"),
        },
        templates={
            "escape": TemplateSpec(source="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
            "passwd": TemplateSpec(source='{% include "/etc/passwd" %}'),
        },
        people={
            "alice": Person(user_id="manager4220"),
            "bob": Person(mobile="13800000000"),
        },
    )


@pytest.fixture
async def http(dingtalk_emulator: EmulatorServer) -> typing.AsyncIterator[typing.Any]:
    clock = FakeClock(NOW)
    targets = []
    for name in ROBOTS:
        dingtalk_emulator.add_robot(name, f"robot-token-{name}-0123456789abcdef")
        targets.append(RobotTarget(name, dingtalk_emulator.webhook_url(name)))
    relay = Relay(
        targets,
        store=MemoryStore(clock=clock),
        settings=fast_settings(),
        clock=clock,
        alerts=AlertReceivers(_settings()),
    )
    async with serving(relay) as client:
        yield client


def _am(**labels: str) -> dict[str, typing.Any]:
    _, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"].update(labels)
    body["commonLabels"] = dict(body["alerts"][0]["labels"])
    return body


def _grafana(**labels: str) -> dict[str, typing.Any]:
    _, body = sample("grafana-firing")
    for alert in body["alerts"]:
        alert["labels"].update(labels)
    return body


# (id, path, body, {robot: (text that must be there, user ids, mobiles, @all)})
CASES: list[
    tuple[
        str,
        str,
        dict[str, typing.Any],
        dict[str, tuple[str, tuple[str, ...], tuple[str, ...], bool]],
    ]
] = [
    (
        "am-critical-db",
        "/alertmanager/ops",
        _am(team="db"),
        {
            "audit": ("HighCPU", (), (), False),
            "db": ("HighCPU", (), ("13800000000",), False),
        },
    ),
    (
        "am-info-web",
        "/alertmanager/ops",
        _am(severity="info", team="web"),
        {"ops": ("HighCPU", (), (), False)},
    ),
    (
        "am-owner-label",
        "/alertmanager/ops",
        _am(severity="info", owner="alice"),
        {"ops": ("HighCPU", ("manager4220",), (), False)},
    ),
    (
        "am-at-all-allowed",
        "/alertmanager/ops",
        _am(severity="info", dingtalk_at="all"),
        {"ops": ("HighCPU", (), (), True)},
    ),
    (
        "pwd-path",
        "/dingtalk/ops/send",
        _am(severity="info"),
        {"ops": ("HighCPU", (), (), False)},
    ),
    (
        "grafana-warning-dba",
        "/grafana/ops",
        _grafana(severity="warning", team="dba"),
        {"audit": ("DiskFull", (), (), False), "db": ("DiskFull", (), ("13800000000",), False)},
    ),
    (
        "generic-hook",
        "/hooks/ops",
        sample("generic-gitlab")[1],
        {"ops": ("pipeline", (), (), False)},
    ),
    (
        "no-file-system",
        "/alertmanager/files",
        _am(),
        {"ops": ("HighCPU", (), (), False)},
    ),
    (
        "sandbox-escape-falls-back",
        "/alertmanager/sandbox",
        _am(),
        {"ops": ("HighCPU", (), (), False)},
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_a_documented_payload_is_routed_rendered_and_mentioned(
    http: typing.Any,
    dingtalk_emulator: EmulatorServer,
    path: str,
    body: dict[str, typing.Any],
    expected: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], bool]],
) -> None:
    reply = await http.post(path, json=body)
    assert reply.status_code == 200, reply.text
    assert sorted(m["target"] for m in reply.json()["messages"]) == sorted(expected)

    def arrived() -> bool:
        return all(dingtalk_emulator.emulator.messages(robot=r) for r in expected)

    await eventually(arrived, what="the messages")
    for robot in ROBOTS:
        sent = dingtalk_emulator.emulator.messages(robot=robot)
        if robot not in expected:
            assert sent == []
            continue
        (message,) = sent
        text, user_ids, mobiles, everyone = expected[robot]
        shown = message.payload["markdown"]["text"]
        assert text.lower() in shown.lower()
        assert message.at.user_ids == user_ids
        assert message.at.mobiles == mobiles
        assert message.at.all is everyone
        assert "__subclasses__" not in shown and "<class" not in shown
        assert "root:" not in shown


def _surrogate_label() -> bytes:
    text = json.dumps(_am())
    return text.replace('"HighCPU"', '"High\\ud83dCPU"', 1).encode()


MALFORMED = [
    ("am-not-json", "/alertmanager/ops", b"version: 4", 400),
    ("am-empty", "/alertmanager/ops", b"", 400),
    ("am-array", "/alertmanager/ops", b"[]", 422),
    (
        "am-alerts-not-list",
        "/alertmanager/ops",
        b'{"version":"4","status":"firing","alerts":{}}',
        422,
    ),
    (
        "am-labels-not-strings",
        "/alertmanager/ops",
        b'{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":1}}]}',
        422,
    ),
    (
        "pwd-bad-status",
        "/dingtalk/ops/send",
        b'{"version":"4","status":"on fire","alerts":[]}',
        422,
    ),
    ("grafana-alerts-missing", "/grafana/ops", b'{"status":"firing"}', 422),
    ("generic-number", "/hooks/ops", b"42", 422),
    # Bodies no schema describes (the relay's rule for every body): never a 5xx, never stored.
    ("hook-lone-surrogate", "/hooks/ops", b'{"title": "\\ud800 disk"}', 400),
    ("am-lone-surrogate-label", "/alertmanager/ops", _surrogate_label(), 400),
    ("grafana-lone-surrogate-key", "/grafana/ops", b'{"\\udfff": 1}', 400),
    ("hook-33-levels", "/hooks/ops", b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", 400),
    ("am-100000-levels", "/alertmanager/ops", b"[" * 100_000 + b"]" * 100_000, 400),
]


@pytest.mark.parametrize(
    ("path", "body", "status"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
async def test_a_malformed_payload_is_refused_and_not_stored(
    http: typing.Any, path: str, body: bytes, status: int
) -> None:
    reply = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    problem = reply.json()
    assert "pointer" in problem and problem["detail"]
    assert (await http.get("/v1/messages")).json()["items"] == []
