"""Recall, read status and DING of app-robot messages (protocol §11, §14).

Each app-robot send (``groupMessages/send``, ``oToMessages/batchSend``) registers its
``processQueryKey`` here with the messages it delivered; the people of the chat view (or the
control API) read them; the robot recalls them. DINGs (§14) keep their receivers, reminder
type and who read and who confirmed them. Every ``judge_*`` runs under the emulator's lock.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._appchecks import V1Error
from ._apps import DING_PERMISSION, ROBOT_PERMISSION, AppConfig
from ._appstate import INVALID_TOKEN_V1, AppCall, Outcome, v1_error
from ._ledger import Ledger

__all__ = ["Ding", "OnCallArea", "SentKey"]

#: §11.1/§11.2: at most 20 keys a recall.
RECALL_KEYS_MAX = 20
#: §11.3: ``maxResults`` ≤ 200.
READ_PAGE_MAX = 200
#: §14.1: receivers a DING call, by ``remindType``: 200 in-app, 20 SMS/phone.
DING_CAPS = {1: 200, 2: 20, 3: 20}
REMIND_NAMES = {1: "app", 2: "sms", 3: "call"}

_DING_DENIED = V1Error(
    403,
    "Forbidden.AccessDenied.AccessTokenPermissionDenied",
    "没有调用该接口的权限，接口权限申请参考：https://open.dingtalk.com/document/orgapp/"
    "add-api-permission",
    {"requiredScopes": [DING_PERMISSION]},
)
_ROBOT_DENIED = V1Error(
    403,
    "Forbidden.AccessDenied.AccessTokenPermissionDenied",
    "没有调用该接口的权限，接口权限申请参考：https://open.dingtalk.com/document/orgapp/"
    "add-api-permission",
    {"requiredScopes": [ROBOT_PERMISSION]},
)


def new_query_key() -> str:
    """A key like DingTalk's: standard Base64 with ``+/=``, which clients must URL-encode."""
    return base64.b64encode(secrets.token_bytes(31)).decode("ascii")


@dataclass(slots=True)
class SentKey:
    """One ``processQueryKey``: who sent what to whom, who read it, whether it was recalled."""

    key: str
    app: str
    robot_code: str
    kind: str  # "group" | "oto"
    open_conversation_id: str | None
    recipients: tuple[str, ...]
    message_ids: tuple[int, ...]
    sent_at: float
    read: dict[str, float] = field(default_factory=dict)
    recalled_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "process_query_key": self.key,
            "app": self.app,
            "kind": self.kind,
            "open_conversation_id": self.open_conversation_id,
            "recipients": list(self.recipients),
            "message_ids": list(self.message_ids),
            "sent_at": self.sent_at,
            "read": sorted(self.read),
            "recalled": self.recalled_at is not None,
        }


@dataclass(slots=True)
class Ding:
    """One DING (§14): receivers, reminder type, who read and who confirmed it."""

    open_ding_id: str
    app: str
    robot_code: str
    remind_type: int
    content: str
    receivers: tuple[str, ...]
    failed: dict[str, list[str]]
    sent_at: float
    call_voice: str | None = None
    read: dict[str, float] = field(default_factory=dict)
    confirmed: dict[str, float] = field(default_factory=dict)
    recalled_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "open_ding_id": self.open_ding_id,
            "app": self.app,
            "remind_type": self.remind_type,
            "remind": REMIND_NAMES.get(self.remind_type, str(self.remind_type)),
            "content": self.content,
            "receivers": list(self.receivers),
            "failed": {k: list(v) for k, v in self.failed.items()},
            "sent_at": self.sent_at,
            "call_voice": self.call_voice,
            "read": sorted(self.read),
            "confirmed": sorted(self.confirmed),
            "recalled": self.recalled_at is not None,
        }


class OnCallArea:
    """The keys and DINGs of every app, and the §11/§14 endpoints' checks.

    The uncertain points are ``EmulatorOptions`` switches: ``oto_recall_window`` (24 h,
    §11.2; read status uses it too), ``group_recall_window`` (none stated, §11.1) and
    ``unknown_key_as_failed`` (§11 [U]).
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.keys: dict[str, SentKey] = {}
        self.dings: dict[str, Ding] = {}

    @property
    def recall_window(self) -> float:
        return self._ledger.options.oto_recall_window

    @property
    def group_recall_window(self) -> float | None:
        return self._ledger.options.group_recall_window

    @property
    def unknown_key_as_failed(self) -> bool:
        return self._ledger.options.unknown_key_as_failed

    def reset(self) -> None:
        self.keys.clear()
        self.dings.clear()

    def settle(self, now: float) -> None:
        """``EmulatorOptions.auto_read_after``: everyone has read what is old enough."""
        delay = self._ledger.options.auto_read_after
        if delay is None:
            return
        for sent in self.keys.values():
            if sent.recalled_at is None and now >= sent.sent_at + delay:
                for user in sent.recipients:
                    sent.read.setdefault(user, sent.sent_at + delay)
        for ding in self.dings.values():
            if ding.recalled_at is None and now >= ding.sent_at + delay:
                for user in ding.receivers:
                    ding.read.setdefault(user, ding.sent_at + delay)

    def key_of_message(self, message_id: int) -> SentKey | None:
        return next((k for k in self.keys.values() if message_id in k.message_ids), None)

    # -- what the sends register -----------------------------------------------------------

    def register(
        self,
        app: AppConfig,
        kind: str,
        cid: str | None,
        recipients: Iterable[str],
        message_ids: Iterable[int],
        now: float,
    ) -> str:
        key = new_query_key()
        self.keys[key] = SentKey(
            key,
            app.name,
            app.robot_code,
            kind,
            cid,
            tuple(recipients),
            tuple(message_ids),
            now,
        )
        return key

    def recalled_message_ids(self) -> set[int]:
        return {m for k in self.keys.values() if k.recalled_at is not None for m in k.message_ids}

    # -- the people (chat view, control API) -----------------------------------------------

    def read_message(self, key: str, users: Iterable[str], now: float) -> SentKey:
        """These users read the message of ``key`` (recipients only; a recalled one: nobody)."""
        sent = self.keys.get(key)
        if sent is None:
            raise KeyError(f"no app-robot message with processQueryKey {key!r}")
        if sent.recalled_at is None:
            for user in users:
                if user in sent.recipients:
                    sent.read.setdefault(user, now)
        return sent

    def read_message_id(self, message_id: int, user: str, now: float) -> SentKey | None:
        for sent in self.keys.values():
            if message_id in sent.message_ids:
                return self.read_message(sent.key, [user], now)
        return None

    def read_ding(self, ding_id: str, users: Iterable[str], now: float, *, confirm: bool) -> Ding:
        """These receivers read (and, with ``confirm``, confirmed) the DING (§14.4)."""
        ding = self.dings.get(ding_id)
        if ding is None:
            raise KeyError(f"no DING {ding_id!r}")
        if ding.recalled_at is None:
            for user in users:
                if user in ding.receivers:
                    ding.read.setdefault(user, now)
                    if confirm:
                        ding.confirmed.setdefault(user, now)
        return ding

    # -- §11.1, §11.2: recall ----------------------------------------------------------------

    def judge_recall(
        self, app: AppConfig, body: Mapping[str, Any], now: float, *, group: bool
    ) -> Outcome:
        """``groupMessages/recall`` (§11.1) and ``otoMessages/batchRecall`` (§11.2)."""
        cid = body.get("openConversationId")
        if group:
            if not isinstance(cid, str) or not cid:
                error = V1Error(400, "miss.openConversationId", "openConversationId不能为空")
                return v1_error(error, app)
            if cid not in app.groups:
                error = V1Error(400, "invalid.openConversationId", "openConversationId不合法")
                return v1_error(error, app)
        keys = body.get("processQueryKeys")
        if not isinstance(keys, list) or not keys:
            error = V1Error(
                400, "invalidParameter.processQueryKey.missing", "processQueryKeys不能为空"
            )
            return v1_error(error, app)
        if len(keys) > RECALL_KEYS_MAX:
            error = V1Error(
                400, "invalidParameter.processQueryKeys.overMax", f"超过最大限制{RECALL_KEYS_MAX}"
            )
            return v1_error(error, app)
        done: list[str] = []
        failed: dict[str, str] = {}
        window = self.group_recall_window if group else self.recall_window
        for key in dict.fromkeys(str(k) for k in keys):
            sent = self.keys.get(key)
            if sent is None or sent.kind != ("group" if group else "oto"):
                if self.unknown_key_as_failed:
                    failed[key] = "SYSTEM_ERROR"
                    continue
                error = V1Error(400, "invalid.processQueryKey", "processQueryKey不合法")
                return v1_error(error, app)
            if sent.robot_code != app.robot_code:
                error = V1Error(400, "not.allowed.robotCode", "该消息不是此机器人发送的")
                return v1_error(error, app)
            if group and sent.open_conversation_id != cid:
                failed[key] = "SYSTEM_ERROR"
                continue
            if window is not None and now - sent.sent_at > window:
                # §11.2: only within 24 h of sending.
                error = V1Error(400, "robot.processQueryKey.expired", "消息已超过可撤回时间")
                return v1_error(error, app)
            if sent.recalled_at is None:
                sent.recalled_at = now
            done.append(key)
        return Outcome(200, {"successResult": done, "failedResult": failed}, app=app)

    # -- §11.3, §11.4: read status ----------------------------------------------------------

    def _key_for_query(
        self, app: AppConfig, key: Any, now: float, kind: str
    ) -> tuple[SentKey | None, Outcome | None]:
        if not isinstance(key, str) or not key:
            error = V1Error(
                400, "invalidParameter.processQueryKey.missing", "processQueryKey不能为空"
            )
            return None, v1_error(error, app)
        self.settle(now)
        sent = self.keys.get(key)
        if sent is None or sent.kind != kind or sent.robot_code != app.robot_code:
            error = V1Error(400, "invalid.processQueryKey", "processQueryKey不合法")
            return None, v1_error(error, app)
        if now - sent.sent_at > self.recall_window:
            error = V1Error(400, "processQueryKey.expireTime", "processQueryKey已过期")
            return None, v1_error(error, app)
        return sent, None

    def judge_group_query(self, app: AppConfig, body: Mapping[str, Any], now: float) -> Outcome:
        """``groupMessages/query`` (§11.3): the read list, paged by ``maxResults`` ≤ 200."""
        cid = body.get("openConversationId")
        if not isinstance(cid, str) or not cid:
            error = V1Error(400, "openConversationId.notExisted", "openConversationId不存在")
            return v1_error(error, app)
        size = body.get("maxResults", READ_PAGE_MAX)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= READ_PAGE_MAX:
            error = V1Error(400, "invalidParameter.pageSize.invalid", "maxResults不合法")
            return v1_error(error, app)
        sent, refused = self._key_for_query(app, body.get("processQueryKey"), now, "group")
        if sent is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        if sent.open_conversation_id != cid:
            error = V1Error(400, "conversation.org.dismatch", "会话与消息不匹配")
            return v1_error(error, app)
        cursor = body.get("nextToken") or ""
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except (ValueError, UnicodeDecodeError, AttributeError):
            error = V1Error(400, "invalidParameter.cursor.invalid", "nextToken不合法")
            return v1_error(error, app)
        readers = list(sent.read)
        page = readers[start : start + size]
        more = start + size < len(readers)
        next_token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else ""
        status = "RECALLED" if sent.recalled_at is not None else "SUCCESS"
        out = {"sendStatus": status, "readUserIds": page, "nextToken": next_token, "hasMore": more}
        return Outcome(200, out, app=app)

    def judge_oto_read(self, app: AppConfig, call: AppCall, now: float) -> Outcome:
        """``GET oToMessages/readStatus`` (§11.4): each recipient READ or UNREAD."""
        robot_code = call.query_value("robotCode")
        if not robot_code:
            error = V1Error(400, "invalidParameter.robotCode.empty", "robotCode不能为空")
            return v1_error(error, app)
        if robot_code != app.robot_code:
            error = V1Error(400, "invalidParameter.robotCode.notExsit", "robotCode不存在")
            return v1_error(error, app)
        sent, refused = self._key_for_query(app, call.query_value("processQueryKey"), now, "oto")
        if sent is None:
            return refused or v1_error(INVALID_TOKEN_V1)
        status = "RECALLED" if sent.recalled_at is not None else "SUCCESS"
        infos = [
            {"name": user, "userId": user, "readStatus": "READ" if user in sent.read else "UNREAD"}
            for user in sent.recipients
        ]
        return Outcome(200, {"sendStatus": status, "messageReadInfoList": infos}, app=app)

    # -- §14: DING -----------------------------------------------------------------------------

    def ding_denied(self, app: AppConfig) -> Outcome | None:
        """§14: send and recall need ``Premium.Ding.Write``."""
        if DING_PERMISSION not in app.permissions:
            return v1_error(_DING_DENIED, app, "permission_denied")
        return None

    def judge_ding_send(self, app: AppConfig, body: Mapping[str, Any], now: float) -> Outcome:
        """``robot/ding/send`` (§14.1)."""
        denied = self.ding_denied(app)
        if denied is not None:
            return denied
        remind = body.get("remindType")
        content = body.get("content")
        users = body.get("receiverUserIdList")
        if (
            remind not in DING_CAPS
            or isinstance(remind, bool)
            or not isinstance(content, str)
            or not content
        ):
            error = V1Error(400, "invalidParameter.param.invalid", "参数不合法")
            return v1_error(error, app)
        if not isinstance(users, list) or not users:
            return v1_error(V1Error(400, "miss.staffId", "无效的接收者id"), app)
        cap = DING_CAPS[remind]
        if len(users) > cap:
            error = V1Error(400, "ding.receivercount.limit", f"接收人数量需要<{cap}")
            return v1_error(error, app)
        if remind in (2, 3) and not app.paid_ding:
            # §14: without the 权益包 the API "仅支持发送应用内DING".
            error = V1Error(400, "ding.serverquota.insufficient", "DING额度不足，需充值")
            return v1_error(error, app)
        known = set(app.known_users())
        receivers = [u for u in dict.fromkeys(str(u) for u in users) if u in known]
        unknown = [str(u) for u in users if str(u) not in known]
        if not receivers:
            return v1_error(V1Error(400, "miss.staffId", "无效的接收者id"), app)
        failed = {"invalid userId": unknown} if unknown else {}
        ding_id = secrets.token_hex(12)
        voice = body.get("callVoice") if remind == 3 else None
        self.dings[ding_id] = Ding(
            ding_id,
            app.name,
            app.robot_code,
            int(remind),
            content,
            tuple(receivers),
            failed,
            now,
            voice if isinstance(voice, str) and voice else None,
        )
        out: dict[str, Any] = {"openDingId": ding_id}
        if failed:
            out["failedList"] = failed
        return Outcome(200, out, app=app)

    def _ding_of(self, app: AppConfig, body: Mapping[str, Any]) -> Ding | Outcome:
        ding_id = body.get("openDingId")
        ding = self.dings.get(ding_id) if isinstance(ding_id, str) else None
        if not isinstance(ding_id, str) or not ding_id:
            return v1_error(V1Error(400, "invalidParameter.param.invalid", "参数不合法"), app)
        if ding is None or ding.robot_code != app.robot_code:
            # §14.2: only the robot that sent the DING may recall it.
            error = V1Error(400, "recall.ding.exception", f"recall.ding.exception {ding_id}")
            return v1_error(error, app)
        return ding

    def judge_ding_recall(self, app: AppConfig, body: Mapping[str, Any], now: float) -> Outcome:
        """``robot/ding/recall`` (§14.2): ``{"openDingId": …}``."""
        denied = self.ding_denied(app)
        if denied is not None:
            return denied
        ding = self._ding_of(app, body)
        if isinstance(ding, Outcome):
            return ding
        if ding.recalled_at is None:
            ding.recalled_at = now
        return Outcome(200, {"openDingId": ding.open_ding_id}, app=app)

    def judge_ding_read(self, app: AppConfig, body: Mapping[str, Any], now: float) -> Outcome:
        """``robot/ding/readStatuses/query`` (§14.3): READ/UNREAD a receiver, no confirmed."""
        self.settle(now)
        ding = self._ding_of(app, body)
        if isinstance(ding, Outcome):
            return ding
        infos = [
            {"userId": user, "readStatus": "READ" if user in ding.read else "UNREAD"}
            for user in ding.receivers
        ]
        return Outcome(200, {"success": True, "result": {"robotDingReadInfoList": infos}}, app=app)


def robot_denied(app: AppConfig) -> Outcome | None:
    """§11: recall and read status need ``qyapi_robot_sendmsg``."""
    if ROBOT_PERMISSION not in app.permissions:
        return v1_error(_ROBOT_DENIED, app, "permission_denied")
    return None
