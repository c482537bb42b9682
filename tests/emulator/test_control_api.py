"""The /_emulator JSON API: the same operations as the Python API, secrets never shown."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dingpush._masking import mask
from dingpush.emulator import Emulator

from ._support import SECRET, TOKEN, Send, text

pytestmark = pytest.mark.anyio

NEW_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"


async def test_list_robots_masks_tokens_and_hides_secrets(
    client: httpx.AsyncClient, emulator: Emulator
) -> None:
    emulator.update_robot("ops", secret=SECRET, keywords=("ALERT",))
    response = await client.get("/_emulator/robots")

    [robot] = response.json()["robots"]
    assert robot == {
        "name": "ops",
        "token": mask(TOKEN),
        "signed": True,
        "keywords": ["ALERT"],
        "ip_allowlist": [],
        "group": "ops group",
        "conversation_id": emulator.conversation_of("ops").id,
        "rate_limit": 20,
        "rate_window": 60.0,
        "lockout": 600.0,
        "status": "active",
        "accept_image": False,
    }
    assert TOKEN not in response.text and SECRET not in response.text


async def test_add_get_patch_delete_a_robot(client: httpx.AsyncClient, send: Send) -> None:
    created = await client.post(
        "/_emulator/robots",
        json={"name": "ci", "token": NEW_TOKEN, "secret": SECRET, "keywords": ["CI"]},
    )
    assert created.status_code == 201
    assert created.json()["signed"] is True and "secret" not in created.json()
    assert (await client.get("/_emulator/robots/ci")).json()["keywords"] == ["CI"]

    patched = await client.patch("/_emulator/robots/ci", json={"status": "disabled"})
    assert patched.json()["status"] == "disabled"
    assert (await send(text("CI"), token=NEW_TOKEN)).json()["errcode"] == 400102

    await client.patch("/_emulator/robots/ci", json={"status": "active", "secret": None})
    assert (await send(text("CI"), token=NEW_TOKEN)).json()["errcode"] == 0

    deleted = await client.delete("/_emulator/robots/ci")
    assert deleted.json() == {"deleted": "ci"}
    assert (await send(text("CI"), token=NEW_TOKEN)).json()["errcode"] == 300001
    assert (await client.get("/_emulator/robots/ci")).status_code == 404


async def test_patching_the_token_revokes_the_old_one(
    client: httpx.AsyncClient, send: Send
) -> None:
    await client.patch("/_emulator/robots/ops", json={"token": NEW_TOKEN})
    assert (await send(text())).json()["errcode"] == 300001
    assert (await send(text(), token=NEW_TOKEN)).json()["errcode"] == 0


async def test_posting_a_robot_again_replaces_it(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/robots", json={"name": "ops", "token": TOKEN, "keywords": ["X"]})
    robots = (await client.get("/_emulator/robots")).json()["robots"]
    assert [(r["name"], r["keywords"]) for r in robots] == [("ops", ["X"])]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/robots", {"name": "x"}, 400),
        ("POST", "/_emulator/robots", {"name": "x", "token": "t", "colour": "red"}, 400),
        ("POST", "/_emulator/robots", {"name": "x", "token": "t", "keywords": "ALERT"}, 400),
        ("POST", "/_emulator/robots", {"name": "x", "token": "t", "ip_allowlist": ["::1"]}, 400),
        ("POST", "/_emulator/robots", {"name": "x", "token": TOKEN}, 400),
        ("POST", "/_emulator/robots", [1, 2], 400),
        ("PATCH", "/_emulator/robots/ops", {"rate_limit": 0}, 400),
        ("PATCH", "/_emulator/robots/ops", {"name": "renamed"}, 400),
        ("PATCH", "/_emulator/robots/ops", {"colour": "red"}, 400),
        ("PATCH", "/_emulator/robots/nobody", {"status": "disabled"}, 404),
        ("DELETE", "/_emulator/robots/nobody", None, 404),
        ("POST", "/_emulator/faults", {"kind": "explode"}, 400),
        ("POST", "/_emulator/faults", {"kind": "drop", "probability": "often"}, 400),
        ("POST", "/_emulator/faults", {"count": 1}, 400),
        ("PATCH", "/_emulator/options", {"body_limit": -1}, 400),
        ("PATCH", "/_emulator/options", {"colour": "red"}, 400),
        ("GET", "/_emulator/messages?since_id=abc", None, 400),
        ("GET", "/_emulator/requests?accepted=maybe", None, 400),
        ("GET", "/_emulator/nothing-here", None, 404),
        ("GET", "/nothing-here", None, 404),
        ("PUT", "/_emulator/robots", None, 405),
    ],
)
async def test_errors_are_json(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)
    assert TOKEN not in response.text


async def test_messages_and_filters(client: httpx.AsyncClient, send: Send) -> None:
    await client.post("/_emulator/robots", json={"name": "ci", "token": NEW_TOKEN, "group": "CI"})
    await send(text("one", msgUuid="u-1"))
    await send(text("two"), token=NEW_TOKEN)
    await send(text("three"))

    messages = (await client.get("/_emulator/messages")).json()["messages"]
    first = messages[0]
    assert set(first) == {
        "id",
        "conversation_id",
        "sender",
        "channel",
        "msgtype",
        "payload",
        "time",
        "msg_uuid",
        "at",
    }
    assert first["payload"] == {"msgtype": "text", "text": {"content": "one"}}
    assert first["msg_uuid"] == "u-1" and first["channel"] == "robot-webhook"
    assert first["at"] == {"mobiles": [], "user_ids": [], "dingtalk_ids": [], "all": False}

    async def contents(query: str) -> list[str]:
        found = (await client.get(f"/_emulator/messages?{query}")).json()["messages"]
        return [m["payload"]["text"]["content"] for m in found]

    assert await contents("robot=ops") == ["one", "three"]
    assert await contents("conversation=CI") == ["two"]
    assert await contents(f"conversation={first['conversation_id']}") == ["one", "three"]
    assert await contents(f"since_id={first['id']}") == ["two", "three"]
    assert await contents(f"since_id={first['id']}&limit=1") == ["two"]

    conversations = (await client.get("/_emulator/conversations")).json()["conversations"]
    assert [(c["title"], c["kind"], c["message_count"]) for c in conversations] == [
        ("ops group", "group", 2),
        ("CI", "group", 1),
    ]


async def test_requests_rejections_and_stats(
    client: httpx.AsyncClient, send: Send, emulator: Emulator
) -> None:
    emulator.update_robot("ops", keywords=("ALERT",))
    await send(text("ALERT", msgUuid="u"))
    await send(text("ALERT", msgUuid="u"))
    await send(text("quiet"))
    await send(text(), token="unknown")

    requests = (await client.get("/_emulator/requests")).json()["requests"]
    assert [r["reason"] for r in requests] == ["accepted", "duplicate", "keyword", "unknown_token"]
    accepted = (await client.get("/_emulator/requests?accepted=true&robot=ops")).json()
    assert [r["reason"] for r in accepted["requests"]] == ["accepted"]

    [keyword, unknown] = (await client.get("/_emulator/rejections")).json()["rejections"]
    assert keyword == {
        "id": keyword["id"],
        "time": emulator.clock.time(),
        "path": "/robot/send",
        "robot": "ops",
        "token": mask(TOKEN),
        "client_ip": "127.0.0.1",
        "msgtype": "text",
        "msg_uuid": None,
        "errcode": 310000,
        "errmsg": "keywords not in content",
        "reason": "keyword",
        "accepted": False,
        "body_size": keyword["body_size"],
        "http_status": 200,
        "fault": None,
        "message_id": None,
        "code": None,  # the v1.0 code of app API refusals
        "findings": [],  # what DingTalk documents but does not refuse (the @ cap)
    }
    assert unknown["robot"] is None and unknown["token"] == "****"
    only_ops = (await client.get("/_emulator/rejections?robot=ops")).json()["rejections"]
    assert [r["reason"] for r in only_ops] == ["keyword"]

    stats = (await client.get("/_emulator/stats")).json()
    assert stats == {
        "robots": {
            "ops": {
                "accepted": 1,
                "duplicates": 1,
                "rejected": {"keyword": 1},
                "locked_until": None,
                "in_window": 1,
            }
        },
        "unknown_token": 1,
        "requests": 4,
    }


async def test_faults_over_the_api(client: httpx.AsyncClient, send: Send) -> None:
    created = await client.post(
        "/_emulator/faults", json={"kind": "errcode", "errcode": -1, "count": 2, "robot": "ops"}
    )
    assert created.status_code == 201
    assert created.json()["remaining"] == 2
    assert (await send(text())).json()["errcode"] == -1
    [pending] = (await client.get("/_emulator/faults")).json()["faults"]
    assert (pending["remaining"], pending["fired"]) == (1, 1)
    assert (await client.delete("/_emulator/faults")).json() == {"faults": []}
    assert (await send(text())).json()["errcode"] == 0


async def test_options_over_the_api(client: httpx.AsyncClient, send: Send) -> None:
    options = (await client.get("/_emulator/options")).json()
    assert options["rate_limit_errcode"] == 130101 and options["body_limit"] == 20000
    patched = await client.patch("/_emulator/options", json={"unknown_token_errcode": 400101})
    assert patched.json()["unknown_token_errcode"] == 400101
    assert (await send(text(), token="nope")).json()["errcode"] == 400101


async def test_reset_keeps_robots_unless_asked(
    client: httpx.AsyncClient, send: Send, emulator: Emulator
) -> None:
    await send(text())
    await client.post("/_emulator/faults", json={"kind": "drop"})
    assert (await client.post("/_emulator/reset")).json() == {"reset": True}
    assert emulator.messages() == [] and emulator.requests() == [] and emulator.faults() == []
    assert [r.name for r in emulator.robots()] == ["ops"]
    await client.post("/_emulator/reset", json={"robots": True})
    assert emulator.robots() == []


async def test_no_response_ever_contains_a_secret_or_raw_token(
    client: httpx.AsyncClient, send: Send, emulator: Emulator
) -> None:
    emulator.update_robot("ops", secret=SECRET)
    await send(text())  # refused: unsigned
    emulator.inject_fault("errcode", robot="ops")
    paths = [
        "/_emulator/robots",
        "/_emulator/robots/ops",
        "/_emulator/conversations",
        "/_emulator/messages",
        "/_emulator/requests",
        "/_emulator/rejections",
        "/_emulator/stats",
        "/_emulator/faults",
        "/_emulator/options",
    ]
    for path in paths:
        body = (await client.get(path)).text
        assert SECRET not in body and TOKEN not in body, path
    assert SECRET not in repr(emulator.robot("ops")) and TOKEN not in repr(emulator.robot("ops"))


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"kind": "drop", "robot": "\\ud800"}'],
    ids=["deep", "lone-surrogate"],
)
async def test_a_body_the_parser_cannot_hold_is_a_400_not_a_500(
    client: httpx.AsyncClient, emulator: Emulator, body: bytes
) -> None:
    # 100,000 levels raised RecursionError in the control API (a 500).
    response = await client.post(
        "/_emulator/faults", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    assert emulator.faults() == []
