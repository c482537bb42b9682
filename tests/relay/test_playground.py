"""The dashboard's template playground over HTTP: the page, the render endpoint (the relay's own
routes, templates and people; nothing stored), its refusals, and nothing unescaped."""

from __future__ import annotations

import contextlib
import json
import re
import typing
from collections.abc import AsyncIterator

import httpx
import pytest

from dingpush.alerts import AlertSettings, Person, Route, TemplateSpec, sample
from dingpush.relay import AlertReceivers, Relay, RobotTarget, create_app, dashboard_routes

from ._support import fast_settings

pytestmark = pytest.mark.anyio

API_TOKEN = "playground-api-token-0123456789"
WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=playground0123456789abcdef"


def _relay(**settings: typing.Any) -> Relay:
    alerts = AlertSettings(
        routes={"ops": Route(targets=["ops"], mention=["alice"])},
        templates={"short": TemplateSpec(source="### {{ headline }} ({{ alerts | length }})")},
        people={"alice": Person(user_id="manager4220")},
    )
    return Relay(
        [RobotTarget("ops", WEBHOOK)],
        settings=fast_settings(**settings),
        alerts=AlertReceivers(alerts),
    )


@contextlib.asynccontextmanager
async def _dashboard(relay: Relay) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(relay, extra_routes=dashboard_routes(relay))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            yield http


def _body(name: str = "alertmanager-firing", **changes: object) -> dict[str, object]:
    kind, body = sample(name)
    return {"route": "ops", "template": "", "kind": kind, "payload": json.dumps(body), **changes}


async def test_the_page_offers_routes_templates_and_samples() -> None:
    async with _dashboard(_relay()) as http:
        page = await http.get("/ui/playground")
        assert page.status_code == 200
        html = page.text
        assert '<option value="ops">ops</option>' in html
        assert '<option value="short">short</option>' in html
        assert "a 50-alert group" in html and "Grafana: firing" in html
        assert "playground.js" in html
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in html  # no inline script: the samples travel in a data attribute
        script = await http.get("/ui/static/playground.js")
        assert script.status_code == 200


async def test_render_answers_the_message_its_bytes_and_mentions_and_stores_nothing() -> None:
    async with _dashboard(_relay()) as http:
        reply = await http.post("/ui/playground/render", json=_body())
        assert reply.status_code == 200, reply.text
        (message,) = reply.json()["messages"]
        assert message["target"] == "ops" and message["template"] == "alertmanager"
        assert message["mentions"] == ["@manager4220"]
        assert message["bytes"] > 200
        assert "HighCPU" in message["html"] and "class=" in message["html"]
        short = await http.post("/ui/playground/render", json=_body(template="short"))
        assert "HighCPU (1)" in short.json()["messages"][0]["html"]
        storm = await http.post("/ui/playground/render", json=_body("alertmanager-storm"))
        assert storm.json()["messages"][0]["alerts"] == 50
        assert (await http.get("/v1/messages")).json()["items"] == []


async def test_a_malformed_body_is_shown_with_its_pointer() -> None:
    async with _dashboard(_relay()) as http:
        reply = await http.post("/ui/playground/render", json=_body(payload='{"version": "4"}'))
        answer = reply.json()
        assert answer["messages"] == [] and answer["pointer"] == "/alerts"
        assert "alertmanager payload" in answer["error"]


async def test_label_values_stay_text_in_the_rendered_html() -> None:
    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"]["instance"] = (
        "<img src=x onerror=alert(1)> [x](https://evil.example)"
    )
    async with _dashboard(_relay()) as http:
        reply = await http.post(
            "/ui/playground/render", json=_body(payload=json.dumps(body), kind=kind)
        )
        html = reply.json()["messages"][0]["html"]
        assert "<img src=x" not in html
        # A bare URL is auto-linked as DingTalk does (its own text shows), but the label makes
        # no link of its own: no "x" hiding where it goes.
        assert ">x</a>" not in html


async def test_with_tokens_it_wants_a_session_and_the_pages_csrf_token() -> None:
    async with _dashboard(_relay(api_tokens=(API_TOKEN,))) as http:
        assert (await http.post("/ui/playground/render", json=_body())).status_code == 401
        page = await http.get("/ui/playground")
        assert page.status_code == 303
        login = await http.post(
            "/ui/login",
            data={"token": API_TOKEN, "next": "/ui/playground"},
            headers={"Origin": "http://relay"},
        )
        assert login.status_code == 303
        page = await http.get("/ui/playground")
        found = re.search(r'data-csrf="([^"]+)"', page.text)
        assert found is not None
        refused = await http.post("/ui/playground/render", json=_body())
        assert refused.status_code == 403
        wrong = await http.post(
            "/ui/playground/render",
            content=json.dumps(_body()),
            headers={"X-CSRF-Token": found.group(1), "Content-Type": "text/plain"},
        )
        assert wrong.status_code == 415
        allowed = await http.post(
            "/ui/playground/render", json=_body(), headers={"X-CSRF-Token": found.group(1)}
        )
        assert allowed.status_code == 200 and allowed.json()["messages"]
