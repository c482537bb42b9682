"""Signed one-time ack links for webhook-robot targets: GET confirms, POST acknowledges once;
expired, forged and used links are refused with a page that says so."""

from __future__ import annotations

import json
import re
import time

import pytest

from dingpush import ConfigError, Markdown, Text
from dingpush.relay import Relay, RelaySettings, RobotTarget
from dingpush.relay._acklinks import AckLinks, LinkRefused
from dingpush.relay._incidents import EventKind, Incident, IncidentState
from dingpush.relay.stores import MemoryIncidentStore
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, serving

SECRET = "ack-secret-0123456789-abcdefghij"
TOKEN = "robot-token-acklinks-0123456789"


async def _open(
    store: MemoryIncidentStore, title: str = "DiskFull on db-1", key: str = "g"
) -> Incident:
    return await store.open_incident(
        route="ops",
        group_key=key,
        title=title,
        labels={"alertname": "DiskFull"},
        policy=None,
        targets=["ops"],
        due_at=None,
        now=time.time(),
    )


def _relay(emulator: EmulatorServer, store: MemoryIncidentStore) -> Relay:
    emulator.add_robot("ops", TOKEN)
    return Relay(
        [RobotTarget("ops", emulator.webhook_url("ops"))],
        settings=fast_settings(public_url="http://relay", ack_secret=SECRET),
        incidents=store,
    )


@pytest.mark.anyio
async def test_get_confirms_without_acting_post_acknowledges_once_and_tells_the_group(
    dingtalk_emulator: EmulatorServer,
) -> None:
    store = MemoryIncidentStore()
    relay = _relay(dingtalk_emulator, store)
    incident = await _open(store)
    assert relay.ack_links is not None
    link = relay.ack_links.link(incident.number)
    assert link.startswith(f"http://relay/ack/{incident.number}/")
    path = link.removeprefix("http://relay")
    async with serving(relay) as http:
        for _ in range(2):  # a link previewer, then the person
            page = await http.get(path)
            assert page.status_code == 200 and '<form method="post">' in page.text
            assert "DiskFull on db-1" in page.text and SECRET not in page.text
            assert page.headers["cache-control"] == "no-store"
        assert (await store.get(incident.number)).state is IncidentState.OPEN  # type: ignore[union-attr]
        # A name with a line break would forge a line in the group's "acknowledged by" text.
        forged = await http.post(path, data={"name": "Carol\n#9 acknowledged by Bob"})
        assert forged.status_code == 400 and "one line of text" in forged.text
        assert (await store.get(incident.number)).state is IncidentState.OPEN  # type: ignore[union-attr]
        done = await http.post(path, data={"name": "Carol"})
        assert done.status_code == 200 and "acknowledged by Carol" in done.text
        after = await store.get(incident.number)
        assert after is not None and after.acknowledged_by == "Carol"
        (event,) = [e for e in after.timeline if e.kind is EventKind.ACKNOWLEDGED]
        assert (event.who, event.detail) == ("Carol", "link")

        def told() -> bool:
            texts = [
                m.payload.get("text", {}).get("content")
                for m in dingtalk_emulator.emulator.messages(robot="ops")
            ]
            return f"#{incident.number} acknowledged by Carol" in texts

        await eventually(told, what="the group told")
        again = await http.post(path, data={"name": "Dave"})
        assert again.status_code == 410 and "already acknowledged" in again.text
        assert (await http.get(path)).status_code == 410
        assert (await store.get(incident.number)).acknowledged_by == "Carol"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_forged_expired_and_settled_links_are_refused(
    dingtalk_emulator: EmulatorServer,
) -> None:
    store = MemoryIncidentStore()
    relay = _relay(dingtalk_emulator, store)
    links = relay.ack_links
    assert links is not None
    one, two = await _open(store, key="a"), await _open(store, key="b")
    token = links.token(one.number)
    expiry, _, mac = token.partition(".")
    async with serving(relay) as http:
        cases = {
            f"/ack/{two.number}/{token}": (403, "not made by this relay"),  # another incident
            f"/ack/{one.number}/{expiry}.{mac[:-2]}xx": (403, "not made by this relay"),
            f"/ack/{one.number}/{int(expiry) + 60}.{mac}": (403, "not made by this relay"),
            f"/ack/{one.number}/garbage": (404, "not an acknowledgement link"),
            f"/ack/{one.number}/{expiry}.%C3%A9t%C3%A9": (403, "not made by this relay"),
            f"/ack/{one.number}/%D9%A1%D9%A2.{mac}": (404, "not an acknowledgement link"),
            f"/ack/{one.number}/{links.token(one.number, now=time.time() - 90000)}": (
                410,
                "has expired",
            ),
            f"/ack/999/{links.token(999)}": (404, "no incident #999"),
        }
        for path, (status, words) in cases.items():
            for method in ("GET", "POST"):
                answer = await http.request(method, path)
                assert answer.status_code == status, (path, answer.text)
                assert words in answer.text
        assert (await store.get(one.number)).state is IncidentState.OPEN  # type: ignore[union-attr]
        await store.acknowledge(two.number, who="Bob", via="chat", now=time.time())
        answer = await http.post(f"/ack/{two.number}/{links.token(two.number)}")
        assert answer.status_code == 409 and "already acknowledged by Bob" in answer.text


def test_check_refuses_at_and_after_the_expiry() -> None:
    links = AckLinks(SECRET, "https://relay.example.com/", MemoryIncidentStore(), ttl=60)
    token = links.token(7, now=1000.0)
    assert links.check(7, token, now=1059.0).expires_at == 1060
    with pytest.raises(LinkRefused) as refused:
        links.check(7, token, now=1060.0)
    assert refused.value.status == 410
    assert SECRET not in repr(links)


def test_decorate_adds_the_link_to_text_and_markdown() -> None:
    links = AckLinks(SECRET, "https://relay.example.com", MemoryIncidentStore())
    text = links.decorate(Text("disk full"), 3).to_payload()["text"]["content"]
    assert text.startswith("disk full\n\nAcknowledge #3: https://relay.example.com/ack/3/")
    markdown = links.decorate(Markdown("t", "**disk**"), 3).to_payload()["markdown"]["text"]
    assert "[Acknowledge #3](https://relay.example.com/ack/3/" in markdown


def test_settings_refuse_a_short_secret_or_one_without_a_public_url() -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        RelaySettings(ack_secret="short", public_url="https://r.example")
    with pytest.raises(ConfigError, match="public_url"):
        RelaySettings(ack_secret=SECRET)
    with pytest.raises(ConfigError, match="receive"):
        RelaySettings(receive="carrier-pigeon")
    with pytest.raises(ConfigError, match="alertmanager_url"):
        RelaySettings(alertmanager_url="am:9093")
    assert SECRET not in repr(RelaySettings(ack_secret=SECRET, public_url="https://r.example"))


@pytest.mark.anyio
async def test_an_alert_to_a_webhook_robot_carries_the_link_that_acknowledges_its_incident(
    dingtalk_emulator: EmulatorServer,
) -> None:
    from dingpush.alerts import AlertSettings, Person, Route, sample
    from dingpush.relay import AlertReceivers, OnCall, Policy, Step

    dingtalk_emulator.add_robot("ops", TOKEN)
    people = {"alice": Person(user_id="alice")}
    receivers = AlertReceivers(
        AlertSettings(routes={"ops": Route(targets=["ops"])}, people=people),
        oncall=OnCall(
            policies={"page": Policy(name="page", steps=(Step(after=300, notify="ops"),))},
            people=people,
        ),
        policies={"ops": "page"},
    )
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))],
        settings=fast_settings(
            public_url="http://relay", ack_secret=SECRET, escalation_poll=3600.0
        ),
        alerts=receivers,
    )
    _, firing = sample("alertmanager-firing")
    async with serving(relay) as http:
        answer = await http.post("/alertmanager/ops", json=firing)
        assert answer.status_code == 200, answer.text
        (incident,) = await relay.incidents.list_incidents()
        assert incident.state is IncidentState.OPEN and incident.policy == "page"

        def sent() -> list[str]:
            return [
                json.dumps(m.payload, ensure_ascii=False)
                for m in dingtalk_emulator.emulator.messages(robot="ops")
            ]

        await eventually(lambda: len(sent()) == 1, what="the alert message")
        found = re.search(rf"\(http://relay(/ack/{incident.number}/[\w.-]+)\)", sent()[0])
        assert found is not None, sent()[0]
        path = found.group(1)
        again = await http.post("/alertmanager/ops", json=firing)  # the sender's retry
        assert again.json()["messages"][0]["duplicate"] is True
        assert len(await relay.incidents.list_incidents()) == 1
        done = await http.post(path, data={"name": "alice"})
        assert done.status_code == 200, done.text
        after = await relay.incidents.get(incident.number)
        assert after is not None and after.state is IncidentState.ACKNOWLEDGED
        assert after.due_at is None  # the escalation stopped
        await eventually(
            lambda: any(f"#{incident.number} acknowledged by alice" in t for t in sent()),
            what="the group told",
        )


@pytest.mark.anyio
async def test_the_on_call_entrances_are_in_openapi_json(
    dingtalk_emulator: EmulatorServer,
) -> None:
    import schemathesis

    from dingpush.relay import ChatReceivers, ReceivingApp

    store = MemoryIncidentStore()
    dingtalk_emulator.add_robot("ops", TOKEN)
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))],
        settings=fast_settings(public_url="http://relay", ack_secret=SECRET),
        incidents=store,
        chat=ChatReceivers([ReceivingApp("corp", "dingkey0123456789", "secret-0123456789")]),
    )
    async with serving(relay) as http:
        spec = (await http.get("/openapi.json")).json()
    assert spec["paths"]["/callbacks/{app}"]["post"]["operationId"] == "chat_callback"
    assert set(spec["paths"]["/ack/{number}/{token}"]) == {"get", "post"}
    # schemathesis reads every operation (a malformed one would be an error here).
    operations = {
        op.ok().definition.raw["operationId"]  # type: ignore[union-attr]
        for op in schemathesis.openapi.from_dict(spec).get_all_operations()
    }
    assert {"chat_callback", "ack_link_page", "ack_link_acknowledge"} <= operations
    assert SECRET not in json.dumps(spec) and "secret-0123456789" not in json.dumps(spec)


class _BrokenStore(MemoryIncidentStore):
    async def get(self, number: int) -> Incident | None:
        raise RuntimeError("the store broke")


@pytest.mark.anyio
async def test_an_unexpected_error_on_a_link_does_not_log_its_token(
    dingtalk_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = _BrokenStore()
    relay = _relay(dingtalk_emulator, store)
    assert relay.ack_links is not None
    token = relay.ack_links.token(1)
    async with serving(relay) as http:
        with pytest.raises(RuntimeError):  # the in-process client re-raises; uvicorn answers 500
            await http.get(f"/ack/1/{token}")
    assert "unexpected error on GET /ack/1/…" in caplog.text
    assert token not in caplog.text and token.partition(".")[2] not in caplog.text
