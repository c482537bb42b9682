"""The dashboard's Alerts pages over HTTP: list, timeline, acknowledge, recall, escaping, CSRF."""

from __future__ import annotations

import contextlib
import datetime
import re
import typing

import httpx
import pytest

from dingpush import AsyncApp
from dingpush.alerts import AlertSettings, Route
from dingpush.relay import AppTarget, Relay, create_app, dashboard_routes
from dingpush.relay._alerts import AlertReceivers
from dingpush.relay._dashboard_alerts import age, zone_for
from dingpush.relay._incidents import EventKind, IncidentState, TimelineEvent
from dingpush.relay.stores import MemoryIncidentStore
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, text

pytestmark = pytest.mark.anyio

API_TOKEN = "alerts-dashboard-token-0123456789"
ORIGIN = "http://relay"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def _relay(server: EmulatorServer, incidents: MemoryIncidentStore, **extra: typing.Any) -> Relay:
    config = server.add_app("ops-app", groups=["Ops"], users=("alice",))
    (cid,) = config.groups
    app = AsyncApp(config.app_key, config.app_secret, api_base=server.url, token_cache=False)
    target = AppTarget("group", app, "app-group", open_conversation_id=cid, owns_app=True)
    settings = fast_settings(api_tokens=(API_TOKEN,))
    return Relay([target], settings=settings, incidents=incidents, **extra)


@contextlib.asynccontextmanager
async def _dashboard(relay: Relay) -> typing.AsyncIterator[httpx.AsyncClient]:
    app = create_app(relay, extra_routes=dashboard_routes(relay))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
            signed = await http.post(
                "/ui/login", data={"token": API_TOKEN, "next": "/"}, headers={"Origin": ORIGIN}
            )
            assert signed.status_code == 303
            yield http


async def _open(store: MemoryIncidentStore, title: str, key: str = "", route: str = "ops") -> int:
    incident = await store.open_incident(
        route=route,
        group_key=key or title,
        title=title,
        labels={"alertname": "DiskFull"},
        policy="page",
        targets=["group"],
        due_at=T0 + 300,
        now=T0,
    )
    return incident.number


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def test_the_list_shows_open_incidents_escaped(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, XSS)
    done = await _open(store, "Resolved one", key="r")
    await store.resolve(route="ops", group_key="r", now=T0 + 60)
    async with _dashboard(_relay(dingtalk_emulator, store)) as http:
        page = await http.get("/ui/alerts")
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
        assert f'data-incident="{number}"' in page.text
        assert f'data-incident="{done}"' not in page.text  # resolved: not open
        resolved = await http.get("/ui/alerts", params={"state": "resolved"})
        assert f'data-incident="{done}"' in resolved.text
        assert "1 min" in resolved.text  # its age: opened to resolved
        updates = (await http.get("/ui/alerts/updates")).json()["fragments"]
        assert "&lt;script&gt;" in updates["incidents-body"]
        assert (await http.get("/ui/alerts", params={"state": "nap"})).status_code == 400
        detail = await http.get(f"/ui/alerts/{number}")
        assert "<script>alert" not in detail.text and "&lt;script&gt;" in detail.text
        assert (await http.get("/ui/alerts/999")).status_code == 404
        home = await http.get("/")
        assert '/ui/alerts">Alerts</a>' in home.text


async def test_acknowledge_from_the_incident_page(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, "DiskFull on db-1")
    await store.record(number, TimelineEvent(T0 + 30, EventKind.DING, "alice", "phone DING"))
    await store.record(number, TimelineEvent(T0 + 40, EventKind.READ, "bob"))
    async with _dashboard(_relay(dingtalk_emulator, store)) as http:
        page = await http.get(f"/ui/alerts/{number}")
        assert "DING&#39;d" in page.text and "read by" in page.text and "phone DING" in page.text
        assert "Acknowledge" in page.text
        csrf = _csrf(page.text)
        path = f"/ui/alerts/{number}/ack"
        assert (
            await http.post(path, data={"csrf": "no"}, headers={"Origin": ORIGIN})
        ).status_code == 403
        elsewhere = await http.post(
            path, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403
        assert (await store.get(number)).state is IncidentState.OPEN  # type: ignore[union-attr]

        done = await http.post(path, data={"csrf": csrf, "by": "carol"}, headers={"Origin": ORIGIN})
        assert done.status_code == 303
        page = await http.get(done.headers["location"])
        assert "Acknowledged: the escalation stops" in page.text
        incident = await store.get(number)
        assert incident is not None and incident.acknowledged_by == "carol"
        assert incident.timeline[-1].detail == "dashboard"
        fragments = (await http.get(f"/ui/alerts/{number}/updates")).json()["fragments"]
        assert (
            "carol" in fragments["incident-timeline"]
            and "acknowledged" in fragments["incident-timeline"]
        )
        assert 'name="by"' not in fragments["incident-facts"]  # no second Acknowledge form

        other = await _open(store, "HighCPU", key="cpu")
        await store.resolve(route="ops", group_key="cpu", now=T0 + 90)
        late = await http.post(
            f"/ui/alerts/{other}/ack", data={"csrf": csrf}, headers={"Origin": ORIGIN}
        )
        assert late.status_code == 409 and "resolved already" in late.text


async def test_recall_an_incidents_messages(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryIncidentStore()
    number = await _open(store, "DiskFull on db-1")
    async with _dashboard(_relay(dingtalk_emulator, store)) as http:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        sent = await http.post(
            "/v1/messages", json={"target": "group", "message": text("disk full")}, headers=auth
        )
        message_id = sent.json()["id"]

        async def delivered() -> bool:
            reply = await http.get(f"/v1/messages/{message_id}", headers=auth)
            return bool(reply.json()["status"] == "delivered")

        await eventually(delivered, what="the delivery")
        await store.attach_messages(number, [message_id])
        message_page = await http.get(f"/ui/messages/{message_id}")
        assert f'/ui/alerts/{number}">#{number} DiskFull on db-1</a>' in message_page.text
        confirm = await http.get(f"/ui/alerts/{number}/recall")
        assert confirm.status_code == 200 and "for everyone" in confirm.text
        done = await http.post(
            f"/ui/alerts/{number}/recall",
            data={"csrf": _csrf(confirm.text)},
            headers={"Origin": ORIGIN},
        )
        assert done.status_code == 303
        page = await http.get(done.headers["location"])
        assert "Recalled 1 message." in page.text
        assert "recalled" in page.text and "api token #1" in page.text
    keys = [k for k in dingtalk_emulator.emulator.app_messages() if k.recalled_at is not None]
    assert len(keys) == 1


async def test_times_are_shown_in_the_routes_zone(dingtalk_emulator: EmulatorServer) -> None:
    settings = AlertSettings(
        routes={
            "ops": Route(
                timezone="Asia/Shanghai",
                targets=("group",),
                routes=(Route(name="db", timezone="Europe/Berlin"),),
            )
        }
    )
    store = MemoryIncidentStore()
    shanghai = await _open(store, "in Shanghai", key="s")
    berlin = await _open(store, "in Berlin", key="b", route="ops/db")
    relay = _relay(dingtalk_emulator, store, alerts=AlertReceivers(settings))
    assert str(zone_for(relay, "ops")) == "Asia/Shanghai"
    assert str(zone_for(relay, "ops/db")) == "Europe/Berlin"
    assert zone_for(relay, "elsewhere") is None
    async with _dashboard(relay) as http:
        page = await http.get(f"/ui/alerts/{shanghai}")
        assert "2027-01-15 16:00:00 CST" in page.text
        page = await http.get(f"/ui/alerts/{berlin}")
        assert "2027-01-15 09:00:00 CET" in page.text
    assert datetime.datetime.fromtimestamp(T0, datetime.UTC).hour == 8


def test_ages_read_naturally() -> None:
    assert [age(s) for s in (5, 300, 3600, 3 * 3600 + 720, 2 * 86400 + 4 * 3600)] == [
        "5 s",
        "5 min",
        "1 h",
        "3 h 12 min",
        "2 d 4 h",
    ]
