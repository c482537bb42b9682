"""How messages people send the relay's app robots reach it: HTTP callbacks and Stream mode.

* ``POST /callbacks/{app}`` (``{app}`` is an ``[apps.NAME]``): DingTalk's HTTP mode (§12). The
  request is checked with :func:`dingpush.verify_callback` (§12.2: a wrong ``sign`` or a
  ``timestamp`` over an hour away is refused with 403 and not acted on); the answer is the
  reply itself (§12.3), so the person sees it as soon as DingTalk gets it.
* ``[relay] receive = "stream"``: a :class:`dingpush.StreamClient` per app, started with the
  relay (§13: no public URL needed); each message's answer goes back with
  ``StreamClient.reply`` (the message's sessionWebhook while it lives, the app API after).

Both hand each message to :class:`~._chat.ChatCommands`, once: a message DingTalk delivers
again (the same ``msgId``: a callback it retries, a replay within §12.2's hour, a Stream frame
sent again) is acted on by the first delivery only, across the instances of a fleet. The
incident store remembers each message (:meth:`~._incidents.IncidentStore.claim_chat_message`)
with its answer; a later delivery gets that answer, and one that arrives while the first is
still acting waits for it (in this process: it shares the first one's work; on another instance:
it looks in the store a few times, then answers that the command is being handled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import typing
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dingpush import (
    AsyncApp,
    CallbackRejected,
    DingPushError,
    IncomingMessage,
    StreamClient,
    verify_callback,
)

from ._chat import Answer, ChatCommands
from ._commands import parse_command
from ._http import BodyTooLarge, HTTPProblem, problem, read_body
from .stores import MemoryIncidentStore, StoreError

if typing.TYPE_CHECKING:
    from ._incidents import ChatClaim, IncidentStore
    from ._relay import Relay

__all__ = ["ChatReceivers", "ReceivingApp"]

log = logging.getLogger("dingpush.relay")

#: The largest callback body read (a robot message is a few KB).
CALLBACK_MAX_BODY = 256 * 1024
#: How many answers this process keeps by ``msgId`` besides the store (a callback DingTalk
#: sends again to the same instance is answered without asking the store).
REMEMBERED = 1000
#: The longest key a message is remembered by as it is; a longer one by its hash.
KEY_MAX = 200
#: Seconds the store remembers a message: §12.2's hour (a callback whose timestamp is older is
#: refused by its signature check, so it cannot come again later).
REPLAY_WINDOW = 3600.0
#: While another instance acts on a message delivered twice: look for its answer in the store
#: every PENDING_POLL seconds, PENDING_POLLS times (within the callback's deadline), then answer
#: BEING_HANDLED.
PENDING_POLL = 0.05
PENDING_POLLS = 30
BEING_HANDLED = (
    "This command is already being handled: the message reached the relay twice. If no answer "
    "follows, send it again."
)
UNREMEMBERED = (
    "The relay cannot reach its incident store right now, so it cannot tell whether it acted "
    "on this message already; try again in a moment."
)
#: Seconds a callback waits for its answer. DingTalk's timeout for robot callbacks is not
#: documented (§12.3); its event-subscription push requires an answer within 2.5 s.
CALLBACK_DEADLINE = 2.0


@dataclass(frozen=True, slots=True)
class ReceivingApp:
    """An app whose robot people write to: ``[apps.NAME]``'s name and credentials."""

    name: str
    app_key: str
    app_secret: str = dataclasses.field(repr=False)
    api_base: str | None = None


class ChatReceivers:
    """The callback endpoint and the Stream clients of the relay's apps.

    Args:
        apps: the apps people may write to.
        mode: ``"callback"`` (only ``POST /callbacks/{app}``) or ``"stream"`` (a Stream client
            per app too).
        stream_options: keyword arguments for each ``StreamClient`` (tests: back-off, pings).
        callback_deadline: seconds a callback waits for its command's answer; a slower one
            (an Alertmanager that takes its time) is answered later through the message's
            sessionWebhook, and the callback with ``{"msgtype": "empty"}`` (§12.3).
        clients: the apps' clients to answer with, by name, owned by the caller (the relay's
            app targets, opened by the configuration's builder: one token per app); an app
            without one gets its own client, closed with the receivers.
    """

    def __init__(
        self,
        apps: Sequence[ReceivingApp],
        *,
        mode: str = "callback",
        stream_options: dict[str, typing.Any] | None = None,
        callback_deadline: float = CALLBACK_DEADLINE,
        clients: Mapping[str, AsyncApp] | None = None,
    ) -> None:
        self.apps = {a.name: a for a in apps}
        self._shared = dict(clients or {})
        self.mode = mode
        self._stream_options = dict(stream_options or {})
        self.commands: ChatCommands | None = None
        self.clients: dict[str, StreamClient] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._relay: Relay | None = None
        #: Messages handled (tests, benchmarks).
        self.handled = 0
        self._answered: OrderedDict[str, Answer] = OrderedDict()
        #: The messages being acted on in this process: a second delivery awaits the first.
        self._working: dict[str, asyncio.Future[Answer]] = {}
        #: Where messages acted on are remembered (``bind``): the relay's incident store.
        self.memory: IncidentStore = MemoryIncidentStore()
        self.callback_deadline = callback_deadline
        #: How many times a delivery looks for the answer of another instance acting on the
        #: same message (every PENDING_POLL seconds) before answering BEING_HANDLED.
        self.pending_polls = PENDING_POLLS
        self._clients: dict[str, AsyncApp] = {}
        self._late: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"ChatReceivers({sorted(self.apps)}, mode={self.mode!r})"

    def secrets(self) -> list[str]:
        return [a.app_secret for a in self.apps.values()]

    def bind(
        self, relay: Relay, commands: ChatCommands, memory: IncidentStore | None = None
    ) -> None:
        """Act with ``commands``; remember the messages acted on in ``memory``.

        ``memory`` is the relay's incident store (shared by a fleet); without one, messages are
        remembered in this process only.
        """
        self._relay = relay
        self.commands = commands
        if memory is not None:
            self.memory = memory

    # -- HTTP mode ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("/callbacks/{app}", self._callback, methods=["POST"])]

    async def _callback(self, request: Request) -> Response:
        relay, commands = self._relay, self.commands
        assert relay is not None and commands is not None
        name = request.path_params["app"]
        app = self.apps.get(name)
        if app is None:
            known = ", ".join(sorted(self.apps)) or "none"
            return problem(
                HTTPProblem(
                    404,
                    f"no app named {name!r} receives here; the apps are: {known} (the callback "
                    "URL in the developer console must end with /callbacks/APP, APP an "
                    "[apps.NAME] of the relay's configuration)",
                )
            )
        try:
            body = await read_body(request, CALLBACK_MAX_BODY)
            message = verify_callback(
                dict(request.headers), body, app.app_secret, now=relay.clock.time()
            )
        except BodyTooLarge:  # its advice (raise max_body) is for senders, not for DingTalk
            return problem(
                HTTPProblem(
                    413,
                    f"the callback's body is over {CALLBACK_MAX_BODY:,} bytes, more than a "
                    "robot message can be: it did not come from DingTalk",
                )
            )
        except HTTPProblem as exc:
            return problem(exc)
        except CallbackRejected as exc:
            log.warning("callback for app %s refused (%s): %s", name, exc.reason, exc)
            return problem(HTTPProblem(403, f"refused: {exc}"))
        work = asyncio.ensure_future(self.handle(name, message))
        try:
            answer = await asyncio.wait_for(asyncio.shield(work), self.callback_deadline)
        except TimeoutError:
            # DingTalk's wait for the answer is undocumented (§12.3): say nothing now, and
            # reply through the message's sessionWebhook once the command is done.
            task = asyncio.create_task(self._reply_later(name, message, work))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return JSONResponse({"msgtype": "empty"})
        return JSONResponse({"msgtype": "text", "text": {"content": answer.text}})

    async def _reply_later(
        self, name: str, message: IncomingMessage, work: asyncio.Future[Answer]
    ) -> None:
        try:
            answer = await work
            await self._app(name).reply(message, answer.text)
        except DingPushError as exc:
            log.warning("a late answer to a chat command of app %s failed: %s", name, exc)
        except Exception:
            log.exception("a chat command of app %s failed", name)

    def _app(self, name: str) -> AsyncApp:
        if name in self._shared:
            return self._shared[name]
        if name not in self._clients:
            app = self.apps[name]
            self._clients[name] = AsyncApp(app.app_key, app.app_secret, api_base=app.api_base)
        return self._clients[name]

    async def handle(self, app: str, message: IncomingMessage) -> Answer:
        """Act on a message once, however often it is delivered; its answer."""
        assert self.commands is not None
        if not message.msg_id:  # nothing to know it again by
            return self._log(await self.commands.handle(message), message)
        key = json.dumps([app, message.msg_id])  # unambiguous, ASCII, no NUL
        if len(key) > KEY_MAX:  # not DingTalk's (a msgId is short): a bounded index entry
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        known = self._answered.get(key)
        if known is not None:
            return known  # the same message again, answered here: act once
        work = self._working.get(key)
        if work is None:
            work = asyncio.ensure_future(self._once(key, message))
            self._working[key] = work
            work.add_done_callback(lambda done: self._worked(key, done))
        # shield: a caller that goes away (a closed request) does not cancel the others' answer
        return await asyncio.shield(work)

    def _worked(self, key: str, work: asyncio.Future[Answer]) -> None:
        if self._working.get(key) is work:
            del self._working[key]
        if not work.cancelled():
            work.exception()  # each caller is told; nobody left waiting is not an error here

    async def _once(self, key: str, message: IncomingMessage) -> Answer:
        """The first delivery in this process: claim the message in the store, act, answer."""
        assert self.commands is not None
        try:
            claim = await self._claim(key)
        except StoreError as exc:
            log.warning("a chat message could not be claimed in the incident store: %s", exc)
            return Answer(UNREMEMBERED, parse_command(message.text))
        if not claim.first:
            if claim.answer is None:
                return Answer(BEING_HANDLED, parse_command(message.text))
            return self._remember(key, Answer(claim.answer, parse_command(message.text)))
        try:
            answer = await self.commands.handle(message)
        except BaseException:
            with contextlib.suppress(Exception):  # the next delivery may try again
                await self.memory.answer_chat_message(key, None)
            raise
        try:
            await self.memory.answer_chat_message(key, answer.text)
        except StoreError as exc:  # acted: the person's answer matters more
            log.warning("the answer to a chat message could not be stored: %s", exc)
        return self._log(self._remember(key, answer), message)

    async def _claim(self, key: str) -> ChatClaim:
        """Claim a message; while another instance acts on it, look for its answer a while."""
        assert self.commands is not None
        for attempt in range(self.pending_polls + 1):
            if attempt:
                await asyncio.sleep(PENDING_POLL)
            claim = await self.memory.claim_chat_message(
                key, now=self.commands.clock.time(), ttl=REPLAY_WINDOW
            )
            if claim.first or claim.answer is not None:
                break
        return claim

    def _remember(self, key: str, answer: Answer) -> Answer:
        self._answered[key] = answer
        while len(self._answered) > REMEMBERED:
            self._answered.popitem(last=False)
        return answer

    def _log(self, answer: Answer, message: IncomingMessage) -> Answer:
        self.handled += 1
        log.info(
            "chat command %s from %s in %s: %s",
            answer.command.name,
            message.sender_user_id or message.sender_nick,
            message.conversation_id or "a 1:1 chat",
            answer.text.splitlines()[0] if answer.text else "",
        )
        return answer

    # -- Stream mode ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.mode != "stream":
            return
        for app in self.apps.values():
            client = StreamClient(
                app.app_key, app.app_secret, api_base=app.api_base, **self._stream_options
            )
            self.clients[app.name] = client
            self._tasks.append(
                asyncio.create_task(self._listen(app.name, client), name=f"stream-{app.name}")
            )

    async def _listen(self, name: str, client: StreamClient) -> None:
        try:
            async for message in client.messages():
                try:
                    answer = await self.handle(name, message)
                    await client.reply(message, answer.text)
                except DingPushError as exc:
                    log.warning("answering a chat command of app %s failed: %s", name, exc)
                except Exception:
                    log.exception("a chat command of app %s failed", name)
        except asyncio.CancelledError:
            raise
        except DingPushError as exc:  # wrong credentials, a missing extra: stop, say why
            log.error("Stream mode for app %s stopped: %s", name, exc)

    async def aclose(self) -> None:
        for late in list(self._late):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(late, self.callback_deadline)
        for app in self._clients.values():
            await app.aclose()
        self._clients.clear()
        for client in self.clients.values():
            await client.aclose()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for work in list(self._working.values()):  # a command whose caller went away
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(work, self.callback_deadline)
        self.clients.clear()


def _problem(description: str) -> dict[str, typing.Any]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def _html(description: str) -> dict[str, typing.Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def openapi_paths() -> dict[str, dict[str, typing.Any]]:
    """``/callbacks/{app}`` and ``/ack/{number}/{token}`` for ``/openapi.json``."""
    app = {
        "name": "app",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "An [apps.NAME] of the relay's configuration.",
    }
    signed = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": what,
        }
        for name, what in (
            ("timestamp", "Epoch milliseconds, within an hour of the relay's clock (§12.2)."),
            ("sign", 'Base64(HMAC-SHA256(AppSecret, timestamp + "\\n" + AppSecret)) (§12.2).'),
        )
    ]
    reply = {
        "type": "object",
        "required": ["msgtype"],
        "properties": {"msgtype": {"enum": ["text", "empty"]}, "text": {"type": "object"}},
    }
    callback = {
        "operationId": "chat_callback",
        "summary": "A message people sent the app's robot (DingTalk's HTTP mode, §12)",
        "description": "Checked with the app's AppSecret, then read as a chat command (`ack`, "
        "`silence 2h`, `status`, `help`); the answer is the reply (§12.3). See docs/oncall.md.",
        "tags": ["on call"],
        "security": [],
        "parameters": [app, *signed],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": "The reply to show in the chat, or `empty` (a slow command "
                "answers later through the sessionWebhook).",
                "content": {"application/json": {"schema": reply}},
            },
            "403": _problem("A wrong sign, a stale timestamp or no headers: nothing was done."),
            "404": _problem("No such app."),
            "413": _problem("The body is larger than a robot message can be."),
        },
    }
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
    refusals = {
        "403": _html("The link was not made by this relay (forged or changed)."),
        "404": _html("Not an ack link, or no such incident."),
        "409": _html("The incident is already acknowledged, silenced or resolved."),
        "410": _html("The link expired, or was used."),
    }
    link: dict[str, typing.Any] = {
        "get": {
            "operationId": "ack_link_page",
            "summary": "A signed ack link's confirmation page (changes nothing)",
            "tags": ["on call"],
            "security": [],
            "parameters": [number, token],
            "responses": {"200": _html("The page with the button that acknowledges."), **refusals},
        },
        "post": {
            "operationId": "ack_link_acknowledge",
            "summary": "Acknowledge the incident of a signed ack link (once)",
            "tags": ["on call"],
            "security": [],
            "parameters": [number, token],
            "requestBody": {
                "required": False,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
                    }
                },
            },
            "responses": {
                "200": _html("Acknowledged; the group is told."),
                "400": _html("The name given is not one line of text."),
                **refusals,
            },
        },
    }
    return {"/callbacks/{app}": {"post": callback}, "/ack/{number}/{token}": link}
