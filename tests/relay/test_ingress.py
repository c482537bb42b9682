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
        assert (await api.post(good, content=b"{nope")).json()["errcode"] == 40035
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
