"""Recall through the relay (``POST /v1/messages/{id}/recall``) against the emulator (§11)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import typing

import httpx
import pytest

from dingpush import AsyncApp, RecallResult, ServerBusy, Text
from dingpush.relay import AppTarget, Relay, RobotTarget, create_app, dashboard_routes
from dingpush.relay._coalesce import DIGEST_KIND, digest_payload
from dingpush.relay.stores import MemoryStore, NewMessage, Status
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio

API_TOKENS = ("first-api-token-0123456789", "second-api-token-0123456789")
USERS = ("alice", "bob")
ORIGIN = "http://relay"
_ORIGIN = {"Origin": ORIGIN}


def _app(server: EmulatorServer) -> tuple[AsyncApp, str]:
    config = server.add_app("ops-app", groups=["Ops"], users=USERS)
    (cid,) = config.groups
    app = AsyncApp(
        config.app_key,
        config.app_secret,
        api_base=server.url,
        oapi_base=server.url,
        token_cache=False,
    )
    return app, cid


def _targets(server: EmulatorServer) -> list[typing.Any]:
    app, cid = _app(server)
    server.add_robot("hook", token="hook-token-" + "7" * 40)
    return [
        AppTarget("group", app, "app-group", open_conversation_id=cid, owns_app=True),
        AppTarget("people", app, "app-users", users=USERS),
        RobotTarget("hook", server.webhook_url("hook")),
    ]


def _relay(server: EmulatorServer, store: MemoryStore | None = None) -> Relay:
    settings = fast_settings(api_tokens=API_TOKENS)
    return Relay(_targets(server), store=store, settings=settings)


def _auth(number: int = 1) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKENS[number - 1]}"}


async def _delivered(api: httpx.AsyncClient, target: str, message: dict[str, object]) -> str:
    sent = await api.post("/v1/messages", json={"target": target, "message": message})
    assert sent.status_code == 202, sent.text
    message_id = typing.cast(str, sent.json()["id"])

    async def done() -> bool:
        status = (await api.get(f"/v1/messages/{message_id}")).json()["status"]
        assert status not in ("failed",), status
        return bool(status == "delivered")

    await eventually(done, what=f"the delivery to {target}")
    return message_id


def _recalled_keys(server: EmulatorServer) -> set[str]:
    return {k.key for k in server.emulator.app_messages() if k.recalled_at is not None}


async def test_a_group_message_is_recalled_and_the_recall_recorded(
    dingtalk_emulator: EmulatorServer,
) -> None:
    async with serving(_relay(dingtalk_emulator), headers=_auth(2)) as api:
        message_id = await _delivered(api, "group", text("disk full on db-1"))
        detail = (await api.get(f"/v1/messages/{message_id}")).json()
        keys = detail["reply"]["process_query_keys"]
        assert len(keys) == 1 and detail["links"]["recall"].endswith("/recall")
        assert detail["recalled"] is None

        answer = await api.post(f"/v1/messages/{message_id}/recall")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["outcome"] == "recalled" and body["recalled"] == keys
        assert body["message"]["recalled"]["by"] == "api token #2"
        assert _recalled_keys(dingtalk_emulator) == set(keys)

        detail = (await api.get(f"/v1/messages/{message_id}")).json()
        assert detail["status"] == "delivered"
        assert detail["recalled"]["via"] == "api" and detail["recalled"]["keys"] == 1
        assert detail["reply"]["recall"]["recalled"] == keys

        again = await api.post(
            f"/v1/messages/{message_id}/recall", json={"by": "alice"}
        )  # nothing left to recall: the first recall stands
        assert again.status_code == 200 and again.json()["already"] is True
        calls = [r for r in dingtalk_emulator.emulator.requests() if "recall" in r.path]
        assert len(calls) == 1
        metrics = (await api.get("/metrics")).text
        assert 'dingpush_relay_recalled_total{target="group"} 1' in metrics  # once a message
        assert 'dingpush_relay_cancelled_total{target="group"} 0' in metrics


async def test_a_split_message_recalls_every_part(dingtalk_emulator: EmulatorServer) -> None:
    long = "\n".join(f"line {i}: " + "x" * 90 for i in range(400))  # ~40 KB: several parts
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        message_id = await _delivered(api, "group", text(long))
        keys = (await api.get(f"/v1/messages/{message_id}")).json()["reply"]["process_query_keys"]
        assert len(keys) >= 3
        answer = await api.post(f"/v1/messages/{message_id}/recall", json={"by": "alice"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["recalled"] == keys
        assert answer.json()["message"]["recalled"]["by"] == "alice"
    assert _recalled_keys(dingtalk_emulator) == set(keys)


async def test_one_to_one_messages_only_within_24_hours(
    dingtalk_emulator: EmulatorServer,
) -> None:
    clock = FakeClock()
    dingtalk_emulator.emulator.clock = clock
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        early = await _delivered(api, "people", text("page"))
        late = await _delivered(api, "people", text("page again"))
        recalled = await api.post(f"/v1/messages/{early}/recall")
        assert recalled.status_code == 200, recalled.text
        clock.advance(24 * 3600 + 1)
        refused = await api.post(f"/v1/messages/{late}/recall")
        assert refused.status_code == 409, refused.text
        detail = refused.json()["detail"]
        assert "24 hours" in detail and "§11" in detail
        assert (await api.get(f"/v1/messages/{late}")).json()["recalled"] is None


async def test_a_digest_recalls_as_one_message(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryStore()
    originals = [
        (await store.enqueue(NewMessage(target="group", kind="text", payload=p))).id
        for p in (
            '{"msgtype":"text","text":{"content":"a"}}',
            '{"msgtype":"text","text":{"content":"b"}}',
        )
    ]
    digest = await store.digest(
        originals,
        NewMessage(target="group", kind=DIGEST_KIND, payload=digest_payload(Text("a\n\nb"))),
    )
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:

        async def delivered() -> bool:
            return (await store.get(digest.id)).status is Status.DELIVERED

        await eventually(delivered, what="the digest's delivery")
        answer = await api.post(f"/v1/messages/{originals[1]}/recall")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == digest.id and body["asked"] == originals[1]
        keys = (await store.get(digest.id)).reply["process_query_keys"]  # type: ignore[index]
        assert body["recalled"] == keys
        again = await api.post(f"/v1/messages/{digest.id}/recall")
        assert again.json()["already"] is True
    assert _recalled_keys(dingtalk_emulator) == set(keys)


async def test_webhook_robots_cannot_recall(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        message_id = await _delivered(api, "hook", text("hello"))
        refused = await api.post(f"/v1/messages/{message_id}/recall")
        assert refused.status_code == 409
        assert "webhook robots cannot recall" in refused.json()["detail"]
        assert "§11" in refused.json()["detail"]


async def test_a_queued_message_is_cancelled_instead(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryStore()
    later = store._clock.time() + 3600
    queued = await store.enqueue(
        NewMessage(
            target="hook",
            kind="text",
            payload='{"msgtype":"text","text":{"content":"x"}}',
            due_at=later,
        )
    )
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        answer = await api.post(f"/v1/messages/{queued.id}/recall", json={"by": "bob"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "cancelled"
        detail = (await api.get(f"/v1/messages/{queued.id}")).json()
        assert detail["status"] == "failed" and detail["last_errcode"] == "cancelled"
        assert "bob" in detail["last_error"]
        metrics = (await api.get("/metrics")).text
        assert 'dingpush_relay_cancelled_total{target="hook"} 1' in metrics
        assert 'dingpush_relay_recalled_total{target="hook"} 0' in metrics
        again = await api.post(f"/v1/messages/{queued.id}/recall")
        assert again.status_code == 409 and "never reached the chat" in again.json()["detail"]


async def test_sending_unknown_and_malformed_requests(dingtalk_emulator: EmulatorServer) -> None:
    store = MemoryStore()
    payload = '{"msgtype":"text","text":{"content":"x"}}'
    busy = await store.enqueue(NewMessage(target="group", kind="text", payload=payload))
    await store.claim(1, lease=600, target="group")  # another instance is sending it
    async with serving(_relay(dingtalk_emulator, store), headers=_auth()) as api:
        sending = await api.post(f"/v1/messages/{busy.id}/recall")
        assert sending.status_code == 409 and sending.headers["retry-after"]
        missing = await api.post("/v1/messages/no-such-id/recall")
        assert missing.status_code == 404
        unknown = await api.post(f"/v1/messages/{busy.id}/recall", json={"who": "x"})
        assert unknown.status_code == 400
        form = await api.post(
            f"/v1/messages/{busy.id}/recall",
            content=b"by=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        bad_name = await api.post(f"/v1/messages/{busy.id}/recall", json={"by": "a\nb"})
        assert bad_name.status_code == 400
        anonymous = await api.post(f"/v1/messages/{busy.id}/recall", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_the_recall_is_in_the_openapi_document(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        document = (await api.get("/openapi.json")).json()
    operation = document["paths"]["/v1/messages/{id}/recall"]["post"]
    assert operation["operationId"] == "recallMessage"
    assert operation["requestBody"]["required"] is False
    assert {"200", "404", "409", "502"} <= set(operation["responses"])
    assert "RecallResult" in document["components"]["schemas"]


# -- the dashboard's Recall button ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _dashboard(relay: Relay) -> typing.AsyncIterator[httpx.AsyncClient]:
    app = create_app(relay, extra_routes=dashboard_routes(relay))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
            signed = await http.post(
                "/ui/login", data={"token": API_TOKENS[1], "next": "/"}, headers=_ORIGIN
            )
            assert signed.status_code == 303
            yield http


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def test_the_dashboard_recalls_after_asking(dingtalk_emulator: EmulatorServer) -> None:
    async with _dashboard(_relay(dingtalk_emulator)) as http:
        http.headers.update(_auth())
        message_id = await _delivered(http, "group", text("wrong group, sorry"))
        hook_id = await _delivered(http, "hook", text("hello"))
        del http.headers["Authorization"]
        page = await http.get(f"/ui/messages/{message_id}")
        assert f"/ui/messages/{message_id}/recall" in page.text and "Recall…" in page.text
        assert "/recall" not in (await http.get(f"/ui/messages/{hook_id}")).text

        confirm = await http.get(f"/ui/messages/{message_id}/recall")
        assert confirm.status_code == 200 and "for everyone" in confirm.text
        csrf = _csrf(confirm.text)
        path = f"/ui/messages/{message_id}/recall"
        forged = await http.post(path, data={"csrf": "x"}, headers=_ORIGIN)
        assert forged.status_code == 403
        elsewhere = await http.post(
            path, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403
        assert not _recalled_keys(dingtalk_emulator)

        done = await http.post(path, data={"csrf": csrf, "by": ""}, headers=_ORIGIN)
        assert done.status_code == 303
        page = await http.get(done.headers["location"])
        assert "Recalled: DingTalk took the message out of the chat." in page.text
        assert "by api token #2 via dashboard" in page.text
        assert "Recall…" not in page.text
        assert len(_recalled_keys(dingtalk_emulator)) == 1

        refused = await http.post(
            f"/ui/messages/{hook_id}/recall", data={"csrf": csrf}, headers=_ORIGIN
        )
        assert refused.status_code == 409 and "webhook robots cannot recall" in refused.text


class _BusyAfterOneCall(AppTarget):
    """DingTalk recalls the first 20 keys, then is busy (the library's partial result)."""

    async def recall(self, keys: typing.Sequence[str], *, group: str | None) -> RecallResult:
        error = ServerBusy("system.error", "system busy")
        error.partial = RecallResult(tuple(keys[:20]), {}, group, 1)
        raise error


async def test_keys_recalled_before_a_failure_are_kept(dingtalk_emulator: EmulatorServer) -> None:
    app, cid = _app(dingtalk_emulator)
    target = _BusyAfterOneCall("group", app, "app-group", open_conversation_id=cid, owns_app=True)
    store = MemoryStore()
    payload = '{"msgtype":"text","text":{"content":"x"}}'
    enqueued = await store.enqueue(NewMessage(target="group", kind="text", payload=payload))
    (claim,) = await store.claim(1, lease=60, target="group")
    keys = [f"key{i:02d}" for i in range(25)]
    await store.mark_delivered(claim, reply={"process_query_keys": keys})
    relay = Relay([target], store=store, settings=fast_settings(api_tokens=API_TOKENS))
    async with serving(relay, headers=_auth()) as api:
        busy = await api.post(f"/v1/messages/{enqueued.id}/recall")
        assert busy.status_code == 503 and busy.headers["retry-after"]
        assert "retry later" in busy.json()["detail"]
        recall = (await store.get(enqueued.id)).reply["recall"]  # type: ignore[index]
    assert recall["recalled"] == keys[:20]


async def test_two_recalls_at_once_record_one_recall(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        message_id = await _delivered(api, "group", text("twice"))
        first, second = await asyncio.gather(
            api.post(f"/v1/messages/{message_id}/recall", json={"by": "alice"}),
            api.post(f"/v1/messages/{message_id}/recall", json={"by": "bob"}),
        )
        answers = sorted([first.json(), second.json()], key=lambda a: bool(a.get("already")))
        assert answers[0]["outcome"] == "recalled" and not answers[0]["failed"]
        assert answers[1]["already"] is True
        detail = (await api.get(f"/v1/messages/{message_id}")).json()
        assert detail["recalled"]["keys"] == 1 and detail["recalled"]["failed"] == 0


async def test_a_card_an_app_cannot_show_is_refused_in_json_terms(
    dingtalk_emulator: EmulatorServer,
) -> None:
    buttons = [{"title": f"B{i}", "actionURL": f"https://example.com/{i}"} for i in range(3)]
    card = {"title": "t", "text": "body", "btns": buttons, "btnOrientation": "1"}
    async with serving(_relay(dingtalk_emulator), headers=_auth()) as api:
        answer = await api.post(
            "/v1/messages",
            json={"target": "group", "message": {"msgtype": "actionCard", "actionCard": card}},
        )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert 'set "btnOrientation": "0" (vertical)' in detail
    assert "orientation=" not in detail  # the library's Python wording stays in the library
