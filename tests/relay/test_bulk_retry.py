"""Bulk retry of dead letters: ``POST /v1/messages:retry`` and the dashboard's form."""

from __future__ import annotations

import datetime
import typing

import httpx
import pytest

from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.relay.stores import MemoryStore, NewMessage
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving, text
from .test_dashboard import API_TOKEN, ORIGIN, _csrf, _sign_in, dashboard

pytestmark = pytest.mark.anyio

OPTIONS = TargetOptions(coalesce=False)


def _relay(emulator: EmulatorServer, clock: FakeClock | None = None, **settings: object) -> Relay:
    emulator.add_robot("ops")
    emulator.add_robot("dev")
    targets = [
        RobotTarget(name, emulator.webhook_url(name), rate="1000/1s", options=OPTIONS)
        for name in ("ops", "dev")
    ]
    return Relay(targets, settings=fast_settings(**settings), clock=clock)


async def _send(api: httpx.AsyncClient, target: str, content: str, **headers: str) -> str:
    reply = await api.post(
        "/v1/messages", json={"target": target, "message": text(content)}, headers=headers
    )
    assert reply.status_code == 202, reply.text
    return typing.cast(str, reply.json()["id"])


async def _statuses(api: httpx.AsyncClient, ids: list[str], **headers: str) -> list[str]:
    return [(await api.get(f"/v1/messages/{i}", headers=headers)).json()["status"] for i in ids]


async def _dead(api: httpx.AsyncClient, ids: list[str], **headers: str) -> None:
    async def failed() -> bool:
        return set(await _statuses(api, ids, **headers)) == {"failed"}

    await eventually(failed, what="the dead letters")


async def test_dead_letters_are_retried_by_target_errcode_error_and_time(
    dingtalk_emulator: EmulatorServer,
) -> None:
    emulator = dingtalk_emulator.emulator
    clock = FakeClock()
    relay = _relay(dingtalk_emulator, clock)
    async with serving(relay) as api:
        # ops: its token is refused (300001) for two messages, then signatures (310000).
        emulator.inject_fault("errcode", errcode=300001, errmsg="token is not exist", count=2)
        revoked = [await _send(api, "ops", f"revoked {i}") for i in range(2)]
        await _dead(api, revoked)
        started = clock.time()
        clock.advance(3600)
        emulator.inject_fault("errcode", errcode=310000, errmsg="sign not match", count=1)
        (unsigned,) = [await _send(api, "ops", "unsigned")]
        await _dead(api, [unsigned])
        emulator.inject_fault("errcode", errcode=300001, errmsg="token is not exist", count=1)
        (other,) = [await _send(api, "dev", "dev's")]
        await _dead(api, [other])

        async def retry(**body: object) -> dict[str, typing.Any]:
            reply = await api.post("/v1/messages:retry", json=body)
            assert reply.status_code == 200, reply.text
            return typing.cast(dict[str, typing.Any], reply.json())

        counted = await retry(target="ops", errcode=300001, dry_run=True)
        assert counted == {
            "retried": 2,
            "ids": revoked,
            "more": False,
            "dry_run": True,
            "cancelled_left_out": 0,
        }
        assert await _statuses(api, revoked) == ["failed", "failed"]  # only counted
        assert (await retry(error="token is not exist", dry_run=True))["ids"] == [*revoked, other]
        assert (await retry(failed_since=started + 1, dry_run=True))["ids"] == [unsigned, other]
        assert (await retry(failed_before=started + 1, dry_run=True))["ids"] == revoked
        assert (await retry(errcode="300001", dry_run=True))["retried"] == 0  # not the int
        limited = await retry(target="ops", limit=2, dry_run=True)
        assert limited["ids"] == revoked and limited["more"] is True

        first = await retry(target="ops", errcode=300001, limit=1)
        assert first == {
            "retried": 1,
            "ids": revoked[:1],
            "more": True,
            "dry_run": False,
            "cancelled_left_out": 0,
        }
        rest = await retry(target="ops", errcode=300001)
        assert rest == {
            "retried": 1,
            "ids": revoked[1:],
            "more": False,
            "dry_run": False,
            "cancelled_left_out": 0,
        }

        async def delivered() -> bool:
            return await _statuses(api, revoked) == ["delivered", "delivered"]

        await eventually(delivered, what="the retried messages' delivery")
        assert await _statuses(api, [unsigned, other]) == ["failed", "failed"]
        detail = (await api.get(f"/v1/messages/{revoked[0]}")).json()
        assert [a["outcome"] for a in detail["attempt_history"]] == ["failed", "delivered"]
        assert (await retry())["ids"] == [unsigned, other]  # {} takes every dead letter


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        ([], 400, None),
        ({"status": "failed"}, 400, "/status"),
        ({"target": "nope"}, 404, "/target"),
        ({"target": 7}, 400, "/target"),
        ({"errcode": True}, 400, "/errcode"),
        ({"errcode": 1.5}, 400, "/errcode"),
        ({"errcode": 2**70}, 400, "/errcode"),
        ({"errcode": ""}, 400, "/errcode"),
        ({"error": ""}, 400, "/error"),
        ('{"error": "a\\ud800b"}', 400, "/error"),  # JSON text: a lone surrogate
        ({"failed_since": "yesterday"}, 400, "/failed_since"),
        ({"failed_since": 10, "failed_before": 5}, 400, None),
        ({"limit": 0}, 400, "/limit"),
        ({"limit": 10_001}, 400, "/limit"),
        ({"dry_run": "yes"}, 400, "/dry_run"),
    ],
)
async def test_a_bad_filter_is_refused_saying_where(
    dingtalk_emulator: EmulatorServer, body: object, status: int, where: str | None
) -> None:
    async with serving(_relay(dingtalk_emulator)) as api:
        if isinstance(body, str):
            reply = await api.post(
                "/v1/messages:retry", content=body, headers={"Content-Type": "application/json"}
            )
        else:
            reply = await api.post("/v1/messages:retry", json=body)
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        if where is not None:
            assert reply.json()["pointer"] == where


async def test_the_bulk_retry_is_described_and_needs_a_token(
    dingtalk_emulator: EmulatorServer,
) -> None:
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    async with serving(relay) as api:
        assert (await api.post("/v1/messages:retry", json={})).status_code == 401
        document = (await api.get("/openapi.json")).json()
        operation = document["paths"]["/v1/messages:retry"]["post"]
        assert operation["operationId"] == "retryMessages"
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/RetryFilter"}
        fields = document["components"]["schemas"]["RetryFilter"]["properties"]
        assert set(fields) == {
            "target",
            "errcode",
            "error",
            "failed_since",
            "failed_before",
            "limit",
            "dry_run",
        }


async def test_the_dashboard_counts_then_retries_with_csrf_and_origin_checks(
    dingtalk_emulator: EmulatorServer,
) -> None:
    emulator = dingtalk_emulator.emulator
    relay = _relay(dingtalk_emulator, api_tokens=(API_TOKEN,))
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with dashboard(relay) as http:
        emulator.inject_fault("errcode", errcode=300001, errmsg="token is not exist", count=3)
        ids = [await _send(http, "ops", f"revoked {i}", **auth) for i in range(3)]
        await _dead(http, ids, **auth)
        await _sign_in(http)
        home = await http.get("/")
        assert "Retry dead letters in bulk (3 now)" in home.text
        csrf = _csrf(home.text)
        form = {"csrf": csrf, "target": "ops", "errcode": "300001", "action": "retry"}
        refusals = [
            await http.post(
                "/ui/retry", data={**form, "csrf": "forged"}, headers={"Origin": ORIGIN}
            ),
            await http.post("/ui/retry", data=form, headers={"Origin": "http://evil.example"}),
            await http.post("/ui/retry", data=form, headers={"Sec-Fetch-Site": "cross-site"}),
        ]
        assert [r.status_code for r in refusals] == [403, 403, 403]
        assert await _statuses(http, ids, **auth) == ["failed"] * 3

        since = datetime.datetime.fromtimestamp(relay.clock.time() - 3600).strftime(
            "%Y-%m-%dT%H:%M"
        )
        preview = await http.post(
            "/ui/retry",
            data={**form, "action": "preview", "failed_since": since},
            headers={"Origin": ORIGIN},
        )
        assert preview.status_code == 200
        assert "3 dead letters match this filter" in preview.text
        assert 'value="300001"' in preview.text and f'value="{since}"' in preview.text
        assert await _statuses(http, ids, **auth) == ["failed"] * 3

        bad = await http.post(
            "/ui/retry", data={**form, "failed_since": "soon"}, headers={"Origin": ORIGIN}
        )
        assert bad.status_code == 400 and "is not a date and time" in bad.text
        for edge in ("0001-01-01T00:00",):  # local time to UTC reached year 0: a 500
            far = await http.post(
                "/ui/retry", data={**form, "failed_before": edge}, headers={"Origin": ORIGIN}
            )
            assert far.status_code == 400 and "Failed before" in far.text, edge

        done = await http.post("/ui/retry", data=form, headers={"Origin": ORIGIN})
        assert done.status_code == 303 and done.headers["location"] == "/?retried=3"
        notice = await http.get(done.headers["location"])
        assert "Queued again: 3 dead letters." in notice.text

        async def delivered() -> bool:
            return await _statuses(http, ids, **auth) == ["delivered"] * 3

        await eventually(delivered, what="the delivery after the bulk retry")


async def test_a_cancelled_message_is_retried_only_when_asked_for_and_confirmed(
    dingtalk_emulator: EmulatorServer,
) -> None:
    """Recalled while queued = cancelled: a retry by target must not send it after all."""
    store = MemoryStore()
    later = store._clock.time() + 3600
    payload = '{"msgtype":"text","text":{"content":"recalled"}}'
    queued = await store.enqueue(
        NewMessage(target="ops", kind="text", payload=payload, due_at=later)
    )
    relay = Relay(
        _relay(dingtalk_emulator).targets.values(),
        store=store,
        settings=fast_settings(api_tokens=(API_TOKEN,)),
    )
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with dashboard(relay) as http:
        cancelled = await http.post(
            f"/v1/messages/{queued.id}/recall", json={"by": "alice"}, headers=auth
        )
        assert cancelled.json()["outcome"] == "cancelled"
        emulator = dingtalk_emulator.emulator
        emulator.inject_fault("errcode", errcode=300001, errmsg="token is not exist", count=1)
        dead = await _send(http, "ops", "dead", **auth)  # a real dead letter next to it
        await _dead(http, [dead], **auth)
        bulk = await http.post("/v1/messages:retry", json={"target": "ops"}, headers=auth)
        assert bulk.json()["ids"] == [dead]
        assert bulk.json()["cancelled_left_out"] == 1  # said, so "0 match" is no mystery
        asked = await http.post(
            "/v1/messages:retry", json={"errcode": "cancelled", "dry_run": True}, headers=auth
        )
        assert asked.json()["ids"] == [queued.id]
        assert asked.json()["cancelled_left_out"] == 0

        single = await http.post(f"/v1/messages/{queued.id}/retry", headers=auth)
        assert single.status_code == 409
        assert "recalled before it was sent" in single.json()["detail"]
        assert "alice" in single.json()["detail"]
        assert '"resend_cancelled": true' in single.json()["detail"]
        bad = await http.post(
            f"/v1/messages/{queued.id}/retry", json={"resend_cancelled": "yes"}, headers=auth
        )
        assert bad.status_code == 400
        unknown = await http.post(f"/v1/messages/{queued.id}/retry", json={"x": 1}, headers=auth)
        assert unknown.status_code == 400
        assert (await store.get(queued.id)).cancelled

        await _sign_in(http)
        home = await http.get("/")
        counted = await http.post(
            "/ui/retry",
            data={"csrf": _csrf(home.text), "target": "ops", "action": "preview"},
            headers={"Origin": ORIGIN},
        )
        assert (
            "No dead letter matches this filter. 1 recalled before sending was left out: put"
            in (counted.text)
        )
        retried = await http.post(
            "/ui/retry",
            data={"csrf": _csrf(home.text), "target": "ops", "action": "retry"},
            headers={"Origin": ORIGIN},
        )
        assert retried.headers["location"] == "/?retried=0&left_out=1"
        notice = (await http.get(retried.headers["location"])).text
        assert "Queued again: 0 dead letters. 1 recalled before sending was left out" in notice
        assert (await store.get(queued.id)).cancelled
        page = await http.get(f"/ui/messages/{queued.id}")
        assert "Send it after all" in page.text and "data-cancelled" in page.text
        csrf = _csrf(page.text)
        unconfirmed = await http.post(
            f"/ui/messages/{queued.id}/retry", data={"csrf": csrf}, headers={"Origin": ORIGIN}
        )
        assert unconfirmed.status_code == 409
        assert "recalled before it was sent" in unconfirmed.text
        assert (await store.get(queued.id)).cancelled
        confirmed = await http.post(
            f"/ui/messages/{queued.id}/retry",
            data={"csrf": csrf, "resend_cancelled": "yes"},
            headers={"Origin": ORIGIN},
        )
        assert confirmed.status_code == 303
        await eventually(
            lambda: _is_delivered(http, queued.id, auth), what="the confirmed cancelled message"
        )


async def _is_delivered(api: httpx.AsyncClient, message_id: str, auth: dict[str, str]) -> bool:
    return await _statuses(api, [message_id], **auth) == ["delivered"]
