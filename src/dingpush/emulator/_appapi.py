"""The app endpoints' checks, in DingTalk's order (protocol §2–§5, §8's checklist).

Each ``judge_*`` method of :class:`AppApi` turns one request into an :class:`Outcome` under
the emulator's lock: a refusal with DingTalk's status and code, or an accepted message
recorded into its conversation. The routes in ``_approutes.py`` call them through
``Emulator.handle_app_call``.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ._appchecks import (
    MEDIA_LIMITS,
    OapiError,
    V1Error,
    check_notice_msg,
    check_template,
    form_value,
    parse_multipart,
)
from ._apps import ROBOT_PERMISSION, AppConfig
from ._appstate import (
    INVALID_TOKEN_OAPI,
    INVALID_TOKEN_V1,
    MISSING_TOKEN_OAPI,
    AppArea,
    AppCall,
    Outcome,
    oapi_error,
    v1_error,
)
from ._json import loads
from ._ledger import Ledger
from ._oncall import OnCallArea, robot_denied
from ._stream import StreamGateway

__all__ = ["AppApi"]

#: §3.1: msgParam is at most 15,000 bytes.
MSG_PARAM_LIMIT = 15_000
#: §4.1: a work notification's msg is at most 2,048 bytes.
NOTICE_MSG_LIMIT = 2_048
_NOTICE_MAX_USERS = 100
_NOTICE_MAX_DEPTS = 20
_STATUS_BAR_MAX_USERS = 5

_PERMISSION_DENIED = V1Error(
    403,
    "Forbidden.AccessDenied.AccessTokenPermissionDenied",
    "没有调用该接口的权限，接口权限申请参考：https://open.dingtalk.com/document/orgapp/"
    "add-api-permission",
    {"requiredScopes": [ROBOT_PERMISSION]},
)


def _json_object(call: AppCall) -> dict[str, Any] | None:
    media_type = (call.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return None
    try:
        data = loads(call.body)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _oapi_body(call: AppCall) -> dict[str, Any] | None:
    """A topapi body: JSON, or a form with JSON-valued fields (§4.1 accepts both)."""
    media_type = (call.content_type or "").split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(call.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        return dict(pairs) or None
    return _json_object(call)


def _ids(value: Any) -> list[str] | None:
    """A comma-separated id list (§4.1: a string, ``"u1,u2"``); ``None`` when malformed."""
    if value is None or value == "":
        return []
    if not isinstance(value, str | int):
        return None
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class AppApi:
    """The app endpoints' checks, over the app area's state and the ledger's options."""

    def __init__(self, apps: AppArea, ledger: Ledger) -> None:
        self._apps = apps
        self._ledger = ledger
        #: Keys, reads, recalls and DINGs (§11, §14).
        self.oncall = OnCallArea(ledger)

    # -- tokens (§2) -----------------------------------------------------------------------

    def judge_token(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/oauth2/accessToken``: JSON credentials in, accessToken/expireIn out."""
        body = _json_object(call)
        if body is None:
            # aliyun/alibabacloud-php-sdk#36: a form body is "body is mandatory for this action".
            return v1_error(V1Error(400, "Missingbody", "body is mandatory for this action"))
        app = self._apps.by_key(body.get("appKey"))
        if app is None or body.get("appSecret") != app.app_secret:
            return v1_error(
                V1Error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret"), app
            )
        token, lifetime = self._apps.issue_token(app, now)
        return Outcome(200, {"accessToken": token, "expireIn": int(lifetime)}, app=app)

    def judge_gettoken(self, call: AppCall, now: float) -> Outcome:
        """Legacy ``GET /gettoken?appkey=&appsecret=`` (§2.1), sharing the same tokens."""
        app_key, app_secret = call.query_value("appkey"), call.query_value("appsecret")
        if not app_secret:
            return oapi_error(OapiError(41004, "缺少secret参数", "missing_param"))
        app = self._apps.by_key(app_key)
        if app is None or app_secret != app.app_secret:
            code = self._ledger.options.gettoken_bad_credentials_errcode
            return oapi_error(OapiError(code, "不合法的corpId或corpSecret", "bad_credentials"), app)
        token, lifetime = self._apps.issue_token(app, now)
        body = {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": int(lifetime)}
        return Outcome(200, body, app=app)

    # -- app robot (§3) ----------------------------------------------------------------------

    def _robot_preamble(
        self, call: AppCall, now: float, *, robot_permission: bool = True
    ) -> tuple[Outcome | None, AppConfig | None, dict[str, Any]]:
        """Token, JSON body, robotCode and permission: the checks both robot sends share."""
        app = self._apps.valid_token(call.header_token, now)
        if app is None:
            return v1_error(INVALID_TOKEN_V1, reason="invalid_token"), None, {}
        body = _json_object(call)
        if body is None:
            error = V1Error(400, "invalidParameter.msgBody.invalid", "请求体必须是JSON格式")
            return v1_error(error, app), app, {}
        robot_code = body.get("robotCode")
        if not isinstance(robot_code, str) or not robot_code:
            error = V1Error(400, "invalidParameter.robotCode.empty", "robotCode不能为空")
            return v1_error(error, app), app, body
        if robot_code != app.robot_code:
            # §3: the robotCode must be the token's app's (its AppKey for internal apps).
            error = V1Error(400, "invalidParameter.robotCode.auth", "robotCode与应用不匹配")
            return v1_error(error, app), app, body
        if robot_permission and not app.can_send_as_robot:
            return v1_error(_PERMISSION_DENIED, app, "permission_denied"), app, body
        return None, app, body

    def _template(
        self, app: AppConfig, body: Mapping[str, Any]
    ) -> tuple[Outcome | None, str, dict[str, Any]]:
        key = body.get("msgKey")
        error, param = check_template(
            key,
            body.get("msgParam"),
            limit=MSG_PARAM_LIMIT,
            object_ok=self._ledger.options.msg_param_object_ok,
            media_exists=self._apps.media_exists,
        )
        if error is not None:
            outcome = v1_error(error, app)
            return Outcome(outcome.status, outcome.body, outcome.reason, app, _str(key)), "", {}
        return None, str(key), param

    def judge_group_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/groupMessages/send`` (§3.1)."""
        refused, app, body = self._robot_preamble(call, now)
        if refused is not None or app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        cid = body.get("openConversationId")
        if not isinstance(cid, str) or not cid:
            error = V1Error(400, "miss.openConversationId", "openConversationId不能为空")
            return v1_error(error, app)
        if cid not in app.groups:
            # Unknown, or a group the robot was never added to.
            error = V1Error(400, "invalid.openConversationId", "openConversationId不合法")
            return v1_error(error, app)
        refused, key, param = self._template(app, body)
        if refused is not None:
            return refused
        message = self._apps.deliver_robot(app, self._apps.group(cid), key, param, now)
        readers = app.known_users()
        query_key = self.oncall.register(app, "group", cid, readers, [message.id], now)
        body_out = {"processQueryKey": query_key}
        return Outcome(200, body_out, app=app, msgtype=key, message_id=message.id)

    def judge_batch_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/oToMessages/batchSend`` (§3.2), at most 20 users a call [U]."""
        refused, app, body = self._robot_preamble(call, now)
        if refused is not None or app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        user_ids = body.get("userIds")
        if not isinstance(user_ids, list) or not user_ids:
            return v1_error(V1Error(400, "invalidParameter.userIds.empty", "userIds不能为空"), app)
        cap = self._ledger.options.oto_user_cap
        if len(user_ids) > cap:
            error = V1Error(400, "invalidParameter.userIds.overMax", f"超过最大限制{cap}")
            return v1_error(error, app)
        refused, key, param = self._template(app, body)
        if refused is not None:
            return refused
        known = set(app.known_users())
        invalid, throttled, first = [], [], None
        reached: list[str] = []
        ids: list[int] = []
        for user in dict.fromkeys(str(u) for u in user_ids):
            if user not in known:
                invalid.append(user)
            elif self._apps.oto_flow_controlled(app, user, now):
                throttled.append(user)
            else:
                message = self._apps.deliver_robot(
                    app, self._apps.user_conversation(user), key, param, now
                )
                self._apps.oto_reached(app, user, now)
                first = first or message.id
                reached.append(user)
                ids.append(message.id)
        body_out = {
            "processQueryKey": self.oncall.register(app, "oto", None, reached, ids, now),
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": throttled,
        }
        return Outcome(200, body_out, app=app, msgtype=key, message_id=first)

    # -- Stream mode (§13.1) ----------------------------------------------------------------

    def judge_stream_open(self, call: AppCall, now: float, gateway: StreamGateway) -> Outcome:
        """``POST /v1.0/gateway/connections/open``: clientId/clientSecret, no token (§13.1)."""
        body = _json_object(call)
        if body is None:
            return v1_error(V1Error(400, "Missingbody", "body is mandatory for this action"))
        app = self._apps.by_key(body.get("clientId"))
        if app is None or body.get("clientSecret") != app.app_secret:
            # §13.1: bad-credential errors are undocumented [U]; the token endpoint's code.
            return v1_error(
                V1Error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret"), app
            )
        subscriptions: list[tuple[str, str]] = []
        for item in body.get("subscriptions") or ():
            if isinstance(item, dict) and item.get("type") in ("EVENT", "CALLBACK"):
                subscriptions.append((str(item["type"]), str(item.get("topic", ""))))
        if not subscriptions:
            error = V1Error(400, "invalidParameter.subscriptions", "subscriptions不能为空")
            return v1_error(error, app)
        ticket = gateway.issue_ticket(app.name, app.app_key, tuple(subscriptions), now)
        return Outcome(200, {"endpoint": gateway.endpoint(), "ticket": ticket}, app=app)

    # -- recall, read status, DING (§11, §14) ------------------------------------------------

    def _oncall_preamble(
        self, call: AppCall, now: float, *, robot_permission: bool = True
    ) -> tuple[Outcome | None, AppConfig | None, dict[str, Any]]:
        refused, app, body = self._robot_preamble(call, now, robot_permission=robot_permission)
        if refused is not None or app is None:
            return refused or v1_error(INVALID_TOKEN_V1), None, body
        return None, app, body

    def judge_group_recall(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/groupMessages/recall`` (§11.1)."""
        refused, app, body = self._oncall_preamble(call, now)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_recall(app, body, now, group=True)

    def judge_oto_recall(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/otoMessages/batchRecall`` (§11.2)."""
        refused, app, body = self._oncall_preamble(call, now)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_recall(app, body, now, group=False)

    def judge_group_query(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/groupMessages/query`` (§11.3)."""
        refused, app, body = self._oncall_preamble(call, now)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_group_query(app, body, now)

    def judge_oto_read(self, call: AppCall, now: float) -> Outcome:
        """``GET /v1.0/robot/oToMessages/readStatus`` (§11.4): query parameters, no body."""
        app = self._apps.valid_token(call.header_token, now)
        if app is None:
            return v1_error(INVALID_TOKEN_V1, reason="invalid_token")
        denied = robot_denied(app)
        if denied is not None:
            return denied
        return self.oncall.judge_oto_read(app, call, now)

    def judge_ding_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/ding/send`` (§14.1)."""
        refused, app, body = self._oncall_preamble(call, now, robot_permission=False)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_ding_send(app, body, now)

    def judge_ding_recall(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/ding/recall`` (§14.2)."""
        refused, app, body = self._oncall_preamble(call, now, robot_permission=False)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_ding_recall(app, body, now)

    def judge_ding_read(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/ding/readStatuses/query`` (§14.3)."""
        refused, app, body = self._oncall_preamble(call, now, robot_permission=False)
        if app is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        return self.oncall.judge_ding_read(app, body, now)

    # -- work notifications (§4) -----------------------------------------------------------

    def _oapi_token(self, call: AppCall, now: float) -> tuple[AppConfig | None, Outcome]:
        """The app of the ``access_token`` parameter, or the refusal: 41001 when it is missing
        (§2.5 lists 41001 缺少access_token参数 beside 40014 for a wrong one)."""
        token = call.query_value("access_token")
        if not token:
            return None, oapi_error(MISSING_TOKEN_OAPI)
        app = self._apps.valid_token(token, now)
        return app, oapi_error(INVALID_TOKEN_OAPI)

    def _oapi_preamble(
        self, call: AppCall, now: float, *, bad_agent: int = 40056
    ) -> tuple[Outcome | None, AppConfig | None, dict[str, Any]]:
        app, refused = self._oapi_token(call, now)
        if app is None:
            return refused, None, {}
        body = _oapi_body(call)
        if body is None:
            return oapi_error(OapiError(40035, "缺少参数 json", "bad_json"), app), app, {}
        agent_id = body.get("agent_id")
        if agent_id in (None, ""):
            return oapi_error(OapiError(40035, "缺少参数 agent_id", "missing_param"), app), app, {}
        if str(agent_id) != str(app.agent_id):
            return oapi_error(OapiError(bad_agent, "不合法的agentId", "bad_agent"), app), app, {}
        return None, app, body

    def judge_notice_send(self, call: AppCall, now: float) -> Outcome:
        """``asyncsend_v2`` (§4.1): success means queued; over-limit users drop silently."""
        refused, app, body = self._oapi_preamble(call, now)
        if refused is not None or app is None:
            return refused or oapi_error(INVALID_TOKEN_OAPI)
        users, depts = _ids(body.get("userid_list")), _ids(body.get("dept_id_list"))
        everyone = _flag(body.get("to_all_user"))
        if users is None or depts is None:
            problem = "userid_list" if users is None else "dept_id_list"
            error = OapiError(40035, f"不合法的参数 {problem}: 应为逗号分隔的字符串", "bad_param")
            return oapi_error(error, app)
        if not (users or depts or everyone):
            return oapi_error(OapiError(40035, "缺少参数 userid_list", "missing_param"), app)
        if len(users) > _NOTICE_MAX_USERS or len(depts) > _NOTICE_MAX_DEPTS:
            error = OapiError(40035, "userid_list最多100个, dept_id_list最多20个", "too_many")
            return oapi_error(error, app)
        raw = body.get("msg")
        if raw in (None, ""):
            return oapi_error(OapiError(40035, "缺少参数 msg", "missing_param"), app)
        text = (
            raw
            if isinstance(raw, str)
            else json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        )
        if len(text.encode()) > NOTICE_MSG_LIMIT:
            # The limit is §4.1's; the code is chat/send's "content too long" (§3.5), which
            # shares the msg format [U: asyncsend_v2's own code is not documented].
            return oapi_error(OapiError(34016, "消息内容过长", "too_large"), app)
        try:
            msg = loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            return oapi_error(OapiError(40035, "缺少参数 msg", "missing_param"), app)
        refusal = check_notice_msg(msg, self._apps.media_exists)
        if refusal is not None:
            outcome = oapi_error(refusal, app)
            return Outcome(
                outcome.status, outcome.body, outcome.reason, app, _str(msg.get("msgtype"))
            )
        oa = msg.get("oa") if msg["msgtype"] == "oa" else None
        if (
            isinstance(oa, Mapping)
            and oa.get("status_bar")
            and (depts or everyone or len(users) > _STATUS_BAR_MAX_USERS)
        ):
            error = OapiError(40035, "status_bar 仅支持不超过5个userid", "bad_param")
            return oapi_error(error, app)
        task = self._apps.new_task(app, now, msg, users, depts, everyone)
        body_out = {"errcode": 0, "errmsg": "ok", "task_id": task.task_id}
        return Outcome(200, body_out, app=app, msgtype=task.msgtype)

    def _task(self, call: AppCall, now: float) -> tuple[Outcome | None, Any]:
        # §4.2: a wrong agent_id or task_id is 40035 here (asyncsend_v2 says 40056).
        refused, app, body = self._oapi_preamble(call, now, bad_agent=40035)
        if refused is not None or app is None:
            return refused or oapi_error(INVALID_TOKEN_OAPI), None
        try:
            task = self._apps.task(int(body.get("task_id", "")))
        except (TypeError, ValueError):
            task = None
        window = self._ledger.options.notice_query_window
        if task is None or task.app != app.name or now - task.time > window:
            return oapi_error(OapiError(40035, "不合法的参数 task_id", "bad_task"), app), None
        return None, (app, task)

    def judge_notice_progress(self, call: AppCall, now: float) -> Outcome:
        """``getsendprogress`` (§4.2): the emulator finishes every task at once."""
        refused, found = self._task(call, now)
        if refused is not None:
            return refused
        app, _ = found
        progress = {"progress_in_percent": 100, "status": 2}
        return Outcome(200, {"errcode": 0, "errmsg": "ok", "progress": progress}, app=app)

    def judge_notice_result(self, call: AppCall, now: float) -> Outcome:
        """``getsendresult`` (§4.3): invalid, forbidden (with codes), read and unread users."""
        refused, found = self._task(call, now)
        if refused is not None:
            return refused
        app, task = found
        body = {"errcode": 0, "errmsg": "ok", "send_result": task.send_result()}
        return Outcome(200, body, app=app)

    # -- media (§5) ----------------------------------------------------------------------------

    def judge_upload(self, call: AppCall, now: float) -> Outcome:
        """``POST /media/upload``: multipart ``media`` part plus ``type`` (form or query)."""
        app, refused = self._oapi_token(call, now)
        if app is None:
            return refused
        parts = parse_multipart(call.content_type, call.body)
        if parts is None:  # not multipart/form-data: there is no file to take
            return oapi_error(OapiError(41005, "缺少多媒体文件数据", "missing_media"), app)
        kind = form_value(parts, "type") or call.query_value("type")
        limits = MEDIA_LIMITS[self._ledger.options.media_limits]
        if kind not in limits:
            return oapi_error(OapiError(40004, "不合法的媒体文件类型", "bad_media_type"), app)
        media = next((p for p in parts if p.name == "media" and p.filename is not None), None)
        if media is None:
            return oapi_error(OapiError(41005, "缺少多媒体文件数据", "missing_media"), app)
        if not media.data:
            return oapi_error(OapiError(44001, "多媒体文件为空", "empty_media"), app)
        max_bytes, formats = limits[kind]
        extension = os.path.splitext(media.filename or "")[1].lstrip(".").lower()
        if extension not in formats:
            return oapi_error(OapiError(40005, "不合法的文件类型", "bad_file_type"), app)
        if len(media.data) > max_bytes:
            return oapi_error(OapiError(40006, "不合法的文件大小", "too_large"), app)
        record = self._apps.store_media(
            app,
            kind,
            media.filename or "",
            media.content_type or "application/octet-stream",
            media.data,
            now,
        )
        body = {
            "errcode": 0,
            "errmsg": "ok",
            "media_id": record.media_id,
            "created_at": record.created_at,
            "type": kind,
        }
        return Outcome(200, body, app=app, msgtype=kind)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
