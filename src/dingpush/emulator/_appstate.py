"""The app area of the emulator: credentials, tokens, media, notice tasks (§2–§5).

:class:`AppArea` records into the emulator's :class:`~._ledger.Ledger` (clock, options,
conversations, messages, the request log), so app messages land in the conversations the chat
view reads and every app request is in ``/_emulator/requests``. The endpoints' checks are
:class:`~._appapi.AppApi`'s. Not thread-safe: the ``Emulator`` holds the ledger's lock around
every call.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dingpush import mask

from ._appchecks import OapiError, V1Error
from ._apps import (
    APP_ROBOT_CHANNEL,
    WORK_NOTICE_CHANNEL,
    AppConfig,
    MediaRecord,
    NoticeTask,
)
from ._faults import Fault
from ._ledger import Ledger
from ._records import Conversation, Message, RequestRecord

__all__ = ["AppAnswer", "AppArea", "AppCall", "Outcome"]

Api = Literal["v1", "oapi"]
#: DingTalk's "per day" follows China Standard Time (UTC+8) [U: the docs only say 每天].
_DAY_OFFSET = 8 * 3600
#: §7: the per-app QPS is counted over a second, which is also the penalty's length.
_QPS_WINDOW = 1.0
#: §4.1: recipients of work notifications are counted per minute.
_RECIPIENT_WINDOW = 60.0
#: Token requests are not counted against the per-API QPS (the client asks once, and
#: DingTalk's separate advice for them is "do not call frequently", §2.1).
_TOKEN_PATHS = frozenset({"/v1.0/oauth2/accessToken", "/gettoken"})


@dataclass(frozen=True, slots=True)
class AppCall:
    """What the server sees of one request to an app API, before any check."""

    path: str
    query: Sequence[tuple[str, str]]
    content_type: str | None
    body: bytes = field(repr=False)
    client_ip: str | None
    header_token: str | None = field(default=None, repr=False)

    def query_value(self, key: str) -> str | None:
        return next((value for name, value in self.query if name == key), None)

    @property
    def token(self) -> str | None:
        """The access token: the v1.0 header, else the oapi ``access_token`` parameter."""
        return self.header_token or self.query_value("access_token")


@dataclass(frozen=True, slots=True)
class AppAnswer:
    """The HTTP answer to an app request: status (``None``: drop), JSON body (``None``: HTML)."""

    status: int | None
    body: Mapping[str, Any] | None
    api: Api
    request_id: str
    record: RequestRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler decided: the answer body and what to record about it."""

    status: int
    body: Mapping[str, Any]
    reason: str = "accepted"
    app: AppConfig | None = None
    msgtype: str | None = None
    message_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.reason == "accepted"


@dataclass(slots=True)
class _AppState:
    token: str | None = None
    expires_at: float = 0.0
    token_requests: int = 0
    notices_today: dict[tuple[str, int], int] = field(default_factory=dict)
    seen_today: set[tuple[str, int, str]] = field(default_factory=set)
    #: Per API path: when the calls of the last second came (§7).
    calls: dict[str, deque[float]] = field(default_factory=dict)
    #: Per user: when the app's robot's one-to-one messages reached them.
    oto_sent: dict[str, deque[float]] = field(default_factory=dict)
    #: When each work-notification recipient of the last minute was reached (§4.1).
    recipients: deque[float] = field(default_factory=deque)


def v1_error(error: V1Error, app: AppConfig | None = None, reason: str = "") -> Outcome:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.detail is not None:
        body["accessdenieddetail"] = dict(error.detail)
    return Outcome(error.status, body, reason or error.code, app)


def oapi_error(error: OapiError, app: AppConfig | None = None) -> Outcome:
    return Outcome(200, {"errcode": error.errcode, "errmsg": error.errmsg}, error.reason, app)


INVALID_TOKEN_V1 = V1Error(400, "InvalidAuthentication", "不合法的access_token")
INVALID_TOKEN_OAPI = OapiError(40014, "不合法的access_token", "invalid_token")
MISSING_TOKEN_OAPI = OapiError(41001, "缺少access_token参数", "missing_token")
# §7 names the codes; the messages are ours (clients must not parse them).
QPS_LIMIT_V1 = V1Error(
    403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "应用调用该接口的频率超过了每秒限制"
)
QPS_LIMIT_OAPI = OapiError(90018, "应用调用该接口的频率超过了每秒限制", "qps_throttled")


def _recent(times: deque[float], window: float, now: float) -> deque[float]:
    """Drop the times ``window`` seconds or more ago and return what is left."""
    while times and times[0] <= now - window:
        times.popleft()
    return times


class AppArea:
    """Enterprise apps: registration, tokens, media, notice tasks, and the plumbing of every
    app request (QPS, recording, delivery); the endpoints' checks are :class:`AppApi`'s."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._apps: dict[str, AppConfig] = {}
        self._app_keys: dict[str, str] = {}
        self._app_state: dict[str, _AppState] = {}
        self._app_tokens: dict[str, str] = {}
        self._media: dict[str, MediaRecord] = {}
        self._tasks: dict[int, NoticeTask] = {}
        self._next_task_id = 256_271_667_526  # the protocol's example task id (§4.1)

    # -- registration --------------------------------------------------------------------

    def add(self, app: AppConfig) -> AppConfig:
        """Register ``app``, replacing an app of the same name; its AppKey must be unique."""
        self._install(app)
        return app

    def update(self, name: str, changes: Mapping[str, Any]) -> AppConfig:
        """Change some fields of an app, e.g. ``permissions=()`` or a new ``app_secret``."""
        if "name" in changes and changes["name"] != name:
            raise ValueError("an app cannot be renamed; remove it and add a new one")
        try:
            app = dataclasses.replace(self.get(name), **changes)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        self._install(app)
        return app

    def remove(self, name: str) -> None:
        """Remove an app: its AppKey and tokens become unknown. Its messages stay."""
        app = self.get(name)
        state = self._app_state.pop(name)
        del self._apps[name], self._app_keys[app.app_key]
        if state.token is not None:
            self._app_tokens.pop(state.token, None)
        self._ledger.changed()

    def all(self) -> list[AppConfig]:
        """Every registered app, in registration order."""
        return list(self._apps.values())

    def get(self, name: str) -> AppConfig:
        """The app called ``name`` (``KeyError`` if there is none)."""
        try:
            return self._apps[name]
        except KeyError:
            raise KeyError(f"no app named {name!r}") from None

    def _install(self, app: AppConfig) -> None:
        owner = self._app_keys.get(app.app_key)
        if owner is not None and owner != app.name:
            raise ValueError(f"app_key already belongs to app {owner!r}")
        previous = self._apps.get(app.name)
        if previous is not None:
            del self._app_keys[previous.app_key]
        self._apps[app.name] = app
        self._app_keys[app.app_key] = app.name
        self._app_state.setdefault(app.name, _AppState())
        self._app_conversations(app)
        self._ledger.changed()

    def _app_conversations(self, app: AppConfig) -> None:
        for cid, title in app.groups.items():
            self._ledger.add_conversation(Conversation(cid, "group", title))

    def reset(self, *, forget: bool) -> None:
        """Forget tokens, media, tasks and counters; the apps too when ``forget``."""
        if forget:
            self._apps.clear()
            self._app_keys.clear()
        self._app_state = {name: _AppState() for name in self._apps}
        self._app_tokens.clear()
        self._media.clear()
        self._tasks.clear()
        for app in self._apps.values():
            self._app_conversations(app)

    # -- reading -------------------------------------------------------------------------

    def token_requests(self, app: str | None = None) -> int:
        """How many token requests named this app's AppKey (all apps when ``None``)."""
        if app is not None:
            self.get(app)
            return self._app_state[app].token_requests
        return sum(state.token_requests for state in self._app_state.values())

    def expire_tokens(self, app: str | None = None) -> None:
        """Make the current access tokens invalid now (all apps when ``None``)."""
        names = [self.get(app).name] if app is not None else list(self._apps)
        for name in names:
            state = self._app_state[name]
            if state.token is not None:
                self._app_tokens.pop(state.token, None)
            state.token, state.expires_at = None, 0.0

    def media(self, media_id: str) -> MediaRecord:
        """Return an uploaded file by its ``media_id`` (``KeyError`` if unknown)."""
        try:
            return self._media[media_id]
        except KeyError:
            raise KeyError(f"no media {media_id!r}") from None

    def media_items(self, *, app: str | None = None) -> list[MediaRecord]:
        """Return uploaded files, oldest first."""
        return [m for m in self._media.values() if app is None or m.app == app]

    def notice_tasks(self, *, app: str | None = None) -> list[NoticeTask]:
        """Return work-notification tasks, oldest first."""
        return [t for t in self._tasks.values() if app is None or t.app == app]

    def read_notice(self, task_id: int, user_ids: Iterable[str]) -> NoticeTask:
        """Mark a task's notification as read by these users (``getsendresult`` shows it)."""
        task = self._tasks.get(task_id)
        if task is None:
            raise KeyError(f"no work-notification task {task_id}")
        read = tuple(dict.fromkeys((*task.read, *(u for u in user_ids if u in task.delivered))))
        task = dataclasses.replace(task, read=read)
        self._tasks[task_id] = task
        return task

    def conversation_of_user(self, user_id: str) -> Conversation:
        """Return the one-to-one conversation of a user (app-robot chats, work notifications)."""
        return self.user_conversation(user_id)

    def app_for_token(self, token: str | None) -> str | None:
        """Return the name of the app a valid token belongs to, or ``None``."""
        app = self.valid_token(token, self._ledger.now())
        return app.name if app is not None else None

    # -- request plumbing ----------------------------------------------------------------

    def handle(
        self,
        call: AppCall,
        api: Api,
        handler: Callable[[AppCall, float], Outcome],
        *,
        delayed: Fault | None = None,
        answer_fault: Fault | None = None,
    ) -> AppAnswer:
        """Judge one app request under the lock, record it, and return the answer."""
        now = self._ledger.now()
        outcome = self._qps_refusal(call, api, now) or handler(call, now)
        status: int | None = outcome.status
        body: Mapping[str, Any] | None = outcome.body
        if answer_fault is not None and answer_fault.kind != "delay":
            status, body = fault_reply(answer_fault, api)
        fault = answer_fault or delayed
        return self._app_answer(call, now, api, outcome, status, body, fault)

    def _qps_refusal(self, call: AppCall, api: Api, now: float) -> Outcome | None:
        """§7: each app calls each API at most ``api_qps`` times a second; refuse the excess."""
        if call.path in _TOKEN_PATHS:
            return None
        app = self.valid_token(call.token, now)
        if app is None or not app.api_qps:
            return None
        state = self._app_state[app.name]
        calls = _recent(state.calls.setdefault(call.path, deque()), _QPS_WINDOW, now)
        if len(calls) < app.api_qps:
            calls.append(now)
            return None
        if api == "v1":
            return v1_error(QPS_LIMIT_V1, app, "qps_throttled")
        return oapi_error(QPS_LIMIT_OAPI, app)

    def oto_flow_controlled(self, app: AppConfig, user: str, now: float) -> bool:
        """Whether the app's robot has reached ``user`` ``oto_user_limit`` times lately."""
        if user in app.flow_controlled_users:
            return True
        if not app.oto_user_limit:
            return False
        sent = self._app_state[app.name].oto_sent.setdefault(user, deque())
        return len(_recent(sent, app.oto_user_window, now)) >= app.oto_user_limit

    def oto_reached(self, app: AppConfig, user: str, now: float) -> None:
        self._app_state[app.name].oto_sent.setdefault(user, deque()).append(now)

    def record_fault(self, call: AppCall, fault: Fault, api: Api) -> AppAnswer:
        """Record a request a fault answered before any processing."""
        now = self._ledger.now()
        app = self.valid_token(call.token, now)
        status, body = fault_reply(fault, api)
        outcome = Outcome(status or 0, body or {}, "fault", app)
        return self._app_answer(call, now, api, outcome, status, body, fault)

    def _app_answer(
        self,
        call: AppCall,
        now: float,
        api: Api,
        outcome: Outcome,
        status: int | None,
        body: Mapping[str, Any] | None,
        fault: Fault | None,
    ) -> AppAnswer:
        request_id = uuid.uuid4().hex.upper()[:24]
        if body is not None and api == "v1" and "code" in body:
            body = {**body, "requestid": request_id}
        if body is not None and api == "oapi" and "request_id" not in body:
            body = {**body, "request_id": request_id.lower()[:12]}
        errcode = body.get("errcode") if body is not None else None
        record = self._ledger.record(
            time=now,
            path=call.path,
            robot=outcome.app.name if outcome.app is not None else None,
            token=mask(call.token),
            client_ip=call.client_ip,
            msgtype=outcome.msgtype,
            msg_uuid=None,
            errcode=errcode if isinstance(errcode, int) else None,
            errmsg=_errmsg(body),
            reason=outcome.reason,
            # An after_accept fault breaks the answer of a message that was accepted all the same.
            accepted=outcome.accepted,
            body_size=len(call.body),
            http_status=status,
            fault=fault.kind if fault is not None else None,
            message_id=outcome.message_id,
            code=str(body["code"]) if body is not None and "code" in body else None,
        )
        return AppAnswer(status, body, api, request_id, record)

    def valid_token(self, token: str | None, now: float) -> AppConfig | None:
        name = self._app_tokens.get(token or "")
        if name is None:
            return None
        state = self._app_state[name]
        return self._apps[name] if now < state.expires_at else None

    def _deliver(
        self,
        app: AppConfig,
        conversation: Conversation,
        channel: str,
        msgtype: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> Message:
        return self._ledger.deliver(
            conversation,
            sender=app.name,
            channel=channel,
            msgtype=msgtype,
            payload=payload,
            now=now,
        )

    def user_conversation(self, user: str) -> Conversation:
        """A user's one-to-one conversation (listed once a message lands in it)."""
        return self._ledger.peek_conversation("user", user)

    def group(self, cid: str) -> Conversation:
        """A group conversation the app's robot is in (listed with the app)."""
        return self._ledger.conversations[cid]

    def task(self, task_id: int) -> NoticeTask | None:
        return self._tasks.get(task_id)

    # -- tokens (§2) ---------------------------------------------------------------------

    def issue_token(self, app: AppConfig, now: float) -> tuple[str, float]:
        """Same token while valid, its life extended; a new one after expiry (§2.4)."""
        state = self._app_state[app.name]
        if state.token is None or now >= state.expires_at:
            if state.token is not None:
                self._app_tokens.pop(state.token, None)
            state.token = secrets.token_hex(16)
            self._app_tokens[state.token] = app.name
        state.expires_at = now + app.token_lifetime
        return state.token, app.token_lifetime

    def by_key(self, app_key: Any) -> AppConfig | None:
        name = self._app_keys.get(app_key) if isinstance(app_key, str) else None
        if name is None:
            return None
        self._app_state[name].token_requests += 1
        return self._apps[name]

    # -- media (§5) ------------------------------------------------------------------------

    def store_media(
        self, app: AppConfig, kind: str, filename: str, content_type: str, data: bytes, now: float
    ) -> MediaRecord:
        media_id = "$" + base64.urlsafe_b64encode(secrets.token_bytes(18)).decode("ascii")
        record = MediaRecord(
            media_id, app.name, kind, filename, content_type, data, int(now * 1000)
        )
        self._media[media_id] = record
        return record

    def media_exists(self, media_id: str) -> bool:
        return media_id in self._media

    # -- work notifications (§4) ---------------------------------------------------------

    def new_task(
        self,
        app: AppConfig,
        now: float,
        msg: Mapping[str, Any],
        users: Sequence[str],
        departments: Sequence[str],
        everyone: bool,
    ) -> NoticeTask:
        """Resolve recipients and apply the silent limits of §4.1 (same content, daily cap)."""
        known = set(app.known_users())
        recipients = list(app.known_users()) if everyone else []
        invalid_users = [u for u in users if u not in known]
        recipients += [u for u in users if u in known]
        invalid_depts = [d for d in departments if d not in app.departments]
        for dept in departments:
            recipients += app.departments.get(dept, ())
        state = self._app_state[app.name]
        day = int((now + _DAY_OFFSET) // 86_400)
        digest = hashlib.sha256(json.dumps(msg, sort_keys=True).encode()).hexdigest()
        delivered: list[str] = []
        forbidden: list[tuple[str, str]] = []
        msgtype = str(msg["msgtype"])
        reached = _recent(state.recipients, _RECIPIENT_WINDOW, now)
        for user in dict.fromkeys(recipients):
            if (user, day, digest) in state.seen_today:
                forbidden.append((user, "143106"))
            elif state.notices_today.get((user, day), 0) >= app.notice_daily_cap:
                forbidden.append((user, "143105"))
            elif len(reached) >= app.notice_recipients_per_minute:
                forbidden.append((user, "143103"))  # the app's recipients a minute
            else:
                reached.append(now)
                state.seen_today.add((user, day, digest))
                state.notices_today[(user, day)] = state.notices_today.get((user, day), 0) + 1
                conversation = self.user_conversation(user)
                self._deliver(app, conversation, WORK_NOTICE_CHANNEL, msgtype, msg, now)
                delivered.append(user)
        task = NoticeTask(
            task_id=self._next_task_id,
            app=app.name,
            agent_id=app.agent_id,
            time=now,
            msgtype=msgtype,
            invalid_user_ids=tuple(invalid_users),
            invalid_dept_ids=tuple(invalid_depts),
            delivered=tuple(delivered),
            forbidden=tuple(forbidden),
        )
        self._tasks[task.task_id] = task
        self._next_task_id += 1
        return task

    def deliver_robot(
        self,
        app: AppConfig,
        conversation: Conversation,
        key: str,
        param: Mapping[str, Any],
        now: float,
    ) -> Message:
        payload = {"msgKey": key, "msgParam": dict(param)}
        return self._deliver(app, conversation, APP_ROBOT_CHANNEL, key, payload, now)


def _errmsg(body: Mapping[str, Any] | None) -> str | None:
    if body is None:
        return None
    value = body.get("errmsg", body.get("message"))
    return str(value) if value is not None else None


def fault_reply(fault: Fault, api: Api) -> tuple[int | None, Mapping[str, Any] | None]:
    """The HTTP status and JSON body a fault answers an app request with.

    ``errcode`` faults: oapi endpoints answer HTTP 200 ``{"errcode": …}`` (default -1 系统繁忙);
    v1.0 endpoints answer with the v1.0 ``code`` given as ``errmsg`` (HTTP 403 for
    ``Forbidden.*``, else 400), or HTTP 500 ``system.error`` when no code is given.
    """
    if fault.kind == "http500":
        return 500, None
    if fault.kind == "drop":
        return None, None
    if fault.kind == "errcode" and api == "oapi":
        errcode = -1 if fault.errcode is None else fault.errcode
        return 200, {"errcode": errcode, "errmsg": fault.errmsg or "系统繁忙"}
    if fault.kind == "errcode":
        code = fault.errmsg if fault.errmsg and " " not in fault.errmsg else None
        if code is None:
            return 500, {"code": "system.error", "message": "系统错误"}
        return (403 if code.startswith("Forbidden.") else 400), {"code": code, "message": code}
    return 200, None
