"""What a web page in the user's browser can make a relay without API tokens do: nothing.

Issue 11, item 3: a page could post ``<form enctype="text/plain">`` or a no-cors ``fetch`` to
``http://127.0.0.1:8080/v1/messages`` and send through the user's robots, and a DNS-rebinding
page (``Host: evil.example``) was answered and passed the dashboard's origin check.
"""

from __future__ import annotations

import json
import pathlib
import typing

import httpx
import pytest

from dingpush.relay import Relay, RobotTarget, TargetOptions, create_app, dashboard_routes
from dingpush.relay._dashboard_auth import DashboardAuth
from dingpush.relay._http import RelayHosts
from dingpush.relay._serve import RelayServer, embedded
from dingpush.relay._settings import RelaySettings
from dingpush.testing import EmulatorServer

from ._support import fast_settings, serving, text

pytestmark = pytest.mark.anyio

TOKEN = "cross-site-api-token-0123456789"
INGRESS = "ingress-token-cross-site"
BODY = {"target": "ops", "message": text("from a web page")}


def _relay(emulator: EmulatorServer, **settings: typing.Any) -> Relay:
    emulator.add_robot("ops")
    target = RobotTarget(
        "ops", emulator.webhook_url("ops"), options=TargetOptions(ingress_token=INGRESS)
    )
    return Relay([target], settings=fast_settings(**settings))


async def _stored(api: httpx.AsyncClient) -> int:
    return len((await api.get("/v1/messages")).json()["items"])


async def test_the_json_api_takes_only_json(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator)) as api:
        content = httpx.Request("POST", "/", json=BODY).content
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else {}
            for path in ("/v1/messages", "/v1/messages:batch"):
                reply = await api.post(path, content=content, headers=headers)
                assert reply.status_code == 415, (path, content_type)
                assert reply.headers["content-type"] == "application/problem+json"
                assert "application/json" in reply.json()["detail"]
        assert await _stored(api) == 0
        charset = {"Content-Type": "application/json; charset=utf-8"}
        assert (await api.post("/v1/messages", content=content, headers=charset)).status_code == 202
        # The ingress takes what DingTalk takes (protocol §1.1): JSON, or DingTalk's 43004.
        plain = await api.post(
            f"/robot/send?access_token={INGRESS}",
            content=httpx.Request("POST", "/", json=text("x")).content,
            headers={"Content-Type": "text/plain"},
        )
        assert plain.status_code == 200 and plain.json()["errcode"] == 43004
        assert await _stored(api) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://relay:8081"},  # another port of the same host is another origin
        {"Origin": "http://relay", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_without_tokens_browser_cross_site_requests_change_nothing(
    dingtalk_emulator: EmulatorServer, headers: dict[str, str]
) -> None:
    async with serving(_relay(dingtalk_emulator)) as api:
        sent = await api.post("/v1/messages", json=BODY, headers=headers)
        assert sent.status_code == 403
        assert "another site" in sent.json()["detail"]
        batch = await api.post("/v1/messages:batch", json={"messages": [BODY]}, headers=headers)
        assert batch.status_code == 403
        retry = await api.post("/v1/messages/some-id/retry", headers=headers)
        assert retry.status_code == 403
        ingress = await api.post(
            f"/robot/send?access_token={INGRESS}", json=text("x"), headers=headers
        )
        assert ingress.json()["errcode"] != 0
        assert await _stored(api) == 0
        assert (await api.get("/v1/targets", headers=headers)).status_code == 200  # reads stay


async def test_same_origin_and_tools_are_welcome(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator)) as api:
        for headers in (
            {},  # curl, Alertmanager: no Origin, no Fetch Metadata
            {"Origin": "http://relay", "Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
        ):
            assert (await api.post("/v1/messages", json=BODY, headers=headers)).status_code == 202


async def test_with_tokens_the_token_decides(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(TOKEN,))
    async with serving(relay) as api:
        headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "https://ci.example"}
        assert (await api.post("/v1/messages", json=BODY, headers=headers)).status_code == 202


@pytest.mark.parametrize(
    "host", ["evil.example:8080", "evil.example", "127.0.0.1.evil.example", "localhost.evil"]
)
async def test_a_host_the_relay_is_not_answers_421(
    dingtalk_emulator: EmulatorServer, host: str
) -> None:
    async with serving(_relay(dingtalk_emulator)) as api:
        for method, path in (("POST", "/v1/messages"), ("GET", "/v1/messages"), ("GET", "/docs")):
            reply = await api.request(method, path, json=BODY, headers={"Host": host})
            assert reply.status_code == 421, (method, path)
            assert "allowed_hosts" in reply.json()["detail"]
        assert await _stored(api) == 0
        # Probes and metrics answer whatever name they are scraped by (a pod's IP).
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await api.get(path, headers={"Host": host})).status_code == 200


@pytest.mark.parametrize(
    ("host", "settings"),
    [
        ("localhost:8080", {}),
        ("LOCALHOST", {}),
        ("127.0.0.1:8080", {}),
        ("[::1]:8080", {}),
        ("relay.lan:8080", {"allowed_hosts": ("relay.lan",)}),
        ("relay.example.com", {"public_url": "https://relay.example.com"}),
        ("10.0.0.5:8080", {"host": "10.0.0.5", "api_tokens": (TOKEN,)}),
    ],
)
async def test_the_hosts_the_relay_answers_to(
    dingtalk_emulator: EmulatorServer, host: str, settings: dict[str, typing.Any]
) -> None:
    async with serving(_relay(dingtalk_emulator, **settings)) as api:
        headers = {"Host": host, "Authorization": f"Bearer {TOKEN}"}
        assert (await api.get("/v1/targets", headers=headers)).status_code == 200


def test_a_rebinding_host_over_real_http_is_refused(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, port=0, allowed_hosts=())
    with RelayServer(relay) as server:
        evil = httpx.post(
            f"{server.url}/v1/messages", json=BODY, headers={"Host": "evil.example:8080"}
        )
        assert evil.status_code == 421
        port = server.url.rsplit(":", 1)[1]
        own = httpx.post(
            f"{server.url}/v1/messages",
            json=BODY,
            headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        )
        assert own.status_code == 202


def test_settings_refuse_a_wildcard_without_tokens_and_bad_public_urls() -> None:
    from dingpush import ConfigError

    with pytest.raises(ConfigError, match="allowed_hosts"):
        RelaySettings(allowed_hosts=("*",))
    RelaySettings(allowed_hosts=("*",), api_tokens=(TOKEN,))
    with pytest.raises(ConfigError, match="public_url"):
        RelaySettings(public_url="relay.example.com")


async def test_the_dashboards_origin_comes_from_configuration_not_from_host(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # Even where any Host is let through ("*", with tokens), a form posted by a page at the
    # rebinding name is not "same site": the dashboard's own origins come from the settings.
    relay = _relay(dingtalk_emulator, api_tokens=(TOKEN,), allowed_hosts=("*",))
    app = create_app(relay, extra_routes=dashboard_routes(relay))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
            reply = await http.post(
                "/ui/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
            )
            assert reply.status_code == 403
            assert "dingpush_session" not in reply.headers.get("set-cookie", "")


def test_own_origins() -> None:
    hosts = RelayHosts.from_settings(
        RelaySettings(allowed_hosts=("relay.lan",), public_url="https://relay.example.com/")
    )
    own = [
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://relay.lan:8080",
        "https://relay.example.com",
        "https://relay.example.com:443",
    ]
    for origin in own:
        assert hosts.own_origin(origin, 8080, origin.partition(":")[0]), origin
    for origin in (
        "http://localhost:8081",
        "http://evil.example:8080",
        "https://relay.example.com:8443",
        "http://relay.example.com",
        "null",
        "",
        "http://localhost:notaport",
    ):
        assert not hosts.own_origin(origin, 8080, "http"), origin
    assert not hosts.own_origin("https://localhost:8080", 8080, "http")  # another origin
    assert DashboardAuth((), hosts=hosts).required is False


def test_the_embedded_emulator_takes_no_change_from_another_site(tmp_path: pathlib.Path) -> None:
    # dingpush serve with no configuration mounts the emulator at /emulator: a page the user
    # opened could post text/plain to its control API (faults, robots, reset) and break the
    # sandbox, or post to its robot/send. Reading stays open; the chat view's own page and
    # tools are welcome.
    setup = embedded(port=0, directory=tmp_path)
    with RelayServer(setup.relay, emulator=setup.emulator, sock=setup.sock):
        with httpx.Client(base_url=setup.url) as http:
            for headers in (
                {"Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "same-site"},
                {"Origin": "http://evil.example"},
            ):
                for path, body in (
                    ("/emulator/_emulator/faults", {"kind": "drop", "count": None}),
                    ("/emulator/_emulator/robots", {"name": "evil", "token": "evil-token"}),
                    ("/emulator/_emulator/reset", {"robots": True}),
                    ("/emulator/robot/send?access_token=sandbox-token", text("from a page")),
                ):
                    reply = http.post(
                        path,
                        content=json.dumps(body),
                        headers={"Content-Type": "text/plain", **headers},
                    )
                    assert reply.status_code == 403, (path, headers, reply.text)
                    assert "another site" in reply.json()["detail"]
                cross = {"Sec-Fetch-Site": "cross-site", **headers}
                assert http.get("/emulator/_emulator/robots", headers=cross).status_code == 200
            assert setup.emulator.faults() == []
            assert [robot.name for robot in setup.emulator.robots()] == ["sandbox"]
            assert setup.emulator.messages() == []
            own = {"Origin": setup.url, "Sec-Fetch-Site": "same-origin"}
            fault = {"kind": "drop", "count": 1, "robot": "nobody"}
            assert (
                http.post("/emulator/_emulator/faults", json=fault, headers=own).status_code == 201
            )
            assert http.delete("/emulator/_emulator/faults").status_code == 200
            # the chat view still finds its own routes (its style sheet) under the mount
            assert http.get("/emulator/").status_code == 200
            assert http.get("/emulator/_emulator/chat/nobody").status_code == 404
