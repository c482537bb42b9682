"""The incidents API: list, show with the timeline, acknowledge; recalls on the timeline."""

from __future__ import annotations

import json
import typing

import httpx
import pytest

from dingpush import AsyncApp
from dingpush.relay import AppTarget, Relay
from dingpush.relay._incidents import Incident, IncidentState
from dingpush.relay.stores import IncidentNotFound, MemoryIncidentStore
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio

API_TOKENS = ("incidents-api-token-0123456789", "incidents-api-token-abcdefghij")


def _relay(server: EmulatorServer, incidents: MemoryIncidentStore | None) -> Relay:
    config = server.add_app("ops-app", groups=["Ops"], users=("alice",))
    (cid,) = config.groups
    app = AsyncApp(config.app_key, config.app_secret, api_base=server.url, token_cache=False)
    targets = [
        AppTarget("group", app, "app-group", open_conversation_id=cid, owns_app=True),
        AppTarget("people", app, "app-users", users=("alice",)),
    ]
    settings = fast_settings(api_tokens=API_TOKENS)
    return Relay(targets, settings=settings, incidents=incidents)


def _auth(number: int = 1) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKENS[number - 1]}"}


async def _open(
    store: MemoryIncidentStore, title: str, target: str = "group", key: str = ""
) -> int:
    incident = await store.open_incident(
        route="ops",
        group_key=key or title,
        title=title,
        labels={"alertname": "DiskFull", "instance": "db-1"},
        policy="page",
        targets=[target],
        due_at=2_000_000_000.0,
        now=1_800_000_000.0,
    )
    return incident.number


async def _delivered(api: httpx.AsyncClient, target: str, message: dict[str, object]) -> str:
    sent = await api.post("/v1/messages", json={"target": target, "message": message})
    assert sent.status_code == 202, sent.text
    message_id = typing.cast(str, sent.json()["id"])

    async def done() -> bool:
        return bool((await api.get(f"/v1/messages/{message_id}")).json()["status"] == "delivered")

    await eventually(done, what="the delivery")
    return message_id


async def test_list_filter_and_show_incidents(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    disk = await _open(store, "DiskFull on db-1")
    cpu = await _open(store, "HighCPU on web-2", target="people")
    await store.resolve(route="ops", group_key="HighCPU on web-2", now=1_800_000_100.0)
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        listed = (await api.get("/v1/incidents")).json()["items"]
        assert [i["number"] for i in listed] == [cpu, disk]  # newest first
        assert "timeline" not in listed[0]
        only_open = (await api.get("/v1/incidents", params={"state": "open"})).json()["items"]
        assert [i["number"] for i in only_open] == [disk]
        both = await api.get("/v1/incidents", params=[("state", "open"), ("state", "resolved")])
        assert len(both.json()["items"]) == 2
        commas = await api.get("/v1/incidents", params={"state": "open,resolved"})
        assert len(commas.json()["items"]) == 2
        by_target = await api.get("/v1/incidents", params={"target": "people"})
        assert [i["number"] for i in by_target.json()["items"]] == [cpu]
        assert (await api.get("/v1/incidents", params={"state": "asleep"})).status_code == 400
        assert (await api.get("/v1/incidents", params={"limit": "0"})).status_code == 400

        shown = (await api.get(f"/v1/incidents/{disk}")).json()
        assert shown["title"] == "DiskFull on db-1" and shown["state"] == "open"
        assert shown["labels"] == {"alertname": "DiskFull", "instance": "db-1"}
        assert [e["kind"] for e in shown["timeline"]] == ["opened"]
        assert (await api.get("/v1/incidents/999")).status_code == 404
        assert (await api.get("/v1/incidents/abc")).status_code == 404
        assert (await api.get("/v1/incidents", headers={"Authorization": ""})).status_code == 401


async def test_acknowledge_records_who_and_tells_the_group(
    dingtalk_emulator: EmulatorServer,
) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, "DiskFull on db-1")
    async with serving(_relay(dingtalk_emulator, store), headers=_auth(2)) as api:
        acked = await api.post(f"/v1/incidents/{number}/ack")
        assert acked.status_code == 200, acked.text
        body = acked.json()
        assert body["state"] == "acknowledged" and body["acknowledged_by"] == "api token #2"
        event = body["timeline"][-1]
        assert event["kind"] == "acknowledged" and event["who"] == "api token #2"
        assert event["detail"] == "api"

        again = await api.post(f"/v1/incidents/{number}/ack", json={"by": "bob"})
        assert again.status_code == 200 and again.json()["acknowledged_by"] == "api token #2"

        queued = (await api.get("/v1/messages", params={"target": "group"})).json()["items"]
        assert len(queued) == 1  # one announcement, not one per ack
        detail = (await api.get(f"/v1/messages/{queued[0]['id']}")).json()
        assert detail["payload"]["text"]["content"] == f"#{number} acknowledged by api token #2"

        other = await _open(store, "HighCPU", key="cpu")
        named = await api.post(f"/v1/incidents/{other}/ack", json={"by": "alice"})
        assert named.json()["acknowledged_by"] == "alice"
        await store.resolve(route="ops", group_key="cpu", now=1_800_000_500.0)
        late = await api.post(f"/v1/incidents/{other}/ack", json={"by": "alice"})
        assert late.status_code == 409 and "resolved" in late.json()["detail"]
        assert (await api.post("/v1/incidents/999/ack")).status_code == 404
        bad = await api.post(f"/v1/incidents/{number}/ack", json={"by": ""})
        assert bad.status_code == 400
        every = json.dumps([(await api.get(f"/v1/incidents/{n}")).json() for n in (number, other)])
    for token in API_TOKENS:
        assert token not in every and token not in acked.text


async def test_a_recall_goes_on_the_incident_timeline(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, "DiskFull on db-1")
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        message_id = await _delivered(api, "group", text("DiskFull on db-1"))
        await store.attach_messages(number, [message_id])
        recalled = await api.post(f"/v1/messages/{message_id}/recall", json={"by": "alice"})
        assert recalled.status_code == 200, recalled.text
        timeline = (await api.get(f"/v1/incidents/{number}")).json()["timeline"]
    event = timeline[-1]
    assert event["kind"] == "recalled" and event["who"] == "alice"
    assert message_id in event["detail"]
    incident = await store.get(number)
    assert incident is not None and incident.state is IncidentState.OPEN


async def test_a_relay_without_policies_has_no_incidents(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator, None), headers=_auth()) as api:
        listed = await api.get("/v1/incidents")
        assert listed.status_code == 200 and listed.json() == {"items": []}
        assert (await api.post("/v1/incidents/1/ack")).status_code == 404


async def test_a_secret_in_an_alert_is_masked(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, f"login with {API_TOKENS[0]} failed")
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        answers = [
            (await api.get("/v1/incidents")).text,
            (await api.get(f"/v1/incidents/{number}")).text,
            (await api.post(f"/v1/incidents/{number}/ack")).text,
        ]
    for text_ in answers:
        assert API_TOKENS[0] not in text_ and "login with" in text_


class _Vanishing(MemoryIncidentStore):
    """An incident that is gone by the time it is acknowledged (another instance's cleanup)."""

    async def acknowledge(self, number: int, *, who: str, via: str, now: float) -> Incident:
        raise IncidentNotFound(number)


async def test_an_incident_gone_meanwhile_is_a_404(dingtalk_emulator: EmulatorServer) -> None:
    store = _Vanishing()
    number = await _open(store, "DiskFull on db-1")
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        gone = await api.post(f"/v1/incidents/{number}/ack")
    assert gone.status_code == 404 and f"no incident {number}" in gone.json()["detail"]
