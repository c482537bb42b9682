"""The chat view's pages, fragments and event stream, over HTTP (the browser tests drive the UI)."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest

from dingpush import App, BadCredentials, Robot, SecurityRejected
from dingpush.emulator import Emulator, RobotConfig
from dingpush.emulator._chat import explain_rejection, rejection_title
from dingpush.emulator._records import RequestRecord
from dingpush.testing import EmulatorServer, FakeClock

from ._support import SECRET, TOKEN, Send, text

pytestmark = pytest.mark.anyio


def chat_url(emulator: Emulator, robot: str = "ops") -> str:
    cid = emulator.conversation_of(robot).id
    return "/_emulator/chat/" + urllib.parse.quote(cid, safe="")


async def test_home_shows_the_latest_conversation(
    client: httpx.AsyncClient, emulator: Emulator, send: Send, clock: FakeClock
) -> None:
    emulator.add_robot(RobotConfig("ci", "ci-token-0123456789abcdef", group="Builds"))
    await send(text("from ops"))
    clock.advance(1)
    await send(text("from ci"), token="ci-token-0123456789abcdef")

    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Builds · DingTalk emulator</title>" in page.text
    assert "from ci" in page.text and "from ops" not in page.text.split("<main")[1]
    assert page.text.index("Builds") < page.text.index("ops group")  # latest first

    ops = await client.get(chat_url(emulator))
    assert ops.status_code == 200 and "from ops" in ops.text.split("<main")[1]


async def test_pages_forbid_inline_scripts(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_empty_emulator(client: httpx.AsyncClient, emulator: Emulator) -> None:
    emulator.reset(robots=True)
    page = await client.get("/")
    assert page.status_code == 200
    assert "No conversations yet" in page.text


async def test_unknown_conversation_is_a_404_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/_emulator/chat/cidNOPE")
    assert page.status_code == 404
    assert "No such conversation" in page.text and "cidNOPE" in page.text
    updates = await client.get("/_emulator/chat/cidNOPE/updates")
    assert updates.status_code == 404


async def test_updates_carry_only_new_messages(
    client: httpx.AsyncClient, emulator: Emulator, send: Send
) -> None:
    await send(text("one"))
    await send(text("two"))
    first = emulator.messages()[0].id
    updates = (await client.get(chat_url(emulator) + f"/updates?after={first}")).json()
    assert updates["count"] == 2
    assert updates["last_id"] == emulator.messages()[-1].id
    assert len(updates["messages"]) == 1 and "two" in updates["messages"][0]
    assert updates["messages"][0].startswith("<li>")
    assert updates["version"] == emulator.version
    assert set(updates) >= {"conversations", "rejections", "robots"}
    bad = await client.get(chat_url(emulator) + "/updates?after=x")
    assert bad.status_code == 400


async def test_rejections_are_explained(
    client: httpx.AsyncClient, emulator: Emulator, send: Send
) -> None:
    emulator.update_robot("ops", keywords=("ALERT",))
    await send(text("no keyword here"))
    await send(text("ALERT"), token="f" * 64)
    page = (await client.get(chat_url(emulator))).text
    aside = page.split("<aside")[1]
    assert aside.index("Unknown token") < aside.index("Keyword missing")  # newest first
    assert "keywords (ALERT)" in aside
    assert "keywords not in content" in aside
    assert "ffff…ffff" in aside and "f" * 64 not in page


async def test_rejections_of_other_robots_stay_in_their_conversation(
    client: httpx.AsyncClient, emulator: Emulator, send: Send
) -> None:
    emulator.add_robot(RobotConfig("ci", "ci-token-0123456789abcdef", keywords=("BUILD",)))
    await send(text("nothing"), token="ci-token-0123456789abcdef")
    ops_page = (await client.get(chat_url(emulator, "ops"))).text
    ci_page = (await client.get(chat_url(emulator, "ci"))).text
    assert "Keyword missing" not in ops_page
    assert "Keyword missing" in ci_page


async def test_secrets_and_tokens_never_appear(
    client: httpx.AsyncClient, emulator: Emulator, send: Send
) -> None:
    emulator.update_robot("ops", secret=SECRET)
    await send(text("unsigned"))
    for path in ("/", chat_url(emulator), chat_url(emulator) + "/updates"):
        body = (await client.get(path)).text
        assert TOKEN not in body and SECRET not in body
    assert "signed (加签)" in (await client.get("/")).text


async def test_static_assets_are_served(client: httpx.AsyncClient) -> None:
    css = await client.get("/_emulator/static/dingpush.css")
    script = await client.get("/_emulator/static/chat.js")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert script.status_code == 200 and "EventSource" in script.text


async def test_version_moves_with_every_change(emulator: Emulator, send: Send) -> None:
    seen = {emulator.version}
    await send(text("accepted"))
    seen.add(emulator.version)
    await send(text("refused"), token="f" * 64)
    seen.add(emulator.version)
    emulator.add_robot(RobotConfig("ci", "ci-token-0123456789abcdef"))
    seen.add(emulator.version)
    emulator.reset()
    seen.add(emulator.version)
    assert len(seen) == 5


def test_event_stream_announces_changes(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", "ops-token-0123456789abcdef")
    with (
        httpx.Client(base_url=dingtalk_emulator.url, timeout=10) as client,
        client.stream("GET", "/_emulator/chat/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        versions = []
        lines = stream.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                versions.append(json.loads(line[6:]))
                if len(versions) == 1:
                    with Robot(dingtalk_emulator.webhook_url("ops")) as robot:
                        robot.send("hello")
                else:
                    break
    assert versions[0] != versions[1] == dingtalk_emulator.emulator.version


def test_explanations_name_the_robot_settings() -> None:
    robot = RobotConfig("ops", TOKEN, rate_limit=5, rate_window=60, lockout=600)
    record = RequestRecord(
        id=1,
        time=0.0,
        path="/robot/send",
        robot="ops",
        token="6c2a…0ee9",
        client_ip="127.0.0.1",
        msgtype="text",
        msg_uuid=None,
        errcode=130101,
        errmsg="send too fast, exceed 20 times per minute",
        reason="throttled",
        accepted=False,
        body_size=30,
    )
    why = explain_rejection(record, robot, 20_000)
    assert "more than 5 messages in 1 minute" in why and "for 10 minutes" in why


def test_a_real_robot_refusal_reaches_the_page(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", secret=SECRET)
    with Robot(dingtalk_emulator.webhook_url("ops")) as robot, pytest.raises(SecurityRejected):
        robot.send("unsigned")
    page = httpx.get(dingtalk_emulator.url + "/", timeout=10).text
    assert "Signature missing" in page and "310000" in page


def test_a_refused_app_credential_is_titled_in_words(dingtalk_emulator: EmulatorServer) -> None:
    # docs/views.md: the reason in words, never a code run together ("Invalidclientidorsecret").
    config = dingtalk_emulator.add_app("ops", groups=["Ops"])
    with App(config.app_key, "wrong-secret", api_base=dingtalk_emulator.url) as app:
        with pytest.raises(BadCredentials):
            app.access_token()
    page = httpx.get(dingtalk_emulator.url + "/", timeout=10).text
    rejections = page.split('id="rejections"')[1]
    assert "App credentials refused" in rejections and "Client Secret" in rejections
    assert "Invalidclientidorsecret" not in page


def test_a_group_the_app_robot_posts_in_lists_it(dingtalk_emulator: EmulatorServer) -> None:
    config = dingtalk_emulator.add_app("ops", groups=["Ops"])
    [cid] = config.groups
    with dingtalk_emulator.app_client("ops") as app:
        app.group(cid).send("deploy finished")
    page = httpx.get(dingtalk_emulator.url + "/", timeout=10).text
    header = page.split('id="robots"')[1].split("</p>")[0]
    assert "No robot posts here now" not in header
    assert "<strong>ops</strong>" in header and f"AppKey {config.app_key}" in header
    assert config.app_secret not in page


def test_one_to_one_chats_list_the_app_that_wrote(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_app("ops", users=["alice"])
    with dingtalk_emulator.app_client("ops") as app:
        app.users(["alice"]).send("hi alice")
    cid = dingtalk_emulator.emulator.conversation_of_user("alice").id
    page = httpx.get(f"{dingtalk_emulator.url}/_emulator/chat/{cid}", timeout=10).text
    header = page.split('id="robots"')[1].split("</p>")[0]
    assert "<strong>ops</strong>" in header and "app robot" in header


def _record(path: str, reason: str) -> RequestRecord:
    return RequestRecord(
        id=1,
        time=0.0,
        path=path,
        robot=None,
        token="",
        client_ip=None,
        msgtype=None,
        msg_uuid=None,
        errcode=None,
        errmsg=None,
        reason=reason,
        accepted=False,
        body_size=0,
    )


@pytest.mark.parametrize(
    ("path", "reason", "title"),
    [
        ("/v1.0/oauth2/accessToken", "invalidClientIdOrSecret", "App credentials refused"),
        ("/gettoken", "bad_credentials", "App credentials refused"),
        ("/v1.0/robot/groupMessages/send", "invalid_token", "Access token refused"),
        ("/media/upload", "missing_token", "Access token missing"),
        ("/v1.0/robot/groupMessages/send", "invalidParameter.robotCode.auth", "Wrong robotCode"),
        ("/v1.0/robot/groupMessages/send", "miss.param.content", "Missing field"),
        ("/v1.0/robot/groupMessages/send", "invalid.openConversationId", "Unknown group"),
        ("/topapi/message/corpconversation/asyncsend_v2", "too_large", "Message too large"),
        ("/media/upload", "too_large", "File too large"),
        ("/robot/send", "wrong_method", "Wrong HTTP method"),
        (
            "/v1.0/robot/groupMessages/send",
            "invalidParameter.token.invalid",
            "Invalid parameter: token invalid",
        ),
    ],
)
def test_every_refusal_has_a_title_in_words(path: str, reason: str, title: str) -> None:
    record = _record(path, reason)
    assert rejection_title(record) == title
    assert explain_rejection(record, None, 20_000)


async def test_a_wrong_method_is_listed_with_its_reason(
    client: httpx.AsyncClient, emulator: Emulator
) -> None:
    await client.get(f"/robot/send?access_token={TOKEN}")
    page = (await client.get(chat_url(emulator))).text
    assert "Wrong HTTP method" in page and "This endpoint takes POST" in page and "43002" in page
