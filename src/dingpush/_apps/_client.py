"""The enterprise-app client ``App`` and its recipients: a thin sync shell over ``BaseApp``.

An app (AppKey/AppSecret) sends as its robot into groups (``app.group(cid)``) and one-to-one
chats (``app.users([...])``), and as work notifications (``app.notify(agent_id, ...)``); it
uploads media and fetches its own access token, refreshed single-flight. Every call goes
through the delivery engine (``_delivery.py``, ``_app_delivery.py``): rate budgets, retries,
parts. What is not I/O is built once, in ``_app_base.py``; the shell only posts: a token, the
request, the answer checked (``_call``). ``AsyncApp`` (``_async_app.py``) is the same over
``httpx.AsyncClient``; keep the two in step.
"""

from __future__ import annotations

import threading
import typing
import uuid
from collections.abc import Callable, Iterable

from dingpush._engine._delivery import Flow, Post, SendOptions, run
from dingpush._engine._retry import RetryTypes
from dingpush._engine._split import Splitter
from dingpush._messages._models import Message
from dingpush._receive._incoming import IncomingMessage
from dingpush._results import (
    DingReadStatus,
    DingResult,
    GroupReadStatus,
    GroupSendResult,
    NoticeDelivery,
    NoticeProgress,
    NoticeSendResult,
    RecallResult,
    RemindType,
    UsersReadStatus,
    UsersSendResult,
)

from ._base import (
    BaseApp,
    Body,
    MediaSource,
    RecipientsFlow,
    S,
    T,
    request_args,
    token_not_sent,
)
from ._core import GroupSpec, HttpRequest, NoticeSpec, UsersSpec, needs_upload, upload_source
from ._delivery import (
    AppCall,
    AppChannel,
    Part,
    group_flow,
    notice_flow,
    prepare_parts,
    users_flow,
)
from ._oncall import KeySource

if typing.TYPE_CHECKING:
    import httpx

__all__ = ["App", "AppGroup", "AppUsers", "WorkNotice"]


class App(BaseApp["httpx.Client", "httpx.BaseTransport"]):
    """An enterprise internal app of DingTalk, identified by its AppKey and AppSecret.

    Args:
        app_key: the app's AppKey (Client ID), from 凭证与基础信息 in the developer console.
        app_secret: its AppSecret (Client Secret); never shown in reprs, logs or errors.
        api_base: the ``api.dingtalk.com`` host (``$DINGPUSH_API_BASE``), e.g. the emulator.
        oapi_base: the ``oapi.dingtalk.com`` host (``$DINGPUSH_OAPI_BASE``).
        token_cache: keep tokens on disk between processes: a path, ``True`` for
            ``~/.cache/dingpush/tokens.json``, or any :class:`TokenCache`.
        timeout: seconds, or an ``httpx.Timeout`` (default 10 s, 5 s to connect).
        proxy: a proxy URL; ``HTTPS_PROXY`` and friends are honoured when ``trust_env``.
        transport: an httpx transport, e.g. ``httpx.ASGITransport(emulator_app)`` in tests.
        http_client: an ``httpx.Client`` to share; dingpush will not close it.
        clock: where token expiry and waiting read the time (``dingpush.testing.FakeClock``).
        rate: calls a second to each API of the app (``"20/1s"``, DingTalk's, protocol §7).
        notice_rate: work-notification recipients a minute (``"5000/60s"``, §4.1).
        cooldown: seconds an API rests after DingTalk answered ``send.too.fast`` (60).
        limiter: where the app's budgets live; every client in the process shares
            ``default_limiter()``, ``FileRateLimiter()`` shares them across processes.
        retry: the ``RetryPolicy`` of every call; ``3`` for three attempts, ``False`` for one.
            App APIs cannot de-duplicate, so a failure that may have been delivered is not
            retried unless ``RetryPolicy(retry_ambiguous=True)`` (see docs/apps.md).
        max_wait: seconds a send may wait for its slots before raising ``RateLimited``.
    """

    def _open_http(
        self,
        http_client: httpx.Client | None,
        transport: httpx.BaseTransport | None,
        options: dict[str, typing.Any],
    ) -> httpx.Client:
        self._token_lock = threading.Lock()
        self._media_lock = threading.Lock()
        if http_client is not None:
            return http_client
        import httpx

        return httpx.Client(transport=transport, **options)

    def access_token(self) -> str:
        """Return a valid access token, fetching one (once, however many threads ask) if needed."""
        token = self._core.current_token()
        if token is not None:
            return token
        with self._token_lock:
            token = self._core.current_token()
            if token is None:
                response = self._send(self._core.token_request())
                token = self._core.accept_token(
                    response.status_code, response.headers, response.content
                )
            return token

    def group(
        self,
        open_conversation_id: str,
        *,
        robot_code: str | None = None,
        cool_app_code: str | None = None,
    ) -> AppGroup:
        """A group the app's robot is in, by its openConversationId (``cid…==``)."""
        return AppGroup(
            self, GroupSpec(self._core, open_conversation_id, robot_code, cool_app_code)
        )

    def users(self, user_ids: str | Iterable[str], *, robot_code: str | None = None) -> AppUsers:
        """One-to-one chats with these users (userIds), as the app's robot."""
        return AppUsers(self, UsersSpec(self._core, user_ids, robot_code))

    def notify(
        self,
        agent_id: int | str,
        *,
        users: str | Iterable[str] = (),
        departments: str | int | Iterable[str | int] = (),
        everyone: bool = False,
    ) -> WorkNotice:
        """Work notifications (工作通知) from the app ``agent_id`` to users or departments."""
        return WorkNotice(self, NoticeSpec(self._core, agent_id, users, departments, everyone))

    def upload(
        self,
        source: MediaSource,
        kind: typing.Literal["image", "file", "voice", "video"] = "image",
        *,
        filename: str | None = None,
    ) -> str:
        """Upload a file (a path or bytes) to DingTalk and return its ``media_id`` (§5).

        Size and format are checked first (image ≤ 20 MB jpg/png/gif/bmp, voice ≤ 2 MB
        amr/mp3/wav, video ≤ 20 MB mp4, file ≤ 20 MB doc(x)/xls(x)/ppt(x)/pdf/zip/rar).
        """
        upload = self._checked_upload(source, kind, filename)
        return self._run(self._upload(upload, self._delivery.defaults(), str(uuid.uuid4())))

    def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        return self._run(self._send_result(agent_id, task_id))

    def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        return self._run(self._send_progress(agent_id, task_id))

    # -- on call (protocol §11, §14) ------------------------------------------------------

    def recall(
        self,
        messages: KeySource,
        *,
        group: str | None = None,
        robot_code: str | None = None,
    ) -> RecallResult:
        """Recall app-robot messages: a send's result, or ``processQueryKey``s (§11).

        Group messages need ``group=`` (the openConversationId) unless a group send's result
        is given; keys go 20 a call. One-to-one messages can be recalled only within 24 hours
        (``QueryKeyExpired`` after). Keys DingTalk did not recall are in ``result.failed``.
        """
        return self._run(self._recall(messages, group, robot_code))

    @typing.overload
    def read_status(
        self,
        message: GroupSendResult,
        *,
        group: str | None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> GroupReadStatus: ...
    @typing.overload
    def read_status(
        self,
        message: UsersSendResult,
        *,
        group: None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> UsersReadStatus: ...
    @typing.overload
    def read_status(
        self,
        message: str,
        *,
        group: str,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> GroupReadStatus: ...
    @typing.overload
    def read_status(
        self,
        message: str | typing.Iterable[str],
        *,
        group: None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> UsersReadStatus: ...
    def read_status(
        self,
        message: KeySource,
        *,
        group: str | None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> GroupReadStatus | UsersReadStatus:
        """Who read an app-robot message (§11.3, §11.4).

        A group message (its result, or its key with ``group=``) gives the whole read list,
        fetched ``page_size`` users a page; a one-to-one message each recipient's status.
        """
        return self._run(self._read_status(message, group, robot_code, page_size))

    def ding(
        self,
        user_ids: str | Iterable[str],
        content: str,
        *,
        remind_type: RemindType | int = "app",
        call_voice: str | None = None,
        fallback: bool = False,
        robot_code: str | None = None,
    ) -> DingResult:
        """Send a DING (§14.1): ``"app"`` (in-app, free), ``"sms"`` or ``"call"`` (a phone call).

        SMS and phone DINGs need the organisation's paid DING quota: without it DingTalk
        refuses them (``DingQuotaExhausted``), or, with ``fallback=True``, an in-app DING goes
        instead (``result.fell_back_from`` says so). The app needs the permission
        ``Premium.Ding.Write``. A DING is not retried after an ambiguous failure: it would ring
        twice.
        """
        return self._run(
            self._ding(user_ids, content, remind_type, call_voice, fallback, robot_code)
        )

    def recall_ding(
        self, ding: str | DingResult, *, robot_code: str | None = None
    ) -> tuple[str, ...]:
        """Recall a DING (§14.2), by the robot that sent it; the recalled ``openDingId``s."""
        return tuple(self._run(self._recall_ding(ding, robot_code)))

    def ding_read_status(
        self, ding: str | DingResult, *, robot_code: str | None = None
    ) -> DingReadStatus:
        """Who has read a DING (§14.3); DingTalk tells read, not confirmed (§14.4)."""
        return self._run(self._ding_read(ding, robot_code))

    def reply(
        self, incoming: IncomingMessage, message: Message | str
    ) -> GroupSendResult | UsersSendResult | None:
        """Answer a message a person sent the robot, in the same chat (§12.4).

        Through the message's ``sessionWebhook`` while it lives (90 minutes; no
        ``processQueryKey`` then: ``None``), and through the app's robot API after (the
        group, or the sender one-to-one), which returns the send's result.
        """
        from dingpush._errors import TokenNotFound
        from dingpush._wire import parse_oapi_reply

        request = self._session_request(incoming, message)
        if request is not None:
            response = self._send(request)
            try:
                parse_oapi_reply(
                    response.status_code, response.content, self._core.redact, what="sessionWebhook"
                )
                return None
            except TokenNotFound:  # 300001: the session ended early (§12.4)
                pass
        group, users = self._reply_target(incoming)
        if group is not None:
            return self._deliver(group, group_flow, message, None, self._delivery.defaults(), False)
        assert users is not None
        return self._deliver(users, users_flow, message, None, self._delivery.defaults(), False)

    # -- I/O ------------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        return run(flow, self._core.clock, self._post)

    def _post(self, step: Post[AppChannel, AppCall]) -> Body:
        return self._call(step.prepared.build, step.prepared.timeout)

    def _send(self, request: HttpRequest, timeout: typing.Any = None) -> httpx.Response:
        with self._transport_errors(request):
            return self._http.request(**request_args(request, timeout))

    def _call(self, build: Callable[[str], HttpRequest], timeout: typing.Any = None) -> Body:
        """Send with the current token; on an invalid-token answer, refresh once and retry."""
        for last in (False, True):
            with token_not_sent():
                token = self.access_token()
            request = build(token)
            body = self._answer(request, self._send(request, timeout), token, last=last)
            if body is not None:
                return body
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve(self, message: Message, options: SendOptions, msg_uuid: str) -> Message:
        """Upload a local image or file (once per content) and return its media_id form."""
        if not needs_upload(message):
            return message
        with self._media_lock:
            flow = self._upload(upload_source(message), options, msg_uuid, reuse=True)
            return message.with_media_id(self._run(flow))

    def _deliver(
        self,
        spec: S,
        flow: RecipientsFlow[S, T],
        message: Message | str,
        msg_uuid: str | None,
        options: SendOptions,
        split: bool | Splitter,
    ) -> T:
        """Check and cut the message, upload its media, then run the recipients' flow."""
        base, prepared = prepare_parts(spec, message, msg_uuid, split)
        parts = [Part(p, self._resolve(p.message, options, p.msg_uuid)) for p in prepared]
        return self._run(flow(self._delivery, spec, parts, base, options))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Recipients(typing.Generic[S, T]):
    """What an :class:`App`'s recipients (a group, users, a work notification) share: the
    app, the spec of who receives, and ``send``.

    Named apart from ``dingpush.WebhookTarget``, the configuration's targets and the relay's:
    "target" means those.
    """

    _flow: RecipientsFlow[S, T]

    def __init__(self, app: App, spec: S) -> None:
        self._app = app
        self._spec: S = spec

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> T:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it.

        Args:
            message: a message, or a ``str`` for a ``Text``.
            msg_uuid: dingpush's key for this send (results and logs; the relay dedupes on
                it). DingTalk's app APIs have none, so it is not sent.
            wait: wait for the app's rate budgets (``False``: raise ``RateLimited`` at once).
            max_wait: the longest wait for a slot, in seconds (the app's default if None).
            split: ``True`` or a ``Splitter`` sends a too-long ``Text``/``Markdown`` in
                numbered parts, in order; ``PartialDelivery`` says which went out.
            retry: this send's retry policy (the app's if None).
        """
        options = self._app._delivery.options(wait, max_wait, retry)
        return self._app._deliver(self._spec, self._flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe(type(self).__name__)


class AppGroup(_Recipients[GroupSpec, GroupSendResult]):
    """A group the app's robot posts into; ``send`` returns a :class:`GroupSendResult`."""

    _flow = staticmethod(group_flow)

    @property
    def open_conversation_id(self) -> str:
        return self._spec.open_conversation_id


class AppUsers(_Recipients[UsersSpec, UsersSendResult]):
    """Users the app's robot messages one-to-one, 20 a call; see :class:`UsersSendResult`.

    ``send`` sends to every user; flow-controlled users get the message again later, up to the
    retry policy's attempts. A failure after the first call carries ``.partial``.
    """

    _flow = staticmethod(users_flow)

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids


class WorkNotice(_Recipients[NoticeSpec, NoticeSendResult]):
    """Work notifications to users, departments or everyone; see :class:`NoticeSendResult`.

    ``send`` queues the notification within DingTalk's recipient limits (§4.1), which it
    enforces by dropping the excess silently; ``app.send_result(agent_id, result.task_id)``
    tells who got it.
    """

    _flow = staticmethod(notice_flow)

    @property
    def agent_id(self) -> int:
        return self._spec.agent_id
