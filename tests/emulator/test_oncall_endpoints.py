"""The emulator's §11–§14 endpoints on the wire: DingTalk's checks, codes and shapes.

These talk raw HTTP (no dingpush client), so the emulator's answers are checked as DingTalk's
own, including what the client refuses before sending (too many keys, too many receivers).
"""

from __future__ import annotations

import typing
import urllib.parse

import httpx
import pytest

from dingpush.emulator import ROBOT_PERMISSION
from dingpush.testing import EmulatorServer

APP_KEY = "dingwireapp00001"
APP_SECRET = "wire-app-secret-0123456789abcdef"


@pytest.fixture
def wire(dingtalk_emulator: EmulatorServer) -> typing.Iterator[httpx.Client]:
    dingtalk_emulator.add_app(
        "wire", APP_KEY, APP_SECRET, users=[f"u{i}" for i in range(30)], groups=["Ops"]
    )
    with httpx.Client(base_url=dingtalk_emulator.url) as client:
        token = client.post(
            "/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
        ).json()["accessToken"]
        client.headers["x-acs-dingtalk-access-token"] = token
        yield client


def cid(server: EmulatorServer) -> str:
    return next(iter(server.emulator.app("wire").groups))


def send_group(wire: httpx.Client, server: EmulatorServer) -> str:
    body = {
        "robotCode": APP_KEY,
        "openConversationId": cid(server),
        "msgKey": "sampleText",
        "msgParam": '{"content":"x"}',
    }
    return str(wire.post("/v1.0/robot/groupMessages/send", json=body).json()["processQueryKey"])


def test_recall_caps_keys_at_20(wire: httpx.Client, dingtalk_emulator: EmulatorServer) -> None:
    body = {
        "robotCode": APP_KEY,
        "openConversationId": cid(dingtalk_emulator),
        "processQueryKeys": [f"k{i}" for i in range(21)],
    }
    answer = wire.post("/v1.0/robot/groupMessages/recall", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalidParameter.processQueryKeys.overMax"
    assert "requestid" in answer.json()


def test_recall_answer_shape_and_path_casing(
    wire: httpx.Client, dingtalk_emulator: EmulatorServer
) -> None:
    key = send_group(wire, dingtalk_emulator)
    body = {
        "robotCode": APP_KEY,
        "openConversationId": cid(dingtalk_emulator),
        "processQueryKeys": [key],
    }
    answer = wire.post("/v1.0/robot/groupMessages/recall", json=body)
    assert answer.json() == {"successResult": [key], "failedResult": {}}
    # §11: 1:1 recall is otoMessages/batchRecall, the read status oToMessages/readStatus.
    assert wire.post("/v1.0/robot/oToMessages/batchRecall", json=body).status_code == 404


def test_group_query_pages_and_refuses_a_page_over_200(
    wire: httpx.Client, dingtalk_emulator: EmulatorServer
) -> None:
    key = send_group(wire, dingtalk_emulator)
    dingtalk_emulator.emulator.read_app_message(key, ["u1", "u2", "u3"])
    body: dict[str, typing.Any] = {
        "robotCode": APP_KEY,
        "openConversationId": cid(dingtalk_emulator),
        "processQueryKey": key,
        "maxResults": 2,
        "nextToken": "",
    }
    first = wire.post("/v1.0/robot/groupMessages/query", json=body).json()
    assert first["readUserIds"] == ["u1", "u2"] and first["hasMore"] is True
    second = wire.post(
        "/v1.0/robot/groupMessages/query", json={**body, "nextToken": first["nextToken"]}
    ).json()
    assert second == {
        "sendStatus": "SUCCESS",
        "readUserIds": ["u3"],
        "nextToken": "",
        "hasMore": False,
    }
    too_big = wire.post("/v1.0/robot/groupMessages/query", json={**body, "maxResults": 201})
    assert too_big.json()["code"] == "invalidParameter.pageSize.invalid"


def test_oto_read_status_is_a_get_with_the_key_encoded(wire: httpx.Client) -> None:
    sent = wire.post(
        "/v1.0/robot/oToMessages/batchSend",
        json={
            "robotCode": APP_KEY,
            "userIds": ["u1", "u2"],
            "msgKey": "sampleText",
            "msgParam": '{"content":"x"}',
        },
    ).json()
    key = sent["processQueryKey"]
    query = urllib.parse.urlencode({"robotCode": APP_KEY, "processQueryKey": key})
    answer = wire.get(f"/v1.0/robot/oToMessages/readStatus?{query}").json()
    assert answer["sendStatus"] == "SUCCESS"
    assert [i["readStatus"] for i in answer["messageReadInfoList"]] == ["UNREAD", "UNREAD"]
    # Unencoded, "+" reads as a space: the key is not found.
    raw = wire.get(f"/v1.0/robot/oToMessages/readStatus?robotCode={APP_KEY}&processQueryKey={key}")
    if "+" in key:
        assert raw.json()["code"] == "invalid.processQueryKey"


def test_ding_caps_and_codes(wire: httpx.Client, dingtalk_emulator: EmulatorServer) -> None:
    users = [f"u{i}" for i in range(21)]
    body: dict[str, typing.Any] = {
        "robotCode": APP_KEY,
        "receiverUserIdList": users,
        "content": "x",
        "remindType": 3,
    }
    over = wire.post("/v1.0/robot/ding/send", json=body)
    assert over.status_code == 400 and over.json()["code"] == "ding.receivercount.limit"
    assert wire.post("/v1.0/robot/ding/send", json={**body, "remindType": 1}).status_code == 200
    bad = wire.post("/v1.0/robot/ding/send", json={**body, "remindType": 0})
    assert bad.json()["code"] == "invalidParameter.param.invalid"
    nobody = wire.post("/v1.0/robot/ding/send", json={**body, "receiverUserIdList": ["ghost"]})
    assert nobody.json()["code"] == "miss.staffId"
    dingtalk_emulator.emulator.update_app("wire", paid_ding=False)
    quota = wire.post("/v1.0/robot/ding/send", json={**body, "receiverUserIdList": ["u1"]})
    assert quota.json()["code"] == "ding.serverquota.insufficient"


def test_permissions(wire: httpx.Client, dingtalk_emulator: EmulatorServer) -> None:
    key = send_group(wire, dingtalk_emulator)
    dingtalk_emulator.emulator.update_app("wire", permissions=(ROBOT_PERMISSION,))
    ding = wire.post(
        "/v1.0/robot/ding/send",
        json={"robotCode": APP_KEY, "receiverUserIdList": ["u1"], "content": "x", "remindType": 1},
    )
    assert ding.status_code == 403
    assert ding.json()["accessdenieddetail"]["requiredScopes"] == ["Premium.Ding.Write"]
    dingtalk_emulator.emulator.update_app("wire", permissions=())
    recall = wire.post(
        "/v1.0/robot/groupMessages/recall",
        json={
            "robotCode": APP_KEY,
            "openConversationId": cid(dingtalk_emulator),
            "processQueryKeys": [key],
        },
    )
    assert recall.status_code == 403


def test_stream_open_refuses_wrong_credentials_and_gives_a_ticket(
    dingtalk_emulator: EmulatorServer, wire: httpx.Client
) -> None:
    subscriptions = [{"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]
    wrong = wire.post(
        "/v1.0/gateway/connections/open",
        json={"clientId": APP_KEY, "clientSecret": "no", "subscriptions": subscriptions},
    )
    assert wrong.status_code == 400
    good = wire.post(
        "/v1.0/gateway/connections/open",
        json={"clientId": APP_KEY, "clientSecret": APP_SECRET, "subscriptions": subscriptions},
    ).json()
    assert good["endpoint"].startswith("ws://127.0.0.1:") and good["ticket"]


def test_session_webhook_answers_300001_once_expired(
    dingtalk_emulator: EmulatorServer, wire: httpx.Client
) -> None:
    from dingpush.testing import FakeClock

    clock = FakeClock()
    dingtalk_emulator.emulator.clock = clock
    body = dingtalk_emulator.emulator.post_as_user("wire", "u1", "hi", group="Ops")
    assert body is not None
    url = body["sessionWebhook"]
    reply = {"msgtype": "text", "text": {"content": "ok"}}
    assert httpx.post(url, json=reply).json()["errcode"] == 0
    clock.advance(90 * 60)
    assert httpx.post(url, json=reply).json()["errcode"] == 300001
