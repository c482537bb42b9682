"""The :class:`Emulator` façade: one object over the emulator's parts, and the one lock.

The parts each own one area and are not thread-safe on their own:

* :class:`~._ledger.Ledger`: clock, options, ids, conversations, messages, the request log,
  faults and the requests in flight; every area records into it;
* :class:`~._robotstate.RobotArea`: custom robots and ``/robot/send`` (§1);
* :class:`~._appstate.AppArea` and :class:`~._appapi.AppApi`: enterprise apps, their tokens,
  media and notice tasks (§2–§5), and the checks of their endpoints.

One :class:`Emulator` is shared by the HTTP app (running on uvicorn's loop in a background
thread) and by tests reading it from the main thread, so every method takes the ledger's lock
and returns immutable snapshots. Nothing awaits while holding the lock.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from ._appapi import AppApi
from ._apps import AppConfig, MediaRecord, NoticeTask
from ._appstate import Api, AppAnswer, AppArea, AppCall, Outcome
from ._config import Clock, EmulatorOptions, RobotConfig
from ._faults import Fault, FaultKind
from ._ledger import Ledger, SystemClock
from ._oncall import Ding, SentKey
from ._people import (
    PERSON_CHANNEL,
    SESSION_CHANNEL,
    Callback,
    Session,
    callback_headers,
    incoming_body,
    judge_session,
    reply_payload,
)
from ._records import Conversation, EmulatorStats, Message, RequestRecord
from ._robotstate import WEBHOOK_CHANNEL, RobotArea
from ._stream import BOT_TOPIC, StreamGateway, StreamSettings
from ._webhook import WebhookCall, wrong_method

__all__ = ["WEBHOOK_CHANNEL", "Emulator"]


class Emulator:
    """An in-memory DingTalk: robots, apps, their conversations, and a log of every request.

    Args:
        options: How the protocol's uncertain points behave (:class:`EmulatorOptions`).
        clock: Anything with ``time() -> float`` (wall seconds); ``time.time`` by default.
            Rate windows, lock-outs, signature timestamps and token lifetimes all read it.
        robots: Robots to register at once.
        apps: Enterprise apps to register at once (see docs/apps.md for their API).
    """

    def __init__(
        self,
        *,
        options: EmulatorOptions | None = None,
        clock: Clock | None = None,
        robots: Iterable[RobotConfig] = (),
        apps: Iterable[AppConfig] = (),
    ) -> None:
        self._ledger = Ledger(options or EmulatorOptions(), clock or SystemClock())
        self._lock = self._ledger.lock
        self._robots = RobotArea(self._ledger)
        self._apps = AppArea(self._ledger)
        self._app_api = AppApi(self._apps, self._ledger)
        #: §13: the Stream gateway, a WebSocket server of its own started on first use.
        self.stream = StreamGateway(self._stream_settings)
        #: The URL this emulator is served at (set by ``serve_on``): sessionWebhooks use it.
        self.base_url = "http://127.0.0.1"
        self._sessions: dict[str, Session] = {}
        self._callbacks: list[Callback] = []
        for robot in robots:
            self.add_robot(robot)
        for app in apps:
            self.add_app(app)

    def __repr__(self) -> str:
        with self._lock:
            return f"<Emulator robots={len(self._robots)} messages={len(self._ledger.messages)}>"

    # -- requests in flight ----------------------------------------------------------------

    def request_started(self) -> None:
        """Count a DingTalk-side request as being answered (called by the app's middleware)."""
        with self._lock:
            self._ledger.started()

    def request_finished(self) -> None:
        """Count a DingTalk-side request as answered."""
        with self._lock:
            self._ledger.finished()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered; ``False`` if some still are at ``timeout``.

        A client that timed out leaves its request running here; without waiting, that
        request would be recorded into whatever the emulator holds next (the next test).
        """
        with self._lock:
            return self._ledger.wait_idle(timeout)

    # -- configuration -------------------------------------------------------------------

    @property
    def options(self) -> EmulatorOptions:
        """The behaviour options in force; assign a new :class:`EmulatorOptions` to change them."""
        return self._ledger.options

    @options.setter
    def options(self, options: EmulatorOptions) -> None:
        with self._lock:
            self._ledger.options = options

    @property
    def clock(self) -> Clock:
        """The clock in force; assign another (e.g. a ``FakeClock``) at any time."""
        return self._ledger.clock

    @clock.setter
    def clock(self, clock: Clock | None) -> None:
        with self._lock:
            self._ledger.clock = clock or SystemClock()

    # -- robots --------------------------------------------------------------------------

    def add_robot(self, robot: RobotConfig) -> RobotConfig:
        """Register ``robot``, replacing a robot of the same name; its token must be unique."""
        with self._lock:
            return self._robots.add(robot)

    def update_robot(self, name: str, **changes: Any) -> RobotConfig:
        """Change some fields of a robot, e.g. ``status="disabled"``, ``keywords=("ALERT",)``."""
        with self._lock:
            return self._robots.update(name, changes)

    def remove_robot(self, name: str) -> None:
        """Remove a robot: its token becomes unknown (300001). Its messages stay."""
        with self._lock:
            self._robots.remove(name)

    def robot(self, name: str) -> RobotConfig:
        """Return the robot called ``name`` (``KeyError`` if there is none)."""
        with self._lock:
            return self._robots.get(name)

    def robots(self) -> list[RobotConfig]:
        """Return every registered robot, in registration order."""
        with self._lock:
            return self._robots.all()

    def robot_for_token(self, token: str | None) -> str | None:
        """Return the name of the robot owning ``token``, or ``None``."""
        with self._lock:
            return self._robots.for_token(token)

    # -- apps ------------------------------------------------------------------------------

    def add_app(self, app: AppConfig) -> AppConfig:
        """Register ``app``, replacing an app of the same name; its AppKey must be unique."""
        with self._lock:
            return self._apps.add(app)

    def update_app(self, name: str, **changes: Any) -> AppConfig:
        """Change some fields of an app, e.g. ``permissions=()`` or a new ``app_secret``."""
        with self._lock:
            return self._apps.update(name, changes)

    def remove_app(self, name: str) -> None:
        """Remove an app: its AppKey and tokens become unknown. Its messages stay."""
        with self._lock:
            self._apps.remove(name)

    def app(self, name: str) -> AppConfig:
        """Return the app called ``name`` (``KeyError`` if there is none)."""
        with self._lock:
            return self._apps.get(name)

    def apps(self) -> list[AppConfig]:
        """Return every registered app, in registration order."""
        with self._lock:
            return self._apps.all()

    def app_for_token(self, token: str | None) -> str | None:
        """Return the name of the app a valid token belongs to, or ``None``."""
        with self._lock:
            return self._apps.app_for_token(token)

    def token_requests(self, app: str | None = None) -> int:
        """How many token requests named this app's AppKey (all apps when ``None``)."""
        with self._lock:
            return self._apps.token_requests(app)

    def expire_tokens(self, app: str | None = None) -> None:
        """Make the current access tokens invalid now (all apps when ``None``)."""
        with self._lock:
            self._apps.expire_tokens(app)

    def media(self, media_id: str) -> MediaRecord:
        """Return an uploaded file by its ``media_id`` (``KeyError`` if unknown)."""
        with self._lock:
            return self._apps.media(media_id)

    def add_media(
        self,
        app: str,
        data: bytes,
        *,
        filename: str,
        kind: str = "file",
        content_type: str = "application/octet-stream",
    ) -> MediaRecord:
        """Store a file as if ``app`` had uploaded it (``media/upload``, §5), unchecked.

        Tests use it to reference media (``media_id``) without an upload request.
        """
        with self._lock:
            record = self._apps.get(app)
            now = self._ledger.now()
            return self._apps.store_media(record, kind, filename, content_type, data, now)

    def media_items(self, *, app: str | None = None) -> list[MediaRecord]:
        """Return uploaded files, oldest first."""
        with self._lock:
            return self._apps.media_items(app=app)

    def notice_tasks(self, *, app: str | None = None) -> list[NoticeTask]:
        """Return work-notification tasks, oldest first."""
        with self._lock:
            return self._apps.notice_tasks(app=app)

    def read_notice(self, task_id: int, user_ids: Iterable[str]) -> NoticeTask:
        """Mark a task's notification as read by these users (``getsendresult`` shows it)."""
        with self._lock:
            return self._apps.read_notice(task_id, user_ids)

    # -- the people: post to the robot (§12, §13) -------------------------------------------

    def _stream_settings(self) -> StreamSettings:
        options = self._ledger.options
        return StreamSettings(
            options.stream_redelivery_after,
            options.stream_ping_interval,
            options.stream_ticket_lifetime,
        )

    def close(self) -> None:
        """Stop the Stream gateway's thread and connections (``serve_on`` does it at exit)."""
        self.stream.close()

    def post_as_user(
        self, app: str, user: str, text: str, *, group: str | None = None, mention: bool = True
    ) -> dict[str, Any] | None:
        """``user`` writes ``text`` to the app's robot: in ``group`` (an openConversationId or
        title) with ``@robot`` when ``mention``, else in the robot's one-to-one chat.

        The message shows in the chat. A group message reaches the robot only when it
        mentions it (§12); then DingTalk's body (§12.1) goes out over the Stream gateway, or
        as a signed callback to the app's ``callback_url``. Returns that body, or ``None``
        when the robot does not receive the message.
        """
        with self._lock:
            config = self._apps.get(app)
            now = self._ledger.now()
            if group is not None:
                cid = (
                    group
                    if group in config.groups
                    else next((c for c, title in config.groups.items() if title == group), None)
                )
                if cid is None:
                    raise KeyError(f"app {app!r}'s robot is not in the group {group!r}")
                conversation = self._apps.group(cid)
            else:
                conversation = self._apps.user_conversation(user)
            shown = f"@{config.name} {text}" if group is not None and mention else text
            self._ledger.deliver(
                conversation,
                sender=user,
                channel=PERSON_CHANNEL,
                msgtype="text",
                payload={"msgtype": "text", "text": {"content": shown}},
                now=now,
            )
            if group is not None and not mention:
                return None
            session_id = secrets.token_hex(16)
            expires = now + self._ledger.options.session_webhook_lifetime
            self._sessions[session_id] = Session(session_id, config.name, conversation, expires)
            body = incoming_body(
                config,
                conversation,
                user,
                text,
                group=group is not None,
                session_url=f"{self.base_url}/robot/sendBySession?session={session_id}",
                session_expires_at=expires,
                now=now,
            )
            callback_url = config.callback_url
        if callback_url:
            self._call_back(config, callback_url, body, conversation)
        else:
            self.stream.push(config.name, BOT_TOPIC, body)
        return body

    def _call_back(
        self, config: AppConfig, url: str, body: dict[str, Any], conversation: Conversation
    ) -> None:
        """§12.1/§12.2: a signed POST; a synchronous answer that is a message is a reply."""
        import httpx

        status: int | None = None
        error: str | None = None
        reply = None
        try:
            response = httpx.post(
                url,
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers=callback_headers(config, self._ledger.now()),
                timeout=self._ledger.options.callback_timeout,
            )
            status = response.status_code
            if status == 200:
                reply = reply_payload(response.content)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        with self._lock:
            if reply is not None:
                self._ledger.deliver(
                    conversation,
                    sender=config.name,
                    channel=SESSION_CHANNEL,
                    msgtype=str(reply["msgtype"]),
                    payload=reply,
                    now=self._ledger.now(),
                )
            self._callbacks.append(Callback(config.name, url, status, error, reply is not None))

    def callbacks(self) -> list[Callback]:
        """The HTTP callbacks made (§12), in order, with their answers."""
        with self._lock:
            return list(self._callbacks)

    def judge_session_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /robot/sendBySession`` (§12.4): a reply into the chat the session names."""
        session, refused = judge_session(self._sessions, call, now)
        if session is None:
            return refused or Outcome(200, {"errcode": 300001, "errmsg": "session 不存在"})
        app = self._apps.get(session.app)
        payload = reply_payload(call.body)
        if payload is None:
            return Outcome(200, {"errcode": 40035, "errmsg": "缺少参数 json"}, app=app)
        self._ledger.deliver(
            session.conversation,
            sender=app.name,
            channel=SESSION_CHANNEL,
            msgtype=str(payload["msgtype"]),
            payload=payload,
            now=now,
        )
        return Outcome(
            200, {"errcode": 0, "errmsg": "ok"}, app=app, msgtype=str(payload["msgtype"])
        )

    def judge_stream_open(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/gateway/connections/open`` (§13.1): credentials in, endpoint and a
        single-use ticket out; no access token."""
        return self._app_api.judge_stream_open(call, now, self.stream)

    # -- the people: read, confirm (§11, §14) ----------------------------------------------

    def read_app_message(self, process_query_key: str, user_ids: Iterable[str]) -> SentKey:
        """These users read an app robot's message (``groupMessages/query``, §11.3/§11.4)."""
        with self._lock:
            sent = self._app_api.oncall.read_message(
                process_query_key, list(user_ids), self._ledger.now()
            )
            self._ledger.changed()
            return dataclasses.replace(sent, read=dict(sent.read))

    def app_messages(self) -> list[SentKey]:
        """Every app-robot message's key, recipients, readers and recall state (§11)."""
        with self._lock:
            self._app_api.oncall.settle(self._ledger.now())
            return [
                dataclasses.replace(k, read=dict(k.read))
                for k in self._app_api.oncall.keys.values()
            ]

    def app_message_of(self, message_id: int) -> SentKey | None:
        """The key, recipients and readers of the app-robot message shown as ``message_id``."""
        with self._lock:
            self._app_api.oncall.settle(self._ledger.now())
            sent = self._app_api.oncall.key_of_message(message_id)
            return dataclasses.replace(sent, read=dict(sent.read)) if sent else None

    def dings(self) -> list[Ding]:
        """Every DING sent (§14): receivers, reminder type, who read and who confirmed."""
        with self._lock:
            self._app_api.oncall.settle(self._ledger.now())
            return [
                dataclasses.replace(d, read=dict(d.read), confirmed=dict(d.confirmed))
                for d in self._app_api.oncall.dings.values()
            ]

    def read_ding(
        self, open_ding_id: str, user_ids: Iterable[str], *, confirm: bool = False
    ) -> Ding:
        """These receivers read (and, with ``confirm``, confirmed) a DING (§14.4)."""
        with self._lock:
            ding = self._app_api.oncall.read_ding(
                open_ding_id, list(user_ids), self._ledger.now(), confirm=confirm
            )
            self._ledger.changed()
            return dataclasses.replace(ding, read=dict(ding.read), confirmed=dict(ding.confirmed))

    def recalled_message_ids(self) -> set[int]:
        """The ids of messages their robot recalled (the chat view shows them as recalled)."""
        with self._lock:
            return self._app_api.oncall.recalled_message_ids()

    def conversation_of_user(self, user_id: str) -> Conversation:
        """Return the one-to-one conversation of a user (app-robot chats, work notifications)."""
        with self._lock:
            return self._apps.conversation_of_user(user_id)

    # -- reading -------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """A value that changes whenever a view of the emulator may change (the chat view polls it).

        Built from the message and request id counters, which every recorded message and
        request moves whatever channel records it, and a counter of robot and app changes
        and resets.
        """
        with self._lock:
            return self._ledger.version

    def conversations(self) -> list[Conversation]:
        """Return the conversations robots post into, in creation order."""
        with self._lock:
            return list(self._ledger.conversations.values())

    def conversation_of(self, robot: str) -> Conversation:
        """Return the group conversation a robot posts into."""
        with self._lock:
            return self._robots.conversation_of(self._robots.get(robot))

    def messages(
        self,
        *,
        robot: str | None = None,
        conversation: str | None = None,
        since_id: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Return accepted messages, oldest first, filtered by sender and conversation.

        ``conversation`` matches a conversation's id or title; ``since_id`` keeps messages
        with a larger id and ``limit`` the first ``limit`` of those, so polling never skips.
        """
        with self._lock:
            found = self._ledger.find_messages(
                sender=robot, conversation=conversation, since_id=since_id
            )
        return found if limit is None else found[: max(limit, 0)]

    def requests(
        self, *, robot: str | None = None, accepted: bool | None = None
    ) -> list[RequestRecord]:
        """Return every request record, oldest first, optionally filtered."""
        with self._lock:
            return self._ledger.find_requests(sender=robot, accepted=accepted)

    def rejections(self, *, robot: str | None = None) -> list[RequestRecord]:
        """Return the refused requests (faults included, de-duplicated retries excluded)."""
        return [r for r in self.requests(robot=robot) if r.rejected]

    def stats(self) -> EmulatorStats:
        """Return per-robot counters and totals."""
        with self._lock:
            requests = self._ledger.requests
            unknown = sum(1 for r in requests if r.reason == "unknown_token")
            return EmulatorStats(self._robots.stats(), unknown, len(requests))

    # -- faults --------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        count: int | None = 1,
        probability: float = 1.0,
        robot: str | None = None,
        path: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
        delay: float = 0.0,
        after_accept: bool = False,
        seed: int | None = None,
    ) -> Fault:
        """Make the next matching request(s) fail.

        Args:
            kind: ``"errcode"`` (HTTP 200 with ``errcode``, default -1 系统繁忙),
                ``"http500"`` (a gateway's HTML error page), ``"delay"`` (answer ``delay``
                seconds late) or ``"drop"`` (start the response, then cut the connection).
            count: How many matching requests to affect; ``None`` for no limit.
            probability: Chance that a matching request is affected, drawn from
                ``random.Random(seed)``; a miss does not use up ``count``.
            robot: Only requests whose token belongs to this robot (or app).
            path: Only requests to this path, e.g. ``"/robot/send"``.
            errcode: The errcode of an ``"errcode"`` fault.
            errmsg: Its errmsg.
            delay: Seconds a ``"delay"`` fault waits.
            after_accept: Process the request normally first (a valid message is accepted
                and recorded) and only then break the answer: the case ``msgUuid`` exists for.
            seed: Seed for ``probability`` draws, for reproducible soak tests.
        """
        with self._lock:
            return self._ledger.faults.add(
                kind,
                count=count,
                probability=probability,
                robot=robot,
                path=path,
                errcode=errcode,
                errmsg=errmsg,
                delay=delay,
                after_accept=after_accept,
                seed=seed,
            )

    def faults(self) -> list[Fault]:
        """Return the faults still pending."""
        with self._lock:
            return self._ledger.faults.pending()

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._ledger.faults.clear()

    def take_fault(self, *, path: str, robot: str | None, after_accept: bool) -> Fault | None:
        """Fire the first pending fault matching this request, if any (used by the routes)."""
        with self._lock:
            return self._ledger.faults.take(path=path, robot=robot, after_accept=after_accept)

    def reset(self, *, robots: bool = False, apps: bool | None = None) -> None:
        """Forget messages, requests, faults, rate windows, lock-outs and msgUuids.

        Robots stay unless ``robots=True``; apps (with their tokens, media and notice tasks
        forgotten) stay unless ``apps=True``, which defaults to ``robots``.
        """
        with self._lock:
            self._ledger.clear()
            self._app_api.oncall.reset()
            self._sessions.clear()
            self._callbacks.clear()
        self.stream.reset()
        with self._lock:
            self._robots.reset(forget=robots)
            self._apps.reset(forget=robots if apps is None else apps)

    # -- the routes' entry points ----------------------------------------------------------

    def robot_send(
        self,
        call: WebhookCall,
        *,
        delayed: Fault | None = None,
        answer_fault: Fault | None = None,
    ) -> RequestRecord:
        """Process one custom-robot send (protocol §1, §8) and record it.

        ``delayed`` is a ``delay`` fault that already slept; ``answer_fault`` is an
        ``after_accept`` fault whose answer replaces the normal one in the record.
        """
        with self._lock:
            return self._robots.send(call, delayed=delayed, answer_fault=answer_fault)

    def record_fault(self, call: WebhookCall, fault: Fault) -> RequestRecord:
        """Record a request to ``/robot/send`` a fault answered before any processing."""
        with self._lock:
            return self._robots.record_fault(call, fault)

    def record_wrong_method(self, call: WebhookCall) -> RequestRecord:
        """Record a ``/robot/send`` request made with another method than POST, refused."""
        with self._lock:
            return self._robots.wrong_method(call, wrong_method("POST"))

    def handle_app_call(
        self,
        call: AppCall,
        api: Api,
        handler: Callable[[AppCall, float], Outcome],
        *,
        delayed: Fault | None = None,
        answer_fault: Fault | None = None,
    ) -> AppAnswer:
        """Judge one app request under the lock, record it, and return the answer."""
        with self._lock:
            return self._apps.handle(call, api, handler, delayed=delayed, answer_fault=answer_fault)

    def record_app_fault(self, call: AppCall, fault: Fault, api: Api) -> AppAnswer:
        """Record an app request a fault answered before any processing."""
        with self._lock:
            return self._apps.record_fault(call, fault, api)

    # The app endpoints' checks, called by the routes through :meth:`handle_app_call`
    # (which holds the lock).

    def judge_token(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/oauth2/accessToken`` (§2.2)."""
        return self._app_api.judge_token(call, now)

    def judge_gettoken(self, call: AppCall, now: float) -> Outcome:
        """Legacy ``GET /gettoken`` (§2.1)."""
        return self._app_api.judge_gettoken(call, now)

    def judge_group_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/groupMessages/send`` (§3.1)."""
        return self._app_api.judge_group_send(call, now)

    def judge_batch_send(self, call: AppCall, now: float) -> Outcome:
        """``POST /v1.0/robot/oToMessages/batchSend`` (§3.2)."""
        return self._app_api.judge_batch_send(call, now)

    def judge_notice_send(self, call: AppCall, now: float) -> Outcome:
        """``asyncsend_v2`` (§4.1)."""
        return self._app_api.judge_notice_send(call, now)

    def judge_notice_progress(self, call: AppCall, now: float) -> Outcome:
        """``getsendprogress`` (§4.2)."""
        return self._app_api.judge_notice_progress(call, now)

    def judge_notice_result(self, call: AppCall, now: float) -> Outcome:
        """``getsendresult`` (§4.3)."""
        return self._app_api.judge_notice_result(call, now)

    def judge_upload(self, call: AppCall, now: float) -> Outcome:
        """``POST /media/upload`` (§5)."""
        return self._app_api.judge_upload(call, now)

    def judge_group_recall(self, call: AppCall, now: float) -> Outcome:
        """``groupMessages/recall`` (§11.1)."""
        return self._app_api.judge_group_recall(call, now)

    def judge_oto_recall(self, call: AppCall, now: float) -> Outcome:
        """``otoMessages/batchRecall`` (§11.2)."""
        return self._app_api.judge_oto_recall(call, now)

    def judge_group_query(self, call: AppCall, now: float) -> Outcome:
        """``groupMessages/query`` (§11.3)."""
        return self._app_api.judge_group_query(call, now)

    def judge_oto_read(self, call: AppCall, now: float) -> Outcome:
        """``oToMessages/readStatus`` (§11.4)."""
        return self._app_api.judge_oto_read(call, now)

    def judge_ding_send(self, call: AppCall, now: float) -> Outcome:
        """``robot/ding/send`` (§14.1)."""
        return self._app_api.judge_ding_send(call, now)

    def judge_ding_recall(self, call: AppCall, now: float) -> Outcome:
        """``robot/ding/recall`` (§14.2)."""
        return self._app_api.judge_ding_recall(call, now)

    def judge_ding_read(self, call: AppCall, now: float) -> Outcome:
        """``robot/ding/readStatuses/query`` (§14.3)."""
        return self._app_api.judge_ding_read(call, now)
