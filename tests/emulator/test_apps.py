"""The emulator's app APIs at the HTTP level (protocol §2–§5, §8): bodies, codes, limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dingpush.emulator import AppConfig, Emulator, EmulatorOptions, RobotConfig, create_app
from dingpush.emulator._appchecks import MSG_KEYS, parse_multipart
from dingpush.testing import FakeClock

pytestmark = pytest.mark.anyio

KEY = "dingemu0123456789abc"
SECRET = "emulator-app-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
AGENT = 2_000_000_001
CID = "cidOpsGroup0001=="
SEND = "/v1.0/robot/groupMessages/send"
BATCH = "/v1.0/robot/oToMessages/batchSend"
NOTICE = "/topapi/message/corpconversation/asyncsend_v2"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Emulator:
    app = AppConfig(
        "ops",
        KEY,
        SECRET,
        agent_id=AGENT,
        users=("alice", "bob", "carol"),
        departments={"7": ("dave",)},
        groups={CID: "Ops"},
    )
    return Emulator(clock=clock, apps=[app])


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(emulator))
    async with httpx.AsyncClient(transport=transport, base_url="http://dingtalk.test") as client:
        yield client


async def token(client: httpx.AsyncClient) -> str:
    reply = await client.post("/v1.0/oauth2/accessToken", json={"appKey": KEY, "appSecret": SECRET})
    return str(reply.json()["accessToken"])


async def robot(
    client: httpx.AsyncClient, path: str = SEND, tok: str | None = None, **body: Any
) -> httpx.Response:
    payload: dict[str, Any] = {"robotCode": KEY, "msgKey": "sampleText"}
    payload["msgParam"] = json.dumps({"content": "hi"})
    payload["openConversationId" if path == SEND else "userIds"] = (
        CID if path == SEND else ["alice"]
    )
    payload.update(body)
    headers = {"x-acs-dingtalk-access-token": tok or await token(client)}
    return await client.post(
        path, json={k: v for k, v in payload.items() if v is not None}, headers=headers
    )


async def notice(client: httpx.AsyncClient, msg: Any = None, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"agent_id": AGENT, "userid_list": "alice"}
    payload["msg"] = msg if msg is not None else {"msgtype": "text", "text": {"content": "hi"}}
    payload.update(body)
    payload = {k: v for k, v in payload.items() if v is not None}
    reply = await client.post(f"{NOTICE}?access_token={await token(client)}", json=payload)
    assert reply.status_code == 200
    return dict(reply.json())


class TestTokens:
    async def test_same_token_while_valid_new_after_expiry(
        self, client: httpx.AsyncClient, emulator: Emulator, clock: FakeClock
    ) -> None:
        body = {"appKey": KEY, "appSecret": SECRET}
        first = (await client.post("/v1.0/oauth2/accessToken", json=body)).json()
        assert first["expireIn"] == 7200 and len(first["accessToken"]) == 32
        clock.advance(7000)
        again = (await client.post("/v1.0/oauth2/accessToken", json=body)).json()
        assert again["accessToken"] == first["accessToken"]
        clock.advance(7199)  # the life was extended by the second fetch
        assert (await robot(client, tok=first["accessToken"])).status_code == 200
        clock.advance(2)
        expired = await robot(client, tok=first["accessToken"])
        assert expired.status_code == 400 and expired.json()["code"] == "InvalidAuthentication"
        fresh = (await client.post("/v1.0/oauth2/accessToken", json=body)).json()
        assert fresh["accessToken"] != first["accessToken"]
        assert emulator.token_requests("ops") == 3

    async def test_bad_credentials_and_missing_body(self, client: httpx.AsyncClient) -> None:
        wrong = await client.post(
            "/v1.0/oauth2/accessToken", json={"appKey": KEY, "appSecret": "nope"}
        )
        assert wrong.status_code == 400
        assert wrong.json()["code"] == "invalidClientIdOrSecret"
        assert wrong.json()["requestid"] == wrong.headers["x-acs-request-id"]
        form = await client.post(
            "/v1.0/oauth2/accessToken", data={"appKey": KEY, "appSecret": SECRET}
        )
        assert form.status_code == 400 and form.json()["code"] == "Missingbody"

    async def test_legacy_gettoken_shares_the_tokens(self, client: httpx.AsyncClient) -> None:
        reply = (await client.get(f"/gettoken?appkey={KEY}&appsecret={SECRET}")).json()
        assert reply["errcode"] == 0 and reply["expires_in"] == 7200
        assert reply["access_token"] == await token(client)  # interchangeable (§2.5)
        bad = (await client.get(f"/gettoken?appkey={KEY}&appsecret=x")).json()
        assert bad["errcode"] == 40089
        missing = (await client.get(f"/gettoken?appkey={KEY}")).json()
        assert missing["errcode"] == 41004

    async def test_gettoken_errcode_is_an_option(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        emulator.options = EmulatorOptions(gettoken_bad_credentials_errcode=40001)
        bad = (await client.get(f"/gettoken?appkey={KEY}&appsecret=x")).json()
        assert bad["errcode"] == 40001

    async def test_v1_auth_is_the_header(self, client: httpx.AsyncClient) -> None:
        tok = await token(client)
        reply = await client.post(
            f"{SEND}?access_token={tok}", json={"robotCode": KEY}
        )  # an oapi-style query token does not count on v1.0
        assert reply.status_code == 400 and reply.json()["code"] == "InvalidAuthentication"


class TestGroupSend:
    async def test_accepted_and_recorded(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        reply = await robot(client)
        assert reply.status_code == 200 and reply.json()["processQueryKey"]
        (message,) = emulator.messages(robot="ops")
        assert (message.conversation_id, message.channel, message.msgtype) == (
            CID,
            "app-robot",
            "sampleText",
        )
        assert message.payload == {"msgKey": "sampleText", "msgParam": {"content": "hi"}}
        assert [c.title for c in emulator.conversations()] == ["Ops"]

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"robotCode": None}, "invalidParameter.robotCode.empty"),
            ({"robotCode": "dingother"}, "invalidParameter.robotCode.auth"),
            ({"openConversationId": None}, "miss.openConversationId"),
            ({"openConversationId": "cidUnknown=="}, "invalid.openConversationId"),
            ({"msgKey": ""}, "invalidParameter.msgKey.empty"),
            ({"msgKey": "sampleFeedCard"}, "invalidParameter.msgKey.invalid"),
            ({"msgParam": {"content": "hi"}}, "invalidParameter.msgParam.invalid"),
            ({"msgParam": "not json"}, "invalidParameter.msgParam.invalid"),
            ({"msgParam": "{}"}, "miss.param.contentOfText"),
            ({"msgKey": "sampleMarkdown"}, "miss.param.title"),
            (
                {"msgParam": json.dumps({"content": "x" * 15_000})},
                "invalidParameter.msgParam.tooLong",
            ),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, body: dict[str, Any], code: str
    ) -> None:
        reply = await robot(client, **body)
        assert reply.status_code == 400
        assert reply.json()["code"] == code and reply.json()["requestid"]

    async def test_15000_bytes_exactly_is_accepted(self, client: httpx.AsyncClient) -> None:
        param = json.dumps(
            {"content": "字" * 4995 + "x"}, ensure_ascii=False, separators=(",", ":")
        )
        assert len(param.encode()) == 15_000
        assert (await robot(client, msgParam=param)).status_code == 200

    async def test_msg_param_object_is_an_option(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        emulator.options = EmulatorOptions(msg_param_object_ok=True)
        assert (await robot(client, msgParam={"content": "hi"})).status_code == 200

    async def test_body_must_be_json(self, client: httpx.AsyncClient) -> None:
        reply = await client.post(
            SEND,
            content=b"robotCode=x",
            headers={
                "x-acs-dingtalk-access-token": await token(client),
                "content-type": "application/x-www-form-urlencoded",
            },
        )
        assert reply.json()["code"] == "invalidParameter.msgBody.invalid"

    async def test_permission(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        emulator.update_app("ops", permissions=())
        reply = await robot(client)
        assert reply.status_code == 403
        body = reply.json()
        assert body["code"] == "Forbidden.AccessDenied.AccessTokenPermissionDenied"
        assert body["accessdenieddetail"] == {"requiredScopes": ["qyapi_robot_sendmsg"]}

    @pytest.mark.parametrize("key", sorted(MSG_KEYS))
    async def test_every_msg_key(
        self, client: httpx.AsyncClient, emulator: Emulator, key: str
    ) -> None:
        media = emulator.add_media("ops", b"%", filename="a.pdf", content_type="application/pdf")
        param = {
            name: media.media_id if "edia" in name else f"{name}-value" for name in MSG_KEYS[key]
        }
        if key == "sampleImageMsg":
            param["photoURL"] = "https://example.com/a.png"
        reply = await robot(client, msgKey=key, msgParam=json.dumps(param))
        assert reply.status_code == 200, reply.json()
        missing = dict(param)
        missing.pop(MSG_KEYS[key][-1])
        refused = await robot(client, msgKey=key, msgParam=json.dumps(missing))
        assert refused.json()["code"].startswith("miss.param.")

    async def test_unknown_media_ids_are_refused(self, client: httpx.AsyncClient) -> None:
        param = {"mediaId": "@nope", "fileName": "a.pdf", "fileType": "pdf"}
        reply = await robot(client, msgKey="sampleFile", msgParam=json.dumps(param))
        assert reply.json()["code"] == "invalidParameter.msgParam.invalid"
        image = await robot(client, msgKey="sampleImageMsg", msgParam='{"photoURL":"@nope"}')
        assert image.status_code == 400


class TestBatchSend:
    async def test_lists(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        emulator.update_app("ops", flow_controlled_users=("bob",))
        reply = await robot(client, BATCH, userIds=["alice", "bob", "ghost"])
        assert reply.json()["invalidStaffIdList"] == ["ghost"]
        assert reply.json()["flowControlledStaffIdList"] == ["bob"]
        (message,) = emulator.messages()
        assert message.conversation_id == emulator.conversation_of_user("alice").id
        assert [c.kind for c in emulator.conversations()] == ["group", "user"]

    async def test_user_cap(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        users = [f"u{i}" for i in range(21)]
        over = await robot(client, BATCH, userIds=users)
        assert over.json()["code"] == "invalidParameter.userIds.overMax"
        assert "20" in over.json()["message"]
        emulator.options = EmulatorOptions(oto_user_cap=100)
        assert (await robot(client, BATCH, userIds=users)).status_code == 200
        empty = await robot(client, BATCH, userIds=[])
        assert empty.json()["code"] == "invalidParameter.userIds.empty"


class TestWorkNotifications:
    async def test_json_and_form_bodies(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        reply = await notice(client)
        assert reply["errcode"] == 0 and reply["task_id"] and reply["request_id"]
        form = await client.post(
            f"{NOTICE}?access_token={await token(client)}",
            data={
                "agent_id": str(AGENT),
                "userid_list": "bob,carol",
                "msg": json.dumps({"msgtype": "markdown", "markdown": {"title": "t", "text": "x"}}),
            },
        )
        assert form.json()["errcode"] == 0
        assert [m.channel for m in emulator.messages()] == ["work-notice"] * 3

    @pytest.mark.parametrize(
        ("msg", "body", "errcode"),
        [
            (None, {"agent_id": None}, 40035),
            (None, {"agent_id": 1}, 40056),
            (None, {"userid_list": ["alice"]}, 40035),
            (None, {"userid_list": ""}, 40035),
            ({"msgtype": "feedCard"}, {}, 40008),
            ({"msgtype": "text", "text": {}}, {}, 40035),
            ({"msgtype": "image", "image": {"media_id": "@nope"}}, {}, 40007),
            ({"msgtype": "text", "text": {"content": "x" * 2040}}, {}, 34016),
            ({"msgtype": "action_card", "action_card": {"title": "t", "markdown": "m"}}, {}, 40035),
            (
                {
                    "msgtype": "oa",
                    "oa": {
                        "message_url": "https://e.com",
                        "head": {"bgcolor": "FFBBBBBB"},
                        "status_bar": {"status_value": "x"},
                        "body": {"title": "t"},
                    },
                },
                {"dept_id_list": "7"},
                40035,
            ),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, msg: Any, body: dict[str, Any], errcode: int
    ) -> None:
        assert (await notice(client, msg, **body))["errcode"] == errcode

    async def test_2048_bytes_exactly_is_accepted(self, client: httpx.AsyncClient) -> None:
        msg = {"msgtype": "text", "text": {"content": ""}}
        overhead = len(json.dumps(msg, separators=(",", ":")))
        msg["text"]["content"] = "x" * (2048 - overhead)  # type: ignore[index]
        assert (await notice(client, msg))["errcode"] == 0

    async def test_invalid_token(self, client: httpx.AsyncClient) -> None:
        reply = await client.post(f"{NOTICE}?access_token=nope", json={})
        assert reply.status_code == 200 and reply.json()["errcode"] == 40014
        assert reply.headers["server"] == "DingTalk/1.0.0"

    async def test_same_content_once_a_day_and_daily_cap(
        self, client: httpx.AsyncClient, emulator: Emulator, clock: FakeClock
    ) -> None:
        emulator.update_app("ops", notice_daily_cap=2)
        tasks = [
            (await notice(client, {"msgtype": "text", "text": {"content": c}}))["task_id"]
            for c in ("a", "a", "b", "c")
        ]
        results = [task.send_result() for task in emulator.notice_tasks()]
        assert [r["forbidden_list"] for r in results] == [
            [],
            [{"code": "143106", "count": 1, "userid": "alice"}],
            [],
            [{"code": "143105", "count": 1, "userid": "alice"}],
        ]
        assert len(emulator.messages()) == 2
        clock.advance(24 * 3600)  # a new day
        assert (await notice(client, {"msgtype": "text", "text": {"content": "a"}}))["errcode"] == 0
        assert len(emulator.messages()) == 3
        assert len(tasks) == 4

    async def test_departments_and_everyone(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        await notice(client, userid_list="", dept_id_list="7,99")
        (task,) = emulator.notice_tasks()
        assert task.delivered == ("dave",) and task.invalid_dept_ids == ("99",)
        await notice(
            client,
            {"msgtype": "text", "text": {"content": "all"}},
            userid_list="",
            to_all_user=True,
        )
        assert len(emulator.messages()) == 1 + 4

    async def test_progress_and_result(
        self, client: httpx.AsyncClient, emulator: Emulator, clock: FakeClock
    ) -> None:
        task_id = (await notice(client))["task_id"]
        tok = await token(client)
        query = {"agent_id": AGENT, "task_id": task_id}
        progress = await client.post(
            f"/topapi/message/corpconversation/getsendprogress?access_token={tok}", json=query
        )
        assert progress.json()["progress"] == {"progress_in_percent": 100, "status": 2}
        emulator.read_notice(task_id, ["alice"])
        result = await client.post(
            f"/topapi/message/corpconversation/getsendresult?access_token={tok}", json=query
        )
        assert result.json()["send_result"]["read_user_id_list"] == ["alice"]
        unknown = await client.post(
            f"/topapi/message/corpconversation/getsendresult?access_token={tok}",
            json={"agent_id": AGENT, "task_id": 1},
        )
        assert unknown.json()["errcode"] == 40035
        clock.advance(86_401)  # past the 24-hour query window (§4.2)
        tok = await token(client)
        late = await client.post(
            f"/topapi/message/corpconversation/getsendresult?access_token={tok}", json=query
        )
        assert late.json()["errcode"] == 40035
        emulator.options = EmulatorOptions(notice_query_window=7 * 86_400)
        later = await client.post(
            f"/topapi/message/corpconversation/getsendresult?access_token={tok}", json=query
        )
        assert later.json()["errcode"] == 0


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


class TestMedia:
    async def upload(
        self,
        client: httpx.AsyncClient,
        data: bytes = PNG,
        filename: str = "a.png",
        kind: str | None = "image",
        query: str = "",
    ) -> dict[str, Any]:
        files = {"media": (filename, data, "image/png")}
        form = {"type": kind} if kind else {}
        reply = await client.post(
            f"/media/upload?access_token={await token(client)}{query}", data=form, files=files
        )
        return dict(reply.json())

    async def test_upload_and_fetch(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        reply = await self.upload(client)
        assert reply["errcode"] == 0 and reply["type"] == "image"
        assert reply["media_id"].startswith("$") and reply["created_at"] > 0
        served = await client.get(f"/_emulator/media/{reply['media_id']}")
        assert served.content == PNG and served.headers["content-type"] == "image/png"
        listed = (await client.get("/_emulator/media")).json()["media"]
        assert listed[0]["size"] == len(PNG) and "data" not in listed[0]
        via_query = await self.upload(client, kind=None, query="&type=image")
        assert via_query["errcode"] == 0
        assert len(emulator.media_items()) == 2

    @pytest.mark.parametrize(
        ("kwargs", "errcode"),
        [
            ({"kind": None}, 40004),
            ({"kind": "sticker"}, 40004),
            ({"data": b""}, 44001),
            ({"filename": "a.webp"}, 40005),
            ({"filename": "a.pdf", "kind": "voice"}, 40005),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, kwargs: dict[str, Any], errcode: int
    ) -> None:
        assert (await self.upload(client, **kwargs))["errcode"] == errcode

    async def test_missing_media_part(self, client: httpx.AsyncClient) -> None:
        url = f"/media/upload?access_token={await token(client)}"
        not_multipart = await client.post(url, data={"type": "image"})
        assert not_multipart.json()["errcode"] == 41005
        other_part = await client.post(
            url, data={"type": "image"}, files={"file": ("a.png", PNG, "image/png")}
        )
        assert other_part.json()["errcode"] == 41005

    async def test_size_limits_follow_the_option(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        big = PNG + b"\0" * (1024 * 1024)
        assert (await self.upload(client, big))["errcode"] == 0  # current page: 20 MB
        emulator.options = EmulatorOptions(media_limits="legacy")  # old table: 1 MB images
        assert (await self.upload(client, big))["errcode"] == 40006

    async def test_unknown_media(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/_emulator/media/$nope")).status_code == 404


def test_parse_multipart_keeps_binary_intact() -> None:
    data = b"\r\n--x\r\n\0\xff"
    body = (
        b'--B\r\nContent-Disposition: form-data; name="type"\r\n\r\nfile\r\n'
        b'--B\r\nContent-Disposition: form-data; name="media"; filename="a b.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + data + b"\r\n--B--\r\n"
    )
    parts = parse_multipart("multipart/form-data; boundary=B", body)
    assert parts is not None
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("type", None, b"file"),
        ("media", "a b.pdf", data),
    ]
    assert parse_multipart("application/json", body) is None


class TestWireFidelity:
    """Wrong methods, a missing token and the v1.0 content type, as DingTalk answers them."""

    @pytest.mark.parametrize(
        ("method", "path", "errcode", "errmsg"),
        [
            ("POST", "/gettoken", 43001, "需要GET请求"),
            ("GET", NOTICE, 43002, "需要POST请求"),
            ("PUT", "/topapi/message/corpconversation/getsendresult", 43002, "需要POST请求"),
            ("GET", "/media/upload", 43002, "需要POST请求"),
        ],
    )
    async def test_a_wrong_method_on_a_legacy_oapi_route(
        self,
        client: httpx.AsyncClient,
        emulator: Emulator,
        method: str,
        path: str,
        errcode: int,
        errmsg: str,
    ) -> None:
        # The official global error table's 43001/43002, as every oapi error: HTTP 200.
        reply = await client.request(method, f"{path}?access_token={await token(client)}")
        assert reply.status_code == 200
        body = reply.json()
        assert (body["errcode"], body["errmsg"]) == (errcode, errmsg)
        assert reply.headers["server"] == "DingTalk/1.0.0"
        record = emulator.rejections()[-1]
        assert (record.path, record.reason, record.errcode) == (path, "wrong_method", errcode)

    async def test_a_wrong_method_can_answer_a_bare_405(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        emulator.options = EmulatorOptions(wrong_method="http405")
        reply = await client.get(NOTICE)
        assert reply.status_code == 405 and reply.headers["allow"] == "POST"

    async def test_head_is_a_get_for_gettoken(self, client: httpx.AsyncClient) -> None:
        reply = await client.head(f"/gettoken?appkey={KEY}&appsecret={SECRET}")
        assert reply.status_code == 200

    @pytest.mark.parametrize("query", ["", "?access_token=", "?agent_id=1"])
    async def test_a_missing_access_token_is_41001(
        self, client: httpx.AsyncClient, emulator: Emulator, query: str
    ) -> None:
        # §2.5: 41001 缺少access_token参数 when the parameter is missing, 40014 when wrong.
        for path in (NOTICE, "/media/upload"):
            reply = await client.post(path + query, json={})
            assert reply.json()["errcode"] == 41001
            assert reply.json()["errmsg"] == "缺少access_token参数"
        assert {r.reason for r in emulator.rejections()} == {"missing_token"}
        wrong = await client.post(f"{NOTICE}?access_token=nope", json={})
        assert wrong.json()["errcode"] == 40014

    async def test_v1_answers_are_json_in_utf8(self, client: httpx.AsyncClient) -> None:
        # §3.4: api.dingtalk.com sends Content-Type: application/json;charset=utf-8.
        refused = await client.post(
            "/v1.0/oauth2/accessToken", json={"appKey": KEY, "appSecret": "wrong"}
        )
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/json;charset=utf-8"
        sent = await robot(client)
        assert sent.headers["content-type"] == "application/json;charset=utf-8"
        bad_token = await robot(client, tok="nope")
        assert bad_token.headers["content-type"] == "application/json;charset=utf-8"


class TestControl:
    async def test_apps_api(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        await token(client)
        (listed,) = (await client.get("/_emulator/apps")).json()["apps"]
        assert listed["app_key"] == KEY and listed["token_requests"] == 1
        assert SECRET not in json.dumps(listed)
        added = await client.post(
            "/_emulator/apps",
            json={"name": "hr", "app_key": "dinghr", "app_secret": "s" * 32, "users": ["x"]},
        )
        assert added.status_code == 201 and added.json()["robot_code"] == "dinghr"
        patched = await client.patch("/_emulator/apps/hr", json={"permissions": []})
        assert patched.json()["permissions"] == []
        bad = await client.patch("/_emulator/apps/hr", json={"name": "x"})
        assert bad.status_code == 400
        assert (await client.post("/_emulator/apps/ops/expire-tokens")).status_code == 200
        assert (await client.delete("/_emulator/apps/hr")).json() == {"deleted": "hr"}
        assert (await client.get("/_emulator/apps/hr")).status_code == 404
        duplicate = await client.post(
            "/_emulator/apps", json={"name": "other", "app_key": KEY, "app_secret": "s"}
        )
        assert duplicate.status_code == 400

    async def test_notices_api(self, client: httpx.AsyncClient) -> None:
        task_id = (await notice(client))["task_id"]
        read = await client.post(f"/_emulator/notices/{task_id}/read", json={"users": ["alice"]})
        assert read.json()["send_result"]["read_user_id_list"] == ["alice"]
        (listed,) = (await client.get("/_emulator/notices")).json()["notices"]
        assert listed["task_id"] == task_id
        assert (
            await client.post("/_emulator/notices/1/read", json={"users": []})
        ).status_code == 404

    async def test_reset(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        await robot(client)
        emulator.reset()
        assert emulator.apps() and emulator.messages() == []
        assert [c.id for c in emulator.conversations()] == [CID]
        assert emulator.token_requests() == 0
        emulator.reset(robots=True)
        assert emulator.apps() == []

    async def test_app_and_webhook_robot_share_a_group(self, emulator: Emulator) -> None:
        emulator.add_robot(RobotConfig("hook", "hook-token", group="Ops"))
        titles: Any = ["Ops"]  # AppConfig also takes bare titles; ids are derived from them
        emulator.add_app(AppConfig("second", "dingsecond", "s" * 32, groups=titles))
        ops = [c for c in emulator.conversations() if c.title == "Ops"]
        assert len({c.id for c in ops}) == 2  # "ops" uses an explicit id; "second" the derived one
        assert emulator.conversation_of("hook").id == next(iter(emulator.app("second").groups))


class TestFaults:
    async def test_faults_reach_app_paths(
        self, client: httpx.AsyncClient, emulator: Emulator
    ) -> None:
        tok = await token(client)
        emulator.inject_fault("http500", path=SEND)
        assert (await robot(client, tok=tok)).status_code == 500
        emulator.inject_fault("errcode", path=NOTICE, errcode=-1)
        busy = await notice(client)
        assert busy["errcode"] == -1
        emulator.inject_fault("errcode", path=SEND)
        system = await robot(client, tok=tok)
        assert system.status_code == 500 and system.json()["code"] == "system.error"
        emulator.inject_fault(
            "errcode", robot="ops", errmsg="Forbidden.AccessDenied.QpsLimitForApi"
        )
        throttled = await robot(client, tok=tok)
        assert throttled.status_code == 403
        reasons = [r.reason for r in emulator.requests() if r.fault]
        assert reasons == ["fault", "fault", "fault", "fault"]


def test_python_m_dingpush_emulator_serves_apps() -> None:
    import signal
    import subprocess
    import sys

    from dingpush import App

    from .test_server import subprocess_env

    command = [sys.executable, "-m", "dingpush.emulator", "--port", "0", "--robot", "hook"]
    command += ["--app", f"ops:{KEY}:{SECRET}", "--app-user", "alice", "--app-group", "Ops"]
    with subprocess.Popen(
        command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
            lines = [proc.stdout.readline()]
            while "control API:" not in lines[-1]:
                lines.append(proc.stdout.readline())
            assert f"AppKey={KEY}" in lines[1] and "AgentId=" in lines[1]
            group = lines[2].split("groups: ", 1)[1].split(" ", 1)[0]
            hints = [line.strip() for line in lines[3:]]
            assert (
                f"chat view: {url}/  (every conversation, live, and the refused requests)" in hints
            )
            assert (
                f"point apps at it: export DINGPUSH_API_BASE={url} DINGPUSH_OAPI_BASE={url}"
                in hints
            )
            with App(KEY, SECRET, api_base=url, oapi_base=url) as app:
                assert app.group(group).send("hello").process_query_key
                assert app.users(["alice"]).send("hi").delivered_user_ids == ("alice",)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)


# Nesting 100,000 deep made the parser raise RecursionError (a 500), and a lone surrogate got
# into state that no page could then encode; every app API reads them as a body it cannot take.
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"appKey": "\\ud800", "appSecret": "x"}'],
    ids=["deep", "lone-surrogate"],
)
async def test_an_unreadable_token_body_is_missing_not_a_500(
    client: httpx.AsyncClient, body: bytes
) -> None:
    reply = await client.post(
        "/v1.0/oauth2/accessToken", content=body, headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400 and reply.json()["code"] == "Missingbody"


async def test_a_msg_param_nested_past_the_parsers_depth_is_refused(
    client: httpx.AsyncClient,
) -> None:
    reply = await robot(client, msgParam="[" * 7000 + "]" * 7000)  # within 15,000 bytes
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalidParameter.msgParam.invalid"


async def test_the_chat_view_explains_a_token_request_without_a_json_body(
    client: httpx.AsyncClient,
) -> None:
    # The explanation's {"appKey": …} was read as a format field: once one such request was
    # recorded, every page of the chat view answered 500.
    form = {"appKey": KEY, "appSecret": SECRET}
    assert (await client.post("/v1.0/oauth2/accessToken", data=form)).status_code == 400
    page = await client.get("/")
    assert page.status_code == 200
    assert "The token request takes a JSON body" in page.text
