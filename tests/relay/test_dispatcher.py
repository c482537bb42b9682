"""The dispatcher against the emulator: pacing, isolation, retries, dead letters, digests."""

from __future__ import annotations

import asyncio
import typing

import httpx
import pytest

from dingpush.relay import AppTarget, Relay, RobotTarget, TargetOptions
from dingpush.relay.stores import Status
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio


async def _status(api: httpx.AsyncClient, message_id: str) -> dict[str, typing.Any]:
    return typing.cast(dict[str, typing.Any], (await api.get(f"/v1/messages/{message_id}")).json())


async def _send(api: httpx.AsyncClient, target: str, message: typing.Mapping[str, object]) -> str:
    reply = await api.post("/v1/messages", json={"target": target, "message": message})
    assert reply.status_code == 202, reply.text
    return typing.cast(str, reply.json()["id"])


async def test_a_throttled_robot_cools_down_without_stalling_another_target(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # "slow" really takes 2 a minute, but the relay believes DingTalk's 20: it meets a throttle.
    dingtalk_emulator.add_robot("slow", rate_limit=2, rate_window=60, lockout=600)
    dingtalk_emulator.add_robot("fast")
    options = TargetOptions(coalesce=False)
    relay = Relay(
        [
            RobotTarget("slow", dingtalk_emulator.webhook_url("slow"), options=options),
            RobotTarget("fast", dingtalk_emulator.webhook_url("fast"), options=options),
        ],
        settings=fast_settings(),
    )
    emulator = dingtalk_emulator.emulator
    async with serving(relay) as api:
        slow = [await _send(api, "slow", text(f"slow {i}")) for i in range(5)]
        fast = [await _send(api, "fast", text(f"fast {i}")) for i in range(5)]
        await eventually(lambda: len(emulator.messages(robot="fast")) == 5, what="fast delivered")
        await eventually(lambda: relay.targets["slow"].cooldown_left() > 0, what="a cool-down")
        views = {t["name"]: t for t in (await api.get("/v1/targets")).json()["targets"]}
        assert views["slow"]["cooldown_until"] is not None
        assert views["slow"]["backlog"] == 3
        assert views["slow"]["last_errcode"] == 130101
        assert views["fast"]["cooldown_until"] is None
        statuses = [(await _status(api, i))["status"] for i in slow]
        assert statuses.count("delivered") == 2 and statuses.count("queued") == 3
        third = await _status(api, slow[2])  # met the throttle; due again after the cool-down
        assert [(a["outcome"], a["errcode"]) for a in third["attempt_history"]] == [
            ("retry", 130101)
        ]
        assert third["due_at"] > third["updated_at"] + 500
        assert emulator.stats().robots["slow"].rejected.get("throttled", 0) == 1  # only one
    assert len(emulator.messages(robot="slow")) == 2
    assert [m.msg_uuid for m in emulator.messages(robot="fast")] == fast


async def test_transient_failures_are_retried_with_the_same_msg_uuid(
    dingtalk_emulator: EmulatorServer,
) -> None:
    dingtalk_emulator.add_robot("ops")
    emulator = dingtalk_emulator.emulator
    emulator.inject_fault("http500")
    emulator.inject_fault("drop", after_accept=True)  # accepted, then the answer was lost
    emulator.inject_fault("errcode", errcode=-1)
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))], settings=fast_settings()
    )
    async with serving(relay) as api:
        message_id = await _send(api, "ops", text("disk full"))

        async def delivered() -> bool:
            return bool((await _status(api, message_id))["status"] == "delivered")

        await eventually(delivered, what="the delivery")
        history = (await _status(api, message_id))["attempt_history"]
    assert [a["outcome"] for a in history] == ["retry", "retry", "retry", "delivered"]
    assert [a["errcode"] for a in history] == [None, -1, None, None]  # 500, -1, dropped
    (message,) = emulator.messages()
    assert message.msg_uuid == message_id
    assert emulator.stats().robots["ops"].duplicates == 1  # the retry after the lost answer


async def test_a_revoked_token_is_a_dead_letter_until_retried(
    dingtalk_emulator: EmulatorServer,
) -> None:
    robot = dingtalk_emulator.add_robot("ops", token="ops-token-0123456789abcdef")
    url = dingtalk_emulator.webhook_url("ops")
    dingtalk_emulator.emulator.remove_robot("ops")
    relay = Relay([RobotTarget("ops", url)], settings=fast_settings())
    async with serving(relay) as api:
        message_id = await _send(api, "ops", text("lost?"))

        async def failed() -> bool:
            return bool((await _status(api, message_id))["status"] == "failed")

        await eventually(failed, what="the dead letter")
        detail = await _status(api, message_id)
        assert detail["last_errcode"] == 300001
        assert "webhook token" in detail["last_error"] or "token" in detail["last_error"]
        assert robot.token not in str(detail)
        assert detail["links"]["retry"] == f"/v1/messages/{message_id}/retry"
        listed = (await api.get("/v1/messages?status=failed")).json()["items"]
        assert [m["id"] for m in listed] == [message_id]

        dingtalk_emulator.emulator.add_robot(robot)  # the token works again
        retried = await api.post(f"/v1/messages/{message_id}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "queued"

        async def delivered() -> bool:
            return bool((await _status(api, message_id))["status"] == "delivered")

        await eventually(delivered, what="the delivery after the retry")
    assert relay.metrics.value("failed", "ops") == 1


async def test_a_burst_is_merged_into_digests_that_link_both_ways(
    dingtalk_emulator: EmulatorServer,
) -> None:
    dingtalk_emulator.add_robot("ops", rate_limit=20, rate_window=60)
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))],
        settings=fast_settings(coalesce_after=60.0),
    )
    emulator = dingtalk_emulator.emulator
    async with serving(relay) as api:
        batch = [{"target": "ops", "message": text(f"alert {i}")} for i in range(300)]
        batch.insert(
            100,
            {
                "target": "ops",
                "message": {
                    "msgtype": "link",
                    "link": {"title": "runbook", "text": "how to", "messageUrl": "https://e.x/r"},
                },
            },
        )
        ids = (await api.post("/v1/messages:batch", json={"messages": batch})).json()["ids"]

        async def settled() -> bool:
            page = (await api.get("/v1/messages?status=queued")).json()["items"]
            return not page and not (await api.get("/v1/messages?status=sending")).json()["items"]

        await eventually(settled, what="the backlog to drain")
        digests = (await api.get("/v1/messages?status=delivered&limit=100")).json()["items"]
        carriers = [d for d in digests if d["kind"] == "digest"]
        assert carriers and sum(d["carries"] for d in carriers) == 300
        detail = await _status(api, carriers[0]["id"])
        assert len(detail["originals"]) == carriers[0]["carries"]
        original = await _status(api, detail["originals"][0])
        assert original["status"] == "digested"
        assert original["links"]["digest"] == f"/v1/messages/{carriers[0]['id']}"
        link = await _status(api, ids[100])
        assert link["status"] == "delivered" and link["kind"] == "link"  # never merged
    sent = emulator.messages(robot="ops")
    assert len(sent) == len(carriers) + 1 <= 20  # no throttle, nothing waits for a window
    assert emulator.stats().robots["ops"].rejected == {}
    assert relay.metrics.value("digested", "ops") == 300


async def test_coalescing_can_be_turned_off_per_target(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops", rate_limit=1000, rate_window=1)
    target = RobotTarget(
        "ops",
        dingtalk_emulator.webhook_url("ops"),
        rate="1000/1s",
        options=TargetOptions(coalesce=False),
    )
    relay = Relay([target], settings=fast_settings(coalesce_after=0.0))
    async with serving(relay) as api:
        batch = [{"target": "ops", "message": text(f"alert {i}")} for i in range(40)]
        await api.post("/v1/messages:batch", json={"messages": batch})
        await eventually(
            lambda: len(dingtalk_emulator.emulator.messages()) == 40, what="40 separate messages"
        )


async def test_shutdown_releases_what_is_still_in_flight(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ops")
    dingtalk_emulator.emulator.inject_fault("delay", delay=5.0)
    relay = Relay(
        [RobotTarget("ops", dingtalk_emulator.webhook_url("ops"))],
        settings=fast_settings(shutdown_deadline=0.2),
    )
    store = relay.store
    async with serving(relay) as api:
        message_id = await _send(api, "ops", text("slow answer"))

        async def sending() -> bool:
            return bool((await _status(api, message_id))["status"] == "sending")

        await eventually(sending, what="the send to start")
        store_ = relay.store
    # The relay closed its store; read the memory store's state directly.
    await store_.open()
    message = await store.get(message_id)
    assert message.status is Status.QUEUED  # released, not failed: it goes again next start
    assert message.attempts == 0


async def test_an_app_group_target_is_paced_and_delivered(
    dingtalk_emulator: EmulatorServer,
) -> None:
    from dingpush import AsyncApp

    config = dingtalk_emulator.add_app("ops-app", groups=["Ops"])
    (cid,) = config.groups
    app = AsyncApp(
        config.app_key, config.app_secret, api_base=dingtalk_emulator.url, token_cache=False
    )
    target = AppTarget("ops-group", app, "app-group", open_conversation_id=cid, owns_app=True)
    relay = Relay([target], settings=fast_settings())
    async with serving(relay) as api:
        markdown = {"msgtype": "markdown", "markdown": {"title": "t", "text": "### hi"}}
        message_id = await _send(api, "ops-group", markdown)
        refused = await api.post(
            "/v1/messages",
            json={"target": "ops-group", "message": text("@x", at={"atUserIds": ["x"]})},
        )
        assert refused.status_code == 422 and refused.json()["field"] == "at"

        async def delivered() -> bool:
            return bool((await _status(api, message_id))["status"] == "delivered")

        await eventually(delivered, what="the app delivery")
        reply = (await _status(api, message_id))["reply"]
        assert reply["process_query_key"]
    assert config.app_secret not in str(reply)
    await asyncio.sleep(0)


async def test_no_secret_reaches_answers_metrics_or_logs(
    dingtalk_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    token, secret = "tok-" + "9" * 40, "SEC-the-right-secret-123"
    dingtalk_emulator.add_robot("ops", token=token, secret=secret)
    dingtalk_emulator.emulator.inject_fault("http500", count=2)
    url = dingtalk_emulator.webhook_url("ops")
    wrong = RobotTarget(
        "wrong",
        url,
        secret="SEC-a-wrong-secret-456",
        options=TargetOptions(ingress_token="in-" * 4),
    )
    right = RobotTarget("ops", url, secret=secret)
    relay = Relay([right, wrong], settings=fast_settings(api_tokens=("api-token-" * 3,)))
    caplog.set_level("DEBUG")
    headers = {"Authorization": "Bearer " + "api-token-" * 3}
    async with serving(relay, headers=headers) as api:
        ok = await _send(api, "ops", text("fine"))
        bad = await _send(api, "wrong", text("refused"))

        async def settled() -> bool:
            a, b = await _status(api, ok), await _status(api, bad)
            return bool(a["status"] == "delivered" and b["status"] == "failed")

        await eventually(settled, what="one delivery and one dead letter")
        answers = [
            (await api.get(path)).text
            for path in (
                f"/v1/messages/{ok}",
                f"/v1/messages/{bad}",
                "/v1/messages",
                "/v1/targets",
                "/metrics",
                "/openapi.json",
            )
        ]
        assert "signature" in (await _status(api, bad))["last_error"]
    text_ = "\n".join([*answers, caplog.text])
    for leaked in (token, secret, "SEC-a-wrong-secret-456", "in-" * 4, "api-token-" * 3):
        assert leaked not in text_
