"""The chat view: each conversation drawn as DingTalk shows it, live, beside the refused requests.

``GET /`` opens the most recently active conversation and ``/_emulator/chat/{id}`` any other.
The page is rendered on the server; a small script (``static/chat.js``) listens to
``/_emulator/chat/events`` (server-sent events carrying :attr:`Emulator.version`) and fetches
``/_emulator/chat/{id}/updates`` when something changed: the new messages, the refused requests
and the conversation list, as HTML fragments. Tokens appear masked and secrets never.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dingpush.web import (
    STATIC_PACKAGE,
    MessageRenderer,
    TimeLabel,
    avatar_for,
    create_environment,
    time_label,
    view_for,
)

from ._apps import WORK_NOTICE_CHANNEL, AppConfig
from ._config import RobotConfig
from ._oncall import REMIND_NAMES, Ding, SentKey
from ._records import Conversation, Message, RequestRecord, conversation_id
from ._robotstate import WEBHOOK_CHANNEL
from ._state import Emulator

__all__ = ["chat_routes", "explain_rejection", "rejection_title"]

#: How often the event stream looks at the emulator's version, and how long one stream lasts
#: before the browser reconnects (a bounded stream never holds a server shutdown for long).
_POLL_S = 0.2
_STREAM_S = 25.0
_REJECTIONS_SHOWN = 50
_MESSAGES_SHOWN = 500
_PAGE_HEADERS = {
    # Message text is untrusted: no inline script can run, whatever slipped through escaping.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src * data:; media-src *; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# -- why a request was refused --------------------------------------------------------------


_REASONS: dict[str, tuple[str, str]] = {
    "keyword": (
        "Keyword missing",
        "The message contains none of the robot's custom keywords{keywords}. Put one in the "
        "text, or pass keyword=… to Robot to append it.",
    ),
    "signature": (
        "Signature mismatch",
        "sign is not the HMAC-SHA256 of timestamp + \\n + secret. Check the SEC… secret, and "
        "that sign is URL-encoded exactly once.",
    ),
    "sign_missing": (
        "Signature missing",
        "This robot has 加签 (signing) enabled, but the request has no timestamp and sign. "
        "Pass secret=… to Robot.",
    ),
    "timestamp": (
        "Signature expired",
        "The timestamp is more than one hour away from DingTalk's clock. Sign every request "
        "afresh, and check the sending machine's clock.",
    ),
    "ip": (
        "IP not allowed",
        "The sender's address is not in the robot's IP allow-list{allowlist}.",
    ),
    "unknown_token": (
        "Unknown token",
        "No robot has the access_token {token}. Copy the webhook URL again from the group's "
        "robot settings; an AppKey or an app access token is not a webhook token.",
    ),
    "disabled": ("Robot disabled", "The robot was disabled in the group's settings."),
    "not_in_group": ("Robot not in group", "The robot was removed from the group."),
    "dissolved": ("Group dissolved", "The group this robot posts into was dissolved."),
    "throttled": (
        "Throttled",
        "The robot sent more than {rate} messages in {window}; DingTalk blocks it for "
        "{lockout}. Queue messages instead of sending them at once.",
    ),
    "locked": (
        "Throttled (blocked)",
        "The robot is still blocked after going over its rate limit; every send is refused "
        "until the block ends.",
    ),
    "content_type": (
        "Wrong Content-Type",
        "Send the body as application/json (charset UTF-8).",
    ),
    "bad_json": ("Body is not JSON", "The request body is empty or is not a JSON object."),
    "too_large": (
        "Message too large",
        "The body is {size} bytes; DingTalk accepts at most {limit} bytes (bytes, not "
        "characters: Chinese text reaches it three times sooner). Split the message.",
    ),
    "bad_msgtype": (
        "Unsupported msgtype",
        "Custom robots send text, markdown, link, actionCard and feedCard.",
    ),
    "missing_param": ("Missing field", "A required field is missing or empty (see errmsg)."),
    "unknown_field": ("Unknown field", "The body has a field robot/send does not take."),
    "fault": ("Injected fault", "A fault injected through /_emulator/faults answered this."),
    "wrong_method": (
        "Wrong HTTP method",
        "This endpoint takes {method}; DingTalk answers another method with errcode "
        "43001/43002 instead of sending anything.",
    ),
}

# The app endpoints' refusals (§2–§5), by reason tag or v1.0 code; checked before _REASONS
# for requests to other paths than /robot/send.
_APP_REASONS: dict[str, tuple[str, str]] = {
    "invalidClientIdOrSecret": (
        "App credentials refused",
        "No app has this AppKey with this AppSecret. Copy both again from the app's page in "
        "the developer console (Client ID and Client Secret); the AppSecret changes whenever "
        "someone resets it.",
    ),
    "bad_credentials": (
        "App credentials refused",
        "No app has this appkey with this appsecret. Copy both again from the app's page in "
        "the developer console; the AppSecret changes whenever someone resets it.",
    ),
    "Missingbody": (
        "Body is not JSON",
        'The token request takes a JSON body {{"appKey": …, "appSecret": …}} sent as '
        "application/json.",
    ),
    "invalid_token": (
        "Access token refused",
        "The access token is unknown or expired (tokens live two hours). Get a new one and "
        "send the request again.",
    ),
    "missing_token": (
        "Access token missing",
        "The oapi endpoints take the app's access token in the URL: ?access_token=….",
    ),
    "permission_denied": (
        "Permission missing",
        "The app has not been granted qyapi_robot_sendmsg (企业内机器人发送消息权限); add it "
        "under the app's permissions in the developer console.",
    ),
    "qps_throttled": (
        "Too many calls a second",
        "The app called this API more times in one second than DingTalk allows (20 for a "
        "standard organisation); the rest of that second is refused. Pace the calls.",
    ),
    "bad_agent": ("Wrong AgentId", "agent_id is not this app's AgentId."),
    "bad_task": (
        "Unknown task",
        "No work-notification task of this app has this task_id, or it is too old to query.",
    ),
    "too_many": (
        "Too many recipients",
        "A work notification takes at most 100 userids and 20 departments a call.",
    ),
    "bad_param": ("Bad parameter", "A parameter has the wrong form (see errmsg)."),
    "bad_msgtype": (
        "Unsupported msgtype",
        "Work notifications take text, image, voice, file, link, oa, markdown and action_card.",
    ),
    "bad_media_id": (
        "Unknown media_id",
        "The message refers to a media_id this organisation never uploaded; upload the file "
        "first (media/upload).",
    ),
    "missing_media": ("No file", "The upload has no multipart part called media with a file."),
    "empty_media": ("Empty file", "The uploaded file has no bytes."),
    "bad_media_type": ("Unknown media type", "type must be image, voice, video or file."),
    "bad_file_type": (
        "File type not allowed",
        "DingTalk does not take files with this extension for this media type.",
    ),
}
# v1.0 codes of the app robot's refusals, by prefix (§3.4).
_APP_CODE_PREFIXES: tuple[tuple[str, tuple[str, str]], ...] = (
    (
        "invalidParameter.robotCode",
        ("Wrong robotCode", "robotCode must be the app's robot code: its AppKey."),
    ),
    (
        "invalidParameter.msgKey",
        ("Unknown msgKey", "msgKey must name one of DingTalk's templates (sampleText, …)."),
    ),
    (
        "invalidParameter.msgParam",
        (
            "Bad msgParam",
            "msgParam must be a JSON object in a string, at most 15,000 bytes, with the "
            "template's fields.",
        ),
    ),
    ("invalidParameter.msgBody", ("Body is not JSON", "Send the body as application/json.")),
    ("miss.param", ("Missing field", "The template needs a field that is missing (see errmsg).")),
    (
        "miss.openConversationId",
        ("Group missing", "openConversationId is required: the group to send to."),
    ),
    (
        "invalid.openConversationId",
        ("Unknown group", "openConversationId names no group the app's robot is in."),
    ),
    (
        "invalidParameter.userIds",
        ("Bad user list", "userIds must list between 1 and 20 users a call."),
    ),
)


def _title_and_why(record: RequestRecord) -> tuple[str, str]:
    """The refusal's title and explanation template, in plain words."""
    if record.path != "/robot/send":
        found = _APP_REASONS.get(record.reason)
        if found is None:
            found = next(
                (text for prefix, text in _APP_CODE_PREFIXES if record.reason.startswith(prefix)),
                None,
            )
        if record.reason == "too_large":
            found = _too_large_app(record.path)
        if found is not None:
            return found
    found = _REASONS.get(record.reason)
    if found is not None:
        return found
    return _words(record.reason), "DingTalk refused the request; its answer says why (below)."


def _too_large_app(path: str) -> tuple[str, str]:
    if path.endswith("/media/upload"):
        return "File too large", "The file is larger than DingTalk takes for its type (§5)."
    return "Message too large", "A work notification's msg is at most 2,048 bytes (UTF-8)."


def _words(code: str) -> str:
    """``invalidParameter.token.invalid`` → ``Invalid parameter: token invalid``."""
    parts = [re.sub(r"(?<=[a-z])(?=[A-Z])", " ", part).lower() for part in re.split(r"[._]", code)]
    parts = [part for part in parts if part]
    if not parts:
        return "Refused"
    head, rest = parts[0].capitalize(), " ".join(parts[1:])
    return f"{head}: {rest}" if rest else head


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} s"


def rejection_title(record: RequestRecord) -> str:
    """The refusal's title in plain words (``App credentials refused``), never a raw code."""
    return _title_and_why(record)[0]


def explain_rejection(record: RequestRecord, robot: RobotConfig | None, limit: int) -> str:
    """Say in words why DingTalk refused ``record``, with what the robot's settings require."""
    _, template = _title_and_why(record)
    keywords = f" ({', '.join(robot.keywords)})" if robot and robot.keywords else ""
    allowlist = f" ({', '.join(robot.ip_allowlist)})" if robot and robot.ip_allowlist else ""
    return template.format(
        keywords=keywords,
        allowlist=allowlist,
        token=record.token or "(none)",
        rate=robot.rate_limit if robot else 20,
        window=_duration(robot.rate_window if robot else 60.0),
        lockout=_duration(robot.lockout if robot else 600.0),
        size=f"{record.body_size:,}",
        limit=f"{limit:,}",
        method="GET" if record.path == "/gettoken" else "POST",
    )


# -- what the templates show ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ConversationItem:
    conversation: Conversation
    count: int
    preview: str
    when: TimeLabel | None
    avatar: Any


@dataclass(frozen=True, slots=True)
class _RejectionItem:
    record: RequestRecord
    title: str
    why: str
    when: TimeLabel | None


@dataclass(frozen=True, slots=True)
class _RobotItem:
    name: str
    security: str
    status: str


def _security(robot: RobotConfig) -> str:
    parts = []
    if robot.secret is not None:
        parts.append("signed (加签)")
    if robot.keywords:
        parts.append("keywords: " + ", ".join(robot.keywords))
    if robot.ip_allowlist:
        parts.append("IP allow-list: " + ", ".join(robot.ip_allowlist))
    window = "min" if robot.rate_window == 60 else f"{robot.rate_window:g}s"
    parts.append(f"at most {robot.rate_limit}/{window}")
    return " · ".join(parts)


def _app_security(app: AppConfig, kind: str) -> str:
    # The AppKey is not a secret (DingTalk shows it as the Client ID); the AppSecret never shows.
    return f"{kind} of an enterprise app · AppKey {app.app_key}"


def _short(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class _MessageState:
    """What the people did with an app robot's message: who read it, whether it was recalled."""

    message_id: int
    key: str
    recalled: bool
    read: tuple[str, ...]
    unread: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _DingItem:
    ding: Ding
    remind: str
    receivers: tuple[tuple[str, str], ...]  # (userId, "unread" | "read" | "confirmed")
    when: TimeLabel | None


_REMIND_WORDS = {"app": "in-app DING", "sms": "SMS DING", "call": "phone DING"}
#: How many unread recipients of a group message get a "read" button each.
_READERS_SHOWN = 12


def _message_state(sent: SentKey, message_id: int) -> _MessageState:
    unread = tuple(u for u in sent.recipients if u not in sent.read)
    return _MessageState(
        message_id, sent.key, sent.recalled_at is not None, tuple(sent.read), unread
    )


def _ding_item(ding: Ding) -> _DingItem:
    receivers = tuple(
        (user, "confirmed" if user in ding.confirmed else "read" if user in ding.read else "unread")
        for user in ding.receivers
    )
    remind = REMIND_NAMES.get(ding.remind_type, str(ding.remind_type))
    return _DingItem(ding, _REMIND_WORDS.get(remind, remind), receivers, time_label(ding.sent_at))


async def _form(request: Request) -> dict[str, str]:
    """A URL-encoded form (the chat view's own forms), without python-multipart."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


class _ChatView:
    """Request handlers of the chat view, bound to one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.environment = create_environment()

    # -- data ------------------------------------------------------------------------------

    def _renderer(self, request: Request) -> MessageRenderer:
        root = request.scope.get("root_path", "")

        def media_url(media_id: str) -> str:
            return f"{root}/_emulator/media/{urllib.parse.quote(media_id, safe='')}"

        return MessageRenderer(media_url=media_url, environment=self.environment)

    def _conversation_items(self, messages: Sequence[Message]) -> list[_ConversationItem]:
        last: dict[str, Message] = {}
        counts: dict[str, int] = {}
        for message in messages:
            last[message.conversation_id] = message
            counts[message.conversation_id] = counts.get(message.conversation_id, 0) + 1
        items = []
        for conversation in self.emulator.conversations():
            latest = last.get(conversation.id)
            items.append(
                _ConversationItem(
                    conversation,
                    counts.get(conversation.id, 0),
                    _short(view_for(latest.payload, latest.channel).preview) if latest else "",
                    time_label(latest.time) if latest else None,
                    avatar_for(conversation.title),
                )
            )
        # Most recent activity first, as DingTalk orders its conversation list.
        items.sort(key=lambda i: -(last[i.conversation.id].id if i.count else 0))
        return items

    def _robots_of(self, cid: str) -> list[RobotConfig]:
        return [r for r in self.emulator.robots() if conversation_id("group", r.group) == cid]

    def _posters(self, cid: str, shown: Sequence[Message]) -> list[_RobotItem]:
        """Who posts here: the group's webhook robots, the apps whose robot is in the group,
        and the apps that sent the messages shown (one-to-one chats, work notifications)."""
        items = [
            _RobotItem(r.name, _security(r), r.status if r.status != "active" else "")
            for r in self._robots_of(cid)
        ]
        apps = {app.name: app for app in self.emulator.apps()}
        listed: set[str] = set()
        for member in apps.values():
            if cid in member.groups:
                items.append(_RobotItem(member.name, _app_security(member, "app robot"), ""))
                listed.add(member.name)
        for message in shown:
            app = apps.get(message.sender)
            if app is not None and app.name not in listed and message.channel != WEBHOOK_CHANNEL:
                kind = (
                    "work notifications" if message.channel == WORK_NOTICE_CHANNEL else "app robot"
                )
                items.append(_RobotItem(app.name, _app_security(app, kind), ""))
                listed.add(app.name)
        return items

    def _app_names(self) -> set[str]:
        return {app.name for app in self.emulator.apps()}

    def _states(self, shown: Sequence[Message]) -> dict[int, _MessageState]:
        states = {}
        for message in shown:
            if message.channel == WEBHOOK_CHANNEL or message.channel == WORK_NOTICE_CHANNEL:
                continue
            sent = self.emulator.app_message_of(message.id)
            if sent is not None:
                states[message.id] = _message_state(sent, message.id)
        return states

    def _people(self, conversation: Conversation) -> list[str]:
        """Who can post here: the users of the apps whose robot is in the group; in a
        one-to-one chat, its person."""
        if conversation.kind != "group":
            return [conversation.title]
        people: dict[str, None] = {}
        for app in self.emulator.apps():
            if conversation.id in app.groups:
                people.update(dict.fromkeys(app.known_users()))
        return list(people)

    def _rejections(self, cid: str, senders: set[str]) -> list[_RejectionItem]:
        robots = {r.name: r for r in self.emulator.robots()}
        limit = self.emulator.options.body_limit
        found = [
            r
            for r in self.emulator.rejections()
            # A request that named no known robot cannot be placed; every conversation shows it.
            if r.robot is None or r.robot in senders
        ]
        items = []
        for record in reversed(found[-_REJECTIONS_SHOWN:]):
            title = rejection_title(record)
            robot = robots.get(record.robot or "")
            why = explain_rejection(record, robot, limit)
            items.append(_RejectionItem(record, title, why, time_label(record.time)))
        return items

    def _context(self, request: Request, cid: str | None) -> dict[str, Any]:
        messages = self.emulator.messages()
        items = self._conversation_items(messages)
        current = next((i.conversation for i in items if i.conversation.id == cid), None)
        if cid is None and items:
            current = items[0].conversation
        shown = [m for m in messages if current is not None and m.conversation_id == current.id]
        posters = self._posters(current.id, shown) if current else []
        senders = {p.name for p in posters} | {m.sender for m in shown}
        renderer = self._renderer(request)
        states = self._states(shown[-_MESSAGES_SHOWN:])
        state_template = self.environment.get_template("emulator/_state.html")
        rendered = [
            (
                m.id,
                renderer.render(
                    m.payload, sender=m.sender, time=m.time, channel=m.channel, message_id=m.id
                )
                + Markup(
                    state_template.render(
                        state=states.get(m.id), conversation=current, **_urls(request)
                    )
                ),
            )
            for m in shown[-_MESSAGES_SHOWN:]
        ]
        return {
            "conversation": current,
            "conversations": items,
            "messages": rendered,
            "message_count": len(shown),
            "last_id": shown[-1].id if shown else 0,
            "robots": posters,
            "states": states,
            "people": self._people(current) if current else [],
            "robot_names": [p.name for p in posters if p.name in self._app_names()],
            "dings": [_ding_item(d) for d in reversed(self.emulator.dings()[-20:])],
            "rejections": self._rejections(current.id, senders) if current else [],
            "version": self.emulator.version,
            **_urls(request),
        }

    # -- handlers ---------------------------------------------------------------------------

    def _page(self, request: Request, cid: str | None) -> Response:
        context = self._context(request, cid)
        if cid is not None and context["conversation"] is None:
            template = self.environment.get_template("emulator/not_found.html")
            html = template.render(conversation_id=cid, **_urls(request))
            return HTMLResponse(html, status_code=404, headers=_PAGE_HEADERS)
        html = self.environment.get_template("emulator/chat.html").render(**context)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    async def home(self, request: Request) -> Response:
        return self._page(request, None)

    async def conversation(self, request: Request) -> Response:
        return self._page(request, request.path_params["conversation_id"])

    async def updates(self, request: Request) -> Response:
        """The parts of the page that change, as HTML fragments, for messages after ``after``."""
        cid = request.path_params["conversation_id"]
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return JSONResponse({"error": "query parameter 'after' must be an integer"}, 400)
        context = self._context(request, cid)
        if context["conversation"] is None:
            return JSONResponse({"error": f"no conversation {cid!r}"}, 404)
        fragments = {
            name: self.environment.get_template(f"emulator/_{name}.html").render(**context)
            for name in ("conversations", "rejections", "robots", "dings")
        }
        state_template = self.environment.get_template("emulator/_state.html")
        states = {
            str(mid): state_template.render(
                state=state, conversation=context["conversation"], **_urls(request)
            )
            for mid, state in context["states"].items()
        }
        new = [html for mid, html in context["messages"] if mid > after]
        body = {
            "version": context["version"],
            "last_id": context["last_id"],
            "count": context["message_count"],
            "messages": [str(Markup("<li>%s</li>") % html) for html in new],
            "states": states,
            **fragments,
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    # -- the people (§11–§14): post, read, confirm ------------------------------------------

    def _back(self, request: Request, cid: str) -> Response:
        return RedirectResponse(_Urls(request).conversation(cid), status_code=303)

    async def post(self, request: Request) -> Response:
        """A person writes into the conversation (``@robot`` to reach it in a group)."""
        cid = request.path_params["conversation_id"]
        form = await _form(request)
        user, text, robot = form.get("user", ""), form.get("text", "").strip(), form.get("robot")
        if not user or not text:
            return JSONResponse({"error": "give 'user' and 'text'"}, 400)
        conversation = next((c for c in self.emulator.conversations() if c.id == cid), None)
        if conversation is None:
            return JSONResponse({"error": f"no conversation {cid!r}"}, 404)
        apps = [a for a in self.emulator.apps() if robot in (None, "", a.name)]
        if conversation.kind == "group":
            apps = [a for a in apps if cid in a.groups]
        app = next((a for a in apps if user in a.known_users()), None)
        if app is None:
            return JSONResponse({"error": f"no app robot here that {user!r} can write to"}, 400)
        group = cid if conversation.kind == "group" else None
        mention = form.get("mention") == "on" or group is None
        await anyio.to_thread.run_sync(
            lambda: self.emulator.post_as_user(app.name, user, text, group=group, mention=mention)
        )
        return self._back(request, cid)

    async def read(self, request: Request) -> Response:
        """A person reads an app robot's message (``groupMessages/query`` will say so)."""
        cid = request.path_params["conversation_id"]
        form = await _form(request)
        try:
            self.emulator.read_app_message(form.get("key", ""), [form.get("user", "")])
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return self._back(request, cid)

    async def read_ding(self, request: Request) -> Response:
        """A person reads (and, with ``confirm``, confirms) a DING."""
        cid = request.path_params["conversation_id"]
        form = await _form(request)
        try:
            self.emulator.read_ding(
                form.get("ding", ""), [form.get("user", "")], confirm=form.get("confirm") == "on"
            )
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return self._back(request, cid)

    async def events(self, request: Request) -> Response:
        """Server-sent events: ``change`` with the emulator's version whenever it moves."""
        return StreamingResponse(
            self._stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, request: Request) -> AsyncIterator[str]:
        # The browser reconnects 0.5 s after a stream ends (the retry field).
        yield "retry: 500\n\n"
        seen = None
        deadline = anyio.current_time() + _STREAM_S
        while anyio.current_time() < deadline:
            version = self.emulator.version
            if version != seen:
                seen = version
                yield f"event: change\ndata: {json.dumps(version)}\n\n"
            if await request.is_disconnected():
                return
            await anyio.sleep(_POLL_S)


class _Urls:
    """The chat view's URLs, under whatever path the emulator is mounted at."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.root = request.scope.get("root_path", "")

    def static(self, path: str) -> str:
        return str(self._request.url_for("emulator-static", path=path).path)

    def home(self) -> str:
        return f"{self.root}/"

    def conversation(self, cid: str) -> str:
        return f"{self.root}/_emulator/chat/{urllib.parse.quote(cid, safe='')}"

    def post(self, cid: str) -> str:
        return self.conversation(cid) + "/post"

    def read(self, cid: str) -> str:
        return self.conversation(cid) + "/read"

    def read_ding(self, cid: str) -> str:
        return self.conversation(cid) + "/ding-read"

    def updates(self, cid: str) -> str:
        return self.conversation(cid) + "/updates"

    def events(self) -> str:
        return f"{self.root}/_emulator/chat/events"


def _urls(request: Request) -> dict[str, Any]:
    urls = _Urls(request)
    return {"url": urls, "static_url": urls.static}


def chat_routes(emulator: Emulator) -> list[BaseRoute]:
    """Return the chat view's routes (``/``, ``/_emulator/chat/…``, ``/_emulator/static/…``)."""
    view = _ChatView(emulator)
    return [
        Route("/", view.home, methods=["GET"], name="emulator-home"),
        Route("/_emulator/chat/events", view.events, methods=["GET"], name="emulator-events"),
        Route("/_emulator/chat/{conversation_id}", view.conversation, methods=["GET"]),
        Route("/_emulator/chat/{conversation_id}/updates", view.updates, methods=["GET"]),
        Route("/_emulator/chat/{conversation_id}/post", view.post, methods=["POST"]),
        Route("/_emulator/chat/{conversation_id}/read", view.read, methods=["POST"]),
        Route("/_emulator/chat/{conversation_id}/ding-read", view.read_ding, methods=["POST"]),
        Mount(
            "/_emulator/static",
            app=StaticFiles(packages=[STATIC_PACKAGE]),
            name="emulator-static",
        ),
    ]
