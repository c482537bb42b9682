"""``AsyncApp`` and its recipients: the asyncio twin of ``_app.py``, over the same ``BaseApp``.

Keep it in step with ``_app.py``: same methods, same order, ``await`` where I/O happens
(tests/test_app_parity.py compares the signatures).
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable, Iterable

from dingpush._engine._delivery import Flow, Post, SendOptions, arun
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
    import anyio
    import httpx

__all__ = ["AsyncApp", "AsyncAppGroup", "AsyncAppUsers", "AsyncWorkNotice"]


class AsyncApp(BaseApp["httpx.AsyncClient", "httpx.AsyncBaseTransport"]):
    """The asyncio twin of :class:`App`: same arguments, ``await`` on every call."""

    def _open_http(
        self,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        options: dict[str, typing.Any],
    ) -> httpx.AsyncClient:
        import anyio

        # anyio's locks serve asyncio and trio alike, as httpx itself does.
        self._token_lock: anyio.Lock = anyio.Lock()
        self._media_lock: anyio.Lock = anyio.Lock()
        if http_client is not None:
            return http_client
        import httpx

        from dingpush._transports import default_async_transport

        if transport is None:
            transport = default_async_transport(options)
        return httpx.AsyncClient(transport=transport, **options)

    async def access_token(self) -> str:
        """Return a valid access token, fetching one (once, however many tasks ask) if needed."""
        token = self._core.current_token()
        if token is not None:
            return token
        async with self._token_lock:
            token = self._core.current_token()
            if token is None:
                response = await self._send(self._core.token_request())
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
    ) -> AsyncAppGroup:
        """A group the app's robot is in, by its openConversationId (``cid…==``)."""
        return AsyncAppGroup(
            self, GroupSpec(self._core, open_conversation_id, robot_code, cool_app_code)
        )

    def users(
        self, user_ids: str | Iterable[str], *, robot_code: str | None = None
    ) -> AsyncAppUsers:
        """One-to-one chats with these users (userIds), as the app's robot."""
        return AsyncAppUsers(self, UsersSpec(self._core, user_ids, robot_code))

    def notify(
        self,
        agent_id: int | str,
        *,
        users: str | Iterable[str] = (),
        departments: str | int | Iterable[str | int] = (),
        everyone: bool = False,
    ) -> AsyncWorkNotice:
        """Work notifications (工作通知) from the app ``agent_id`` to users or departments."""
        return AsyncWorkNotice(self, NoticeSpec(self._core, agent_id, users, departments, everyone))

    async def upload(
        self,
        source: MediaSource,
        kind: typing.Literal["image", "file", "voice", "video"] = "image",
        *,
        filename: str | None = None,
    ) -> str:
        """Upload a file (a path or bytes) to DingTalk and return its ``media_id`` (§5)."""
        upload = self._checked_upload(source, kind, filename)
        return await self._run(self._upload(upload, self._delivery.defaults(), str(uuid.uuid4())))

    async def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        return await self._run(self._send_result(agent_id, task_id))

    async def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        return await self._run(self._send_progress(agent_id, task_id))

    # -- on call (protocol §11, §14) ------------------------------------------------------

    async def recall(
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
        return await self._run(self._recall(messages, group, robot_code))

    @typing.overload
    async def read_status(
        self,
        message: GroupSendResult,
        *,
        group: str | None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> GroupReadStatus: ...
    @typing.overload
    async def read_status(
        self,
        message: UsersSendResult,
        *,
        group: None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> UsersReadStatus: ...
    @typing.overload
    async def read_status(
        self,
        message: str,
        *,
        group: str,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> GroupReadStatus: ...
    @typing.overload
    async def read_status(
        self,
        message: str | typing.Iterable[str],
        *,
        group: None = None,
        robot_code: str | None = None,
        page_size: int = 200,
    ) -> UsersReadStatus: ...
    async def read_status(
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
        return await self._run(self._read_status(message, group, robot_code, page_size))

    async def ding(
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
        return await self._run(
            self._ding(user_ids, content, remind_type, call_voice, fallback, robot_code)
        )

    async def recall_ding(
        self, ding: str | DingResult, *, robot_code: str | None = None
    ) -> tuple[str, ...]:
        """Recall a DING (§14.2), by the robot that sent it; the recalled ``openDingId``s."""
        return tuple(await self._run(self._recall_ding(ding, robot_code)))

    async def ding_read_status(
        self, ding: str | DingResult, *, robot_code: str | None = None
    ) -> DingReadStatus:
        """Who has read a DING (§14.3); DingTalk tells read, not confirmed (§14.4)."""
        return await self._run(self._ding_read(ding, robot_code))

    async def reply(
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
            response = await self._send(request)
            try:
                parse_oapi_reply(
                    response.status_code, response.content, self._core.redact, what="sessionWebhook"
                )
                return None
            except TokenNotFound:  # 300001: the session ended early (§12.4)
                pass
        group, users = self._reply_target(incoming)
        if group is not None:
            return await self._deliver(
                group, group_flow, message, None, self._delivery.defaults(), False
            )
        assert users is not None
        return await self._deliver(
            users, users_flow, message, None, self._delivery.defaults(), False
        )

    # -- I/O ------------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        return await arun(flow, self._core.clock, self._post)

    async def _post(self, step: Post[AppChannel, AppCall]) -> Body:
        return await self._call(step.prepared.build, step.prepared.timeout)

    async def _send(self, request: HttpRequest, timeout: typing.Any = None) -> httpx.Response:
        with self._transport_errors(request):
            return await self._http.request(**request_args(request, timeout))

    async def _call(self, build: Callable[[str], HttpRequest], timeout: typing.Any = None) -> Body:
        """Send with the current token; on an invalid-token answer, refresh once and retry."""
        for last in (False, True):
            with token_not_sent():
                token = await self.access_token()
            request = build(token)
            body = self._answer(request, await self._send(request, timeout), token, last=last)
            if body is not None:
                return body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _resolve(self, message: Message, options: SendOptions, msg_uuid: str) -> Message:
        """Upload a local image or file (once per content) and return its media_id form."""
        if not needs_upload(message):
            return message
        async with self._media_lock:
            flow = self._upload(upload_source(message), options, msg_uuid, reuse=True)
            return message.with_media_id(await self._run(flow))

    async def _deliver(
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
        parts = [Part(p, await self._resolve(p.message, options, p.msg_uuid)) for p in prepared]
        return await self._run(flow(self._delivery, spec, parts, base, options))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncApp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _AsyncRecipients(typing.Generic[S, T]):
    """What an :class:`AsyncApp`'s recipients share: :class:`_Recipients`' async twin."""

    _flow: RecipientsFlow[S, T]

    def __init__(self, app: AsyncApp, spec: S) -> None:
        self._app = app
        self._spec: S = spec

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> T:
        """Send one message; the sync recipients' ``send`` arguments, waiting without blocking."""
        options = self._app._delivery.options(wait, max_wait, retry)
        return await self._app._deliver(self._spec, self._flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe(type(self).__name__)


class AsyncAppGroup(_AsyncRecipients[GroupSpec, GroupSendResult]):
    """The asyncio twin of :class:`AppGroup`."""

    _flow = staticmethod(group_flow)

    @property
    def open_conversation_id(self) -> str:
        return self._spec.open_conversation_id


class AsyncAppUsers(_AsyncRecipients[UsersSpec, UsersSendResult]):
    """The asyncio twin of :class:`AppUsers`."""

    _flow = staticmethod(users_flow)

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids


class AsyncWorkNotice(_AsyncRecipients[NoticeSpec, NoticeSendResult]):
    """The asyncio twin of :class:`WorkNotice`."""

    _flow = staticmethod(notice_flow)

    @property
    def agent_id(self) -> int:
        return self._spec.agent_id
