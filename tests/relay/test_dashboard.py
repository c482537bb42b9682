"""The relay's dashboard over HTTP: sign-in, cookies, CSRF, filters, paging, masking, links."""

from __future__ import annotations

import contextlib
import json
import re
import typing
from collections.abc import AsyncIterator

import httpx
import pytest

from dingpush import mask
from dingpush.relay import Relay, RobotTarget, TargetOptions, create_app, dashboard_routes
from dingpush.relay._dashboard import PAGE_SIZE
from dingpush.relay._dispatcher import DING_KIND
from dingpush.relay.stores import MemoryStore, NewMessage
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, text

pytestmark = pytest.mark.anyio

API_TOKEN = "dashboard-api-token-0123456789"
ROBOT_TOKEN = "robot-token-for-the-dashboard-0123456789"
ROBOT_SECRET = "SEC-dashboard-robot-secret-abcdef"
INGRESS = "ingress-token-dashboard-42"
SECRETS = (API_TOKEN, ROBOT_TOKEN, ROBOT_SECRET, INGRESS)
ORIGIN = "http://relay"


def _relay(emulator: EmulatorServer, **settings: typing.Any) -> Relay:
    emulator.add_robot("ops", ROBOT_TOKEN, secret=ROBOT_SECRET)
    emulator.add_robot("dev")
    targets = [
        RobotTarget(
            "ops",
            emulator.webhook_url("ops"),
            secret=ROBOT_SECRET,
            options=TargetOptions(ingress_token=INGRESS),
        ),
        RobotTarget("dev", emulator.webhook_url("dev")),
    ]
    return Relay(targets, settings=fast_settings(**settings))


@contextlib.asynccontextmanager
async def dashboard(relay: Relay, base_url: str = ORIGIN) -> AsyncIterator[httpx.AsyncClient]:
    """The relay with its dashboard, in-process; the client keeps cookies like a browser."""
    app = create_app(relay, extra_routes=dashboard_routes(relay))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


def _auth(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _send(http: httpx.AsyncClient, target: str, message: object, token: bool = False) -> str:
    reply = await http.post(
        "/v1/messages",
        json={"target": target, "message": message},
        headers=_auth() if token else {},
    )
    assert reply.status_code == 202, reply.text
    return typing.cast(str, reply.json()["id"])


async def _status(http: httpx.AsyncClient, message_id: str, token: bool = False) -> str:
    reply = await http.get(f"/v1/messages/{message_id}", headers=_auth() if token else {})
    return typing.cast(str, reply.json()["status"])


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


async def _sign_in(http: httpx.AsyncClient, token: str = API_TOKEN) -> httpx.Response:
    return await http.post(
        "/ui/login", data={"token": token, "next": "/"}, headers={"Origin": ORIGIN}
    )


async def _failed_message(
    http: httpx.AsyncClient, emulator: EmulatorServer, token: bool = False
) -> str:
    """A message DingTalk refuses for good (a wrong signature, injected), now a dead letter."""
    emulator.emulator.inject_fault(
        "errcode", errcode=310000, errmsg="sign not match", count=None, robot="ops"
    )
    message_id = await _send(http, "ops", text("backup failed"), token=token)

    async def failed() -> bool:
        return await _status(http, message_id, token=token) == "failed"

    await eventually(failed, what="the dead letter")
    return message_id


# -- open (no tokens, loopback) -----------------------------------------------------------------


async def test_without_tokens_the_dashboard_is_open_and_lists_targets_and_messages(
    dingtalk_emulator: EmulatorServer,
) -> None:
    async with dashboard(_relay(dingtalk_emulator)) as http:
        message_id = await _send(http, "ops", text("disk full on web-01"))

        async def delivered() -> bool:
            return await _status(http, message_id) == "delivered"

        await eventually(delivered, what="the delivery")
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'data-target="ops"' in page.text and 'data-target="dev"' in page.text
        assert _ids(page.text) == [message_id]
        assert "disk full on web-01" in page.text
        assert "Log out" not in page.text and "dingpush_session" not in page.headers.get(
            "set-cookie", ""
        )
        # The targets panel shows what GET /v1/targets says, from the same code.
        targets = (await http.get("/v1/targets")).json()["targets"]
        ops = next(t for t in targets if t["name"] == "ops")
        assert f"{ops['sent_recently']} of 20 in 60 s" in page.text
        login = await http.get("/ui/login")
        assert login.status_code == 303 and login.headers["location"] == "/"
        static = await http.get("/ui/static/dashboard.js")
        assert static.status_code == 200 and "fetch" in static.text


async def test_the_detail_shows_preview_payload_attempts_and_reply(
    dingtalk_emulator: EmulatorServer,
) -> None:
    markdown = {
        "msgtype": "markdown",
        "markdown": {"title": "Disk", "text": "### web-01\n| host | used |\n|---|---|\n- **97%**"},
    }
    async with dashboard(_relay(dingtalk_emulator)) as http:
        message_id = await _send(http, "ops", markdown)

        async def delivered() -> bool:
            return await _status(http, message_id) == "delivered"

        await eventually(delivered, what="the delivery")
        page = await http.get(f"/ui/messages/{message_id}")
        assert page.status_code == 200
        html = page.text
        assert '<p class="md-h md-h3">web-01</p>' in html  # the chat view's renderer
        assert "<strong>97%</strong>" in html
        assert 'class="findings__kind">table<' in html  # what DingTalk will not render
        assert "&#34;msgtype&#34;: &#34;markdown&#34;" in html  # the payload
        assert "&#34;errcode&#34;: 0" in html  # DingTalk's answer
        assert "status--delivered" in html and "Retry" not in html
        updates = (await http.get(f"/ui/messages/{message_id}/updates")).json()["fragments"]
        assert set(updates) == {"detail-status", "detail-attempts"}
        assert "delivered" in updates["detail-attempts"]
        missing = await http.get("/ui/messages/no-such-id")
        assert missing.status_code == 404 and "No such message" in missing.text


async def test_masking_leaves_links_whole_in_the_api_and_the_preview(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # A message's own links are not this configuration's secrets: they show as written (a
    # signed report link's sign= included). Only configured secrets are masked in a payload.
    side = "dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fr.example%2Fd&pc_slide=true"
    report = "https://r.example/x?sign=abc123XYZ&session=s1"
    text_ = f"[board]({side}) and [report]({report}), ingress {INGRESS}"
    markdown = {"msgtype": "markdown", "markdown": {"title": "Links", "text": text_}}
    async with dashboard(_relay(dingtalk_emulator)) as http:
        message_id = await _send(http, "ops", markdown)
        payload = (await http.get(f"/v1/messages/{message_id}")).json()["payload"]
        assert payload["markdown"]["text"] == (
            f"[board]({side}) and [report]({report}), ingress {mask(INGRESS)}"
        )
        html = (await http.get(f"/ui/messages/{message_id}")).text
        assert 'href="https://r.example/d"' in html  # the side-panel link, unwrapped
        assert 'href="https://r.example/x?sign=abc123XYZ&amp;session=s1"' in html
        assert "dingtalk://****" not in html and INGRESS not in html
        rows = (await http.get("/")).text
        assert INGRESS not in rows


# -- sign-in ------------------------------------------------------------------------------------


async def test_with_tokens_every_page_asks_for_a_sign_in(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay) as http:
        home = await http.get("/?status=failed")
        assert home.status_code == 303
        assert home.headers["location"] == "/ui/login?next=%2F%3Fstatus%3Dfailed"
        for path in ("/ui/messages/x", "/ui/messages/x/updates", "/ui/updates"):
            reply = await http.get(path)
            assert reply.status_code in (303, 401), path
        assert (await http.get("/ui/updates")).status_code == 401
        retry = await http.post("/ui/messages/x/retry", data={"csrf": "x"})
        assert retry.status_code == 303 and retry.headers["location"].startswith("/ui/login")
        form = await http.get("/ui/login?next=/")
        assert form.status_code == 200
        assert '<label for="token">API token</label>' in form.text
        assert 'type="password"' in form.text


async def test_a_wrong_token_is_refused_and_a_right_one_gives_a_session_cookie(
    dingtalk_emulator: EmulatorServer,
) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay) as http:
        wrong = await _sign_in(http, "not-the-token-0123456789")
        assert wrong.status_code == 401 and "not one of this relay" in wrong.text
        assert "set-cookie" not in wrong.headers
        right = await _sign_in(http)
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = right.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path"} <= attributes and "secure" not in attributes
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        assert "max-age" not in attributes and "expires" not in attributes  # a session cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        assert API_TOKEN not in cookie and len(value) >= 40  # opaque, not the token
        page = await http.get("/")
        assert page.status_code == 200 and "Log out" in page.text
        assert (await http.get("/ui/updates")).status_code == 200


async def test_the_cookie_is_secure_over_https(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay, base_url="https://relay") as http:
        reply = await http.post(
            "/ui/login", data={"token": API_TOKEN}, headers={"Origin": "https://relay"}
        )
        assert reply.status_code == 303
        assert "secure" in reply.headers["set-cookie"].lower()


async def test_log_out_ends_the_session_for_good(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay) as http:
        await _sign_in(http)
        page = await http.get("/")
        stolen = dict(http.cookies)
        refused = await http.post("/ui/logout", data={}, headers={"Origin": ORIGIN})
        assert refused.status_code == 403  # no CSRF token: not even a log-out
        out = await http.post(
            "/ui/logout", data={"csrf": _csrf(page.text)}, headers={"Origin": ORIGIN}
        )
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert "dingpush_session=" in out.headers["set-cookie"]
        assert (await http.get("/")).status_code == 303
        http.cookies.update(stolen)  # the old cookie, replayed, opens nothing
        assert (await http.get("/")).status_code == 303


async def test_sign_in_only_returns_to_this_relay(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay) as http:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            reply = await http.post(
                "/ui/login", data={"token": API_TOKEN, "next": target}, headers={"Origin": ORIGIN}
            )
            assert reply.headers["location"] == "/", target
        foreign = await http.post(
            "/ui/login", data={"token": API_TOKEN}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403


# -- retry and CSRF -----------------------------------------------------------------------------


async def test_a_retry_needs_the_csrf_token_and_this_origin(
    dingtalk_emulator: EmulatorServer,
) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with dashboard(relay) as http:
        message_id = await _failed_message(http, dingtalk_emulator, token=True)
        await _sign_in(http)
        page = await http.get(f"/ui/messages/{message_id}")
        assert "status--failed" in page.text and "310000" in page.text
        csrf = _csrf(page.text)
        retry = f"/ui/messages/{message_id}/retry"
        refusals = [
            await http.post(retry, data={}, headers={"Origin": ORIGIN}),
            await http.post(retry, data={"csrf": "forged"}, headers={"Origin": ORIGIN}),
            await http.post(retry, data={"csrf": csrf}, headers={"Origin": "http://evil.example"}),
            await http.post(retry, data={"csrf": csrf}, headers={"Origin": "null"}),
            await http.post(retry, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}),
            await http.post(
                retry, data={"csrf": csrf}, headers={"Referer": "http://evil.example/page"}
            ),
        ]
        assert [r.status_code for r in refusals] == [403] * len(refusals)
        assert "Form refused" in refusals[0].text
        assert await _status(http, message_id, token=True) == "failed"

        dingtalk_emulator.emulator.clear_faults()
        accepted = await http.post(retry, data={"csrf": csrf}, headers={"Origin": ORIGIN})
        assert accepted.status_code == 303
        assert accepted.headers["location"] == f"/ui/messages/{message_id}?retried=1"

        async def delivered() -> bool:
            return await _status(http, message_id, token=True) == "delivered"

        await eventually(delivered, what="the delivery after the retry")
        again = await http.post(retry, data={"csrf": csrf}, headers={"Origin": ORIGIN})
        assert again.status_code == 409 and "Only a failed message can be retried" in again.text


async def test_an_open_dashboard_still_checks_csrf(dingtalk_emulator: EmulatorServer) -> None:
    async with dashboard(_relay(dingtalk_emulator)) as http:
        message_id = await _failed_message(http, dingtalk_emulator)
        page = await http.get(f"/ui/messages/{message_id}")
        refused = await http.post(f"/ui/messages/{message_id}/retry", data={"csrf": "guess"})
        assert refused.status_code == 403
        dingtalk_emulator.emulator.clear_faults()
        done = await http.post(
            f"/ui/messages/{message_id}/retry", data={"csrf": _csrf(page.text)}
        )  # a tool without Origin: the token alone is enough
        assert done.status_code == 303
        notice = await http.get(done.headers["location"])
        assert "Queued again" in notice.text


# -- the list -----------------------------------------------------------------------------------


async def test_filters_by_status_and_target(dingtalk_emulator: EmulatorServer) -> None:
    async with dashboard(_relay(dingtalk_emulator)) as http:
        failed = await _failed_message(http, dingtalk_emulator)
        dev = await _send(http, "dev", text("dev build green"))

        async def delivered() -> bool:
            return await _status(http, dev) == "delivered"

        await eventually(delivered, what="the dev delivery")
        assert set(_ids((await http.get("/")).text)) == {failed, dev}
        assert _ids((await http.get("/?status=failed")).text) == [failed]
        assert _ids((await http.get("/?target=dev")).text) == [dev]
        assert _ids((await http.get("/?status=failed&target=dev")).text) == []
        assert _ids((await http.get("/?status=&target=")).text) == [dev, failed]  # "any"
        selected = (await http.get("/?status=failed")).text
        assert '<option value="failed" selected>' in selected
        updates = (await http.get("/ui/updates?target=ops")).json()["fragments"]
        assert _ids(updates["messages-body"]) == [failed]
        unknown = await http.get("/?target=nope")
        assert unknown.status_code == 404 and "the configured targets are: dev, ops" in unknown.text
        bad = await http.get("/?status=lost")
        assert bad.status_code == 400 and "status must be one of" in bad.text


async def test_the_list_is_paged_newest_first(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator)
    async with dashboard(relay) as http:
        batch = [{"target": "dev", "message": text(f"note {i}")} for i in range(PAGE_SIZE + 5)]
        ids = (await http.post("/v1/messages:batch", json={"messages": batch})).json()["ids"]
        first = await http.get("/?target=dev")
        shown = _ids(first.text)
        assert len(shown) == PAGE_SIZE and set(shown) <= set(ids)
        older = re.search(r'<a rel="next" href="([^"]+)">Older messages</a>', first.text)
        assert older is not None and "Newest messages" not in first.text
        second = await http.get(older.group(1).replace("&amp;", "&"))
        rest = _ids(second.text)
        assert len(rest) == 5 and set(shown) | set(rest) == set(ids)
        assert "Newest messages" in second.text and "Older messages" not in second.text
        assert (await http.get("/?cursor=made-up")).status_code == 400


async def test_a_digest_and_its_originals_link_to_each_other(
    dingtalk_emulator: EmulatorServer,
) -> None:
    relay = _relay(dingtalk_emulator, coalesce_after=5.0)
    async with dashboard(relay) as http:
        batch = [{"target": "ops", "message": text(f"alert {i}")} for i in range(60)]
        ids = (await http.post("/v1/messages:batch", json={"messages": batch})).json()["ids"]

        async def digested() -> bool:
            return await _status(http, ids[-1]) == "digested"

        await eventually(digested, what="the digest")
        original = (await http.get(f"/ui/messages/{ids[-1]}")).text
        found = re.search(r'<a href="/ui/messages/([^"]+)">the digest', original)
        assert found is not None and "status--digested" in original
        digest = (await http.get(f"/ui/messages/{found.group(1)}")).text
        assert f'<a href="/ui/messages/{ids[-1]}">the original' in digest
        listed = (await http.get("/?status=digested")).text
        assert "in digest" in listed


# -- secrets ------------------------------------------------------------------------------------


async def test_no_page_carries_a_secret(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    leaky = text(f"token {ROBOT_TOKEN} secret {ROBOT_SECRET} ingress {INGRESS} api {API_TOKEN}")
    async with dashboard(relay) as http:
        failed = await _failed_message(http, dingtalk_emulator, token=True)
        dingtalk_emulator.emulator.clear_faults()
        leak = await _send(http, "ops", leaky, token=True)

        async def delivered() -> bool:
            return await _status(http, leak, token=True) == "delivered"

        await eventually(delivered, what="the delivery")
        pages = [await _sign_in(http, "wrong-token-but-long-enough"), await _sign_in(http)]
        for path in (
            "/",
            "/ui/updates",
            f"/ui/messages/{leak}",
            f"/ui/messages/{leak}/updates",
            f"/ui/messages/{failed}",
            "/ui/messages/missing",
            "/ui/login",
        ):
            pages.append(await http.get(path))
        for reply in pages:
            seen = reply.text + str(reply.headers)
            for secret in SECRETS:
                assert secret not in seen, (reply.url, secret)
        detail = next(p for p in pages if p.url.path == f"/ui/messages/{leak}").text
        assert "token robo…6789" in detail  # masked as the API masks it


async def test_a_ding_in_the_outbox_is_previewed_as_a_ding(
    dingtalk_emulator: EmulatorServer,
) -> None:
    """An escalation step's DING (outbox kind ``ding``): who, how and what, not "unsupported"."""
    store = MemoryStore()
    request = {
        "user_ids": ["u-alice"],
        "content": "#7 disk full on db1 <script>",
        "remind_type": "call",
        "fallback": True,
        "incident": 7,
        "who": "alice",
    }
    ding = await store.enqueue(
        NewMessage(
            target="ops",
            kind=DING_KIND,
            payload=json.dumps(request),
            due_at=store._clock.time() + 3600,  # stays queued: a robot target cannot DING
        )
    )
    targets = _relay(dingtalk_emulator).targets.values()
    relay = Relay(targets, store=store, settings=fast_settings(api_tokens=(API_TOKEN,)))
    async with dashboard(relay) as http:
        await _sign_in(http)
        home = await http.get("/")
        assert "[DING phone] alice: #7 disk full on db1 &lt;script&gt;" in home.text
        assert "Unsupported" not in home.text
        page = await http.get(f"/ui/messages/{ding.id}")
        assert page.status_code == 200
        assert 'data-kind="ding"' in page.text and "DING · phone" in page.text
        assert "in-app instead if the phone DING fails" in page.text
        assert "#7 disk full on db1 &lt;script&gt;" in page.text
