"""``AsyncApp`` and its targets: the asyncio twin of ``_app.py``, over the same ``AppCore``.

Keep it in step with ``_app.py``: same methods, same order, ``await`` where I/O happens
(tests/test_app_parity.py compares the signatures).
"""

from __future__ import annotations

import hashlib
import logging
import typing
from collections.abc import Callable, Iterable
from functools import partial

from ._app import MediaSource, _http_options, _media_bytes, _upload_timeout
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
from ._app_messages import File, Image
from ._app_results import (
    GroupSendResult,
    NoticeDelivery,
    NoticeProgress,
    NoticeSendResult,
    UsersSendResult,
)
from ._clock import Clock
from ._errors import DingPushError, InvalidAccessToken
from ._messages import Message
from ._wire import map_transport_errors

if typing.TYPE_CHECKING:
    import anyio
    import httpx

    from ._app import ProxyTypes, TimeoutTypes

__all__ = ["AsyncApp", "AsyncAppGroup", "AsyncAppUsers", "AsyncWorkNotice"]

logger = logging.getLogger("dingpush")

Body = dict[str, typing.Any]


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
        media_id = await self._upload(data, kind, name)
        self._core.media[(kind, hashlib.sha256(data).hexdigest())] = media_id
        return media_id

    async def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        body = await self._call(
            lambda t: self._core.task_request("getsendresult", agent_id, task_id, t)
        )
        return self._core.delivery(agent_id, task_id, body)

    async def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        body = await self._call(
            lambda t: self._core.task_request("getsendprogress", agent_id, task_id, t)
        )
        return self._core.progress(agent_id, task_id, body)

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
            token = await self.access_token()
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

    async def _upload(self, data: bytes, kind: str, filename: str) -> str:
        body = await self._call(
            lambda t: self._core.upload_request(data, kind, filename, t), self._upload_timeout
        )
        return self._core.media_id(body)

    async def _resolve(self, message: Message) -> Message:
        if not needs_upload(message):
            return message
        media = typing.cast(Image | File, message)
        data, kind, filename, digest = upload_source(media)
        async with self._media_lock:
            media_id = self._core.media.get((kind, digest))
            if media_id is None:
                media_id = await self._upload(data, kind, filename)
                self._core.media[(kind, digest)] = media_id
        return media.with_media_id(media_id)

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

    async def send(self, message: Message | str, *, msg_uuid: str | None = None) -> GroupSendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it."""
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = await self._app._resolve(prepared.message)
        body = await self._app._call(lambda token: self._spec.request(resolved, token))
        return self._spec.result(body, prepared)

    def __repr__(self) -> str:
        return self._spec.describe("AsyncAppGroup")


class AsyncAppUsers:
    """The asyncio twin of :class:`AppUsers`."""

    def __init__(self, app: AsyncApp, spec: UsersSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids

    async def send(self, message: Message | str, *, msg_uuid: str | None = None) -> UsersSendResult:
        """Send to every user; a failure after the first call carries ``.partial``."""
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = await self._app._resolve(prepared.message)
        bodies: list[Body] = []
        for chunk in self._spec.chunks:
            try:
                bodies.append(await self._app._call(partial(self._spec.request, resolved, chunk)))
            except DingPushError as exc:
                if bodies:
                    exc.partial = self._spec.result(bodies, prepared)
                raise
        return self._spec.result(bodies, prepared)

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
        self, message: Message | str, *, msg_uuid: str | None = None
    ) -> NoticeSendResult:
        """Queue the notification; DingTalk drops over-limit recipients silently (§4.1)."""
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = await self._app._resolve(prepared.message)
        bodies: list[Body] = []
        for call in self._spec.calls:
            try:
                bodies.append(await self._app._call(partial(self._spec.request, resolved, call)))
            except DingPushError as exc:
                if bodies:
                    exc.partial = self._spec.result(bodies, prepared)
                raise
        return self._spec.result(bodies, prepared)

    def __repr__(self) -> str:
        return self._spec.describe("AsyncWorkNotice")
