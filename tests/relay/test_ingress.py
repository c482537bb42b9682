"""The DingTalk-compatible ingress: existing webhook tools change the host and gain the outbox."""

from __future__ import annotations

import time
import urllib.parse

import pytest
from dingtalkchatbot.chatbot import DingtalkChatbot

from dingpush import sign
from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.relay._serve import RelayServer
from dingpush.testing import EmulatorServer

from ._support import eventually, fast_settings, serving, text

INGRESS = "ops-ingress-token-0123"
INGRESS_SECRET = "SEC-ops-ingress-secret"


def _relay(emulator: EmulatorServer, **options: object) -> Relay:
    emulator.add_robot("ops", secret="SEC-the-real-robot-secret")
    target = RobotTarget(
        "ops",
        emulator.webhook_url("ops"),
        secret="SEC-the-real-robot-secret",
        options=TargetOptions(ingress_token=INGRESS, **options),  # type: ignore[arg-type]
    )
    return Relay([target], settings=fast_settings(port=0))


def test_dingtalkchatbot_pointed_at_the_relay_is_delivered(
    dingtalk_emulator: EmulatorServer,
) -> None:
    relay = _relay(dingtalk_emulator, ingress_secret=INGRESS_SECRET)
    with RelayServer(relay) as server:
        bot = DingtalkChatbot(
            f"{server.url}/robot/send?access_token={INGRESS}", secret=INGRESS_SECRET
        )
        reply = bot.send_text(msg="deploy finished", at_mobiles=["13800000000"])
        assert reply["errcode"] == 0 and reply["relay_id"]
        markdown = bot.send_markdown(title="CPU", text="### web-01 97%")
        assert markdown["errcode"] == 0
        emulator = dingtalk_emulator.emulator
        deadline = time.monotonic() + 30
        while len(emulator.messages(robot="ops")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    sent = emulator.messages(robot="ops")
    assert [m.msgtype for m in sent] == ["text", "markdown"]
    assert sent[0].msg_uuid == reply["relay_id"]
    assert sent[0].at.mobiles == ("13800000000",)


@pytest.mark.anyio
async def test_ingress_refusals_speak_dingtalk(dingtalk_emulator: EmulatorServer) -> None:
    relay = _relay(dingtalk_emulator, ingress_secret=INGRESS_SECRET)
    async with serving(relay) as api:
        unknown = await api.post("/robot/send?access_token=nope", json=text("x"))
        assert unknown.status_code == 200 and unknown.json()["errcode"] == 300001
        unsigned = await api.post(f"/robot/send?access_token={INGRESS}", json=text("x"))
        assert unsigned.json()["errcode"] == 310000
        now_ms = int(relay.clock.time() * 1000)
        bad = f"/robot/send?access_token={INGRESS}&timestamp={now_ms}&sign=AAAA"
        assert (await api.post(bad, json=text("x"))).json()["errcode"] == 310000
        stale_ms = now_ms - 2 * 3_600_000
        stale = (
            f"/robot/send?access_token={INGRESS}&timestamp={stale_ms}"
            f"&sign={sign(INGRESS_SECRET, stale_ms)}"
        )
        assert "timestamp" in (await api.post(stale, json=text("x"))).json()["errmsg"]
        good = f"/robot/send?access_token={INGRESS}&timestamp={now_ms}"
        good += "&sign=" + urllib.parse.quote_plus(sign(INGRESS_SECRET, now_ms))
        json_type = {"Content-Type": "application/json"}
        assert (await api.post(good, content=b"{nope", headers=json_type)).json()[
            "errcode"
        ] == 40035
        kind = await api.post(good, json={"msgtype": "sms"})
        assert kind.json()["errcode"] == 400105
        first = await api.post(good, json={**text("once"), "msgUuid": "sender-1"})
        again = await api.post(good, json={**text("once"), "msgUuid": "sender-1"})
        assert first.json()["errcode"] == again.json()["errcode"] == 0
        assert first.json()["relay_id"] == again.json()["relay_id"]  # the sender's retry
        await eventually(
            lambda: len(dingtalk_emulator.emulator.messages()) == 1, what="one delivery"
        )
        for answer in (unknown, unsigned, first):
            assert "SEC-the-real-robot-secret" not in answer.text
            assert INGRESS_SECRET not in answer.text


@pytest.mark.anyio
async def test_the_ingress_refuses_loose_types_with_dingtalks_40035(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # 40035 缺少参数 json is DingTalk's code for a body it cannot take (protocol §1.6).
    relay = _relay(dingtalk_emulator)
    async with serving(relay) as api:
        url = f"/robot/send?access_token={INGRESS}"
        for value in ("false", "no", "0", "", 1):
            body = {**text("no ping"), "at": {"isAtAll": value}}
            answer = await api.post(url, json=body)
            assert answer.status_code == 200
            assert answer.json()["errcode"] == 40035
            assert "at.isAtAll" in answer.json()["errmsg"]
        mobiles = await api.post(url, json={**text("x"), "at": {"atMobiles": "123"}})
        assert mobiles.json()["errcode"] == 40035
        # Unknown fields are ignored, as DingTalk ignores them (protocol §9.6 leaves it open).
        extra = await api.post(url, json={**text("fine"), "at": {"isAtALL": True}, "x": 1})
        assert extra.json()["errcode"] == 0
        page = (await api.get("/v1/messages")).json()["items"]
        assert len(page) == 1
        stored = (await api.get(f"/v1/messages/{page[0]['id']}")).json()["payload"]
        assert stored == text("fine")
