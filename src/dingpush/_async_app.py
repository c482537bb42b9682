"""``AsyncApp`` and its targets: the asyncio twin of ``_app.py``, over the same ``AppCore``.

Keep it in step with ``_app.py``: same methods, same order, ``await`` where I/O happens
(tests/test_app_parity.py compares the signatures).
"""

from __future__ import annotations

import hashlib
import logging
import typing
import uuid
from collections.abc import Callable, Iterable

from ._app import (
    MediaSource,
    S,
    TargetFlow,
    _http_options,
    _media_bytes,
    _upload_timeout,
)
from ._app_core import (
    AppCore,
    GroupSpec,
    HttpRequest,
    NoticeSpec,
    TokenCacheTypes,
    UsersSpec,
    needs_upload,
    upload_source,
)
from ._app_delivery import (
    DEFAULT_APP_COOLDOWN,
    DEFAULT_APP_RATE,
    DEFAULT_NOTICE_RATE,
    TASK_PATH,
    UPLOAD_PATH,
    AppCall,
    AppChannel,
    AppDelivery,
    Part,
    call_flow,
    group_flow,
    notice_flow,
    prepare_parts,
    users_flow,
)
from ._app_messages import File, Image
from ._app_results import (
    GroupSendResult,
    NoticeDelivery,
    NoticeProgress,
    NoticeSendResult,
    UsersSendResult,
)
from ._clock import Clock
from ._delivery import Flow, Post, SendOptions, arun
from ._errors import InvalidAccessToken, TransportError
from ._limiter import DEFAULT_MAX_WAIT, Rate, RateLimiter
from ._messages import Message
from ._retry import RetryTypes
from ._split import Splitter
from ._wire import map_transport_errors

if typing.TYPE_CHECKING:
    import anyio
    import httpx

    from ._app import ProxyTypes, TimeoutTypes

__all__ = ["AsyncApp", "AsyncAppGroup", "AsyncAppUsers", "AsyncWorkNotice"]

logger = logging.getLogger("dingpush")

Body = dict[str, typing.Any]
T = typing.TypeVar("T")


class AsyncApp:
    """The asyncio twin of :class:`App`: same arguments, ``await`` on every call."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        api_base: str | None = None,
        oapi_base: str | None = None,
        token_cache: TokenCacheTypes = None,
        timeout: TimeoutTypes = None,
        proxy: ProxyTypes = None,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        rate: Rate | str = DEFAULT_APP_RATE,
        notice_rate: Rate | str = DEFAULT_NOTICE_RATE,
        cooldown: float = DEFAULT_APP_COOLDOWN,
        limiter: RateLimiter | None = None,
        retry: RetryTypes = True,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        import anyio

        self._core = AppCore(
            app_key,
            app_secret,
            api_base=api_base,
            oapi_base=oapi_base,
            token_cache=token_cache,
            clock=clock,
        )
        self._delivery = AppDelivery(
            self._core,
            rate=rate,
            notice_rate=notice_rate,
            cooldown=cooldown,
            limiter=limiter,
            retry=retry,
            max_wait=max_wait,
        )
        # anyio's locks serve asyncio and trio alike, as httpx itself does.
        self._token_lock: anyio.Lock = anyio.Lock()
        self._media_lock: anyio.Lock = anyio.Lock()
        self._upload_timeout = _upload_timeout(timeout)
        self._owns_http = http_client is None
        if http_client is None:
            import httpx

            http_client = httpx.AsyncClient(
                transport=transport, **_http_options(timeout, proxy, trust_env)
            )
        self._http = http_client

    @property
    def app_key(self) -> str:
        return self._core.app_key

    async def access_token(self) -> str:
        """Return a valid access token, fetching one (once, however many tasks ask) if needed."""
        token = self._core.current_token()
        if token is not None:
            return token
        async with self._token_lock:
            token = self._core.current_token()
            if token is not None:
                return token
            request = self._core.token_request()
            response = await self._send(request)
            return self._core.accept_token(response.status_code, response.headers, response.content)

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
        data, name = _media_bytes(source, filename)
        name = self._core.check_upload(data, kind, name)
        options = self._delivery.defaults()
        media_id = await self._upload(data, kind, name, options, str(uuid.uuid4()))
        self._core.media[(kind, hashlib.sha256(data).hexdigest())] = media_id
        return media_id

    async def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        body = await self._run(self._query("getsendresult", agent_id, task_id))
        return self._core.delivery(agent_id, task_id, body)

    async def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        body = await self._run(self._query("getsendprogress", agent_id, task_id))
        return self._core.progress(agent_id, task_id, body)

    def _query(self, which: str, agent_id: int | str, task_id: int) -> Flow[Body]:
        channel = self._delivery.channel(TASK_PATH + which, which, idempotent=True)
        call = AppCall(
            lambda t: self._core.task_request(which, agent_id, task_id, t), f"task {task_id}"
        )
        return call_flow(channel, call, self._delivery.defaults())

    async def _run(self, flow: Flow[T]) -> T:
        return await arun(flow, self._core.clock, self._post)

    async def _post(self, step: Post[AppChannel, AppCall]) -> Body:
        return await self._call(step.prepared.build, step.prepared.timeout)

    async def _send(self, request: HttpRequest, timeout: typing.Any = None) -> httpx.Response:
        extra = {"timeout": timeout} if timeout is not None else {}
        with map_transport_errors(self._core.redact, f"DingTalk ({request.what})"):
            return await self._http.request(
                request.method,
                request.url,
                content=request.content,
                headers=dict(request.headers),
                **extra,
            )

    async def _call(self, build: Callable[[str], HttpRequest], timeout: typing.Any = None) -> Body:
        """Send with the current token; on an invalid-token answer, refresh once and retry."""
        for attempt in range(2):
            try:
                token = await self.access_token()
            except TransportError as exc:
                exc.maybe_delivered = False  # the call itself has not gone out
                raise
            request = build(token)
            response = await self._send(request, timeout)
            try:
                return self._core.parse(
                    request, response.status_code, response.headers, response.content
                )
            except InvalidAccessToken:
                if attempt:
                    raise
                logger.debug("access token refused by %s; refreshing once", request.what)
                self._core.drop_token(token)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _upload(
        self, data: bytes, kind: str, filename: str, options: SendOptions, msg_uuid: str
    ) -> str:
        channel = self._delivery.channel(UPLOAD_PATH, "media/upload", idempotent=True)
        call = AppCall(
            lambda t: self._core.upload_request(data, kind, filename, t),
            msg_uuid,
            timeout=self._upload_timeout,
        )
        return self._core.media_id(await self._run(call_flow(channel, call, options)))

    async def _resolve(self, message: Message, options: SendOptions, msg_uuid: str) -> Message:
        if not needs_upload(message):
            return message
        media = typing.cast(Image | File, message)
        data, kind, filename, digest = upload_source(media)
        async with self._media_lock:
            media_id = self._core.media.get((kind, digest))
            if media_id is None:
                media_id = await self._upload(data, kind, filename, options, msg_uuid)
                self._core.media[(kind, digest)] = media_id
        return media.with_media_id(media_id)

    async def _deliver(
        self,
        spec: S,
        flow: TargetFlow[S, T],
        message: Message | str,
        msg_uuid: str | None,
        options: SendOptions,
        split: bool | Splitter,
    ) -> T:
        """Check and cut the message, upload its media, then run the target's flow."""
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

    def __repr__(self) -> str:
        return self._core.describe("AsyncApp")


class AsyncAppGroup:
    """The asyncio twin of :class:`AppGroup`."""

    def __init__(self, app: AsyncApp, spec: GroupSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def open_conversation_id(self) -> str:
        return self._spec.open_conversation_id

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> GroupSendResult:
        """Send one message; :meth:`AppGroup.send`'s arguments, waiting without blocking."""
        options = self._app._delivery.options(wait, max_wait, retry)
        return await self._app._deliver(self._spec, group_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("AsyncAppGroup")


class AsyncAppUsers:
    """The asyncio twin of :class:`AppUsers`."""

    def __init__(self, app: AsyncApp, spec: UsersSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> UsersSendResult:
        """Send to every user; :meth:`AppUsers.send`'s arguments, waiting without blocking."""
        options = self._app._delivery.options(wait, max_wait, retry)
        return await self._app._deliver(self._spec, users_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("AsyncAppUsers")


class AsyncWorkNotice:
    """The asyncio twin of :class:`WorkNotice`."""

    def __init__(self, app: AsyncApp, spec: NoticeSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def agent_id(self) -> int:
        return self._spec.agent_id

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> NoticeSendResult:
        """Queue the notification; :meth:`WorkNotice.send`'s arguments, without blocking."""
        options = self._app._delivery.options(wait, max_wait, retry)
        return await self._app._deliver(self._spec, notice_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("AsyncWorkNotice")
