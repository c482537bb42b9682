"""The enterprise-app client ``App`` and its targets: a thin sync shell over ``AppCore``.

An app (AppKey/AppSecret) sends as its robot into groups (``app.group(cid)``) and one-to-one
chats (``app.users([...])``), and as work notifications (``app.notify(agent_id, ...)``); it
uploads media and fetches its own access token, refreshed single-flight. ``AsyncApp``
(``_async_app.py``) is the same over ``httpx.AsyncClient``; keep the two in step.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import typing
from collections.abc import Callable, Iterable
from functools import partial

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
from ._app_messages import File, Image, _read
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
from ._wire import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, map_transport_errors

if typing.TYPE_CHECKING:
    import httpx

    TimeoutTypes: typing.TypeAlias = float | httpx.Timeout | None
    ProxyTypes: typing.TypeAlias = str | httpx.Proxy | None

__all__ = ["App", "AppGroup", "AppUsers", "WorkNotice"]

logger = logging.getLogger("dingpush")

#: Seconds an upload may take when no timeout= was given: files go up to 20 MB (§5).
UPLOAD_TIMEOUT = 120.0

MediaSource = typing.Union[str, "os.PathLike[str]", bytes]
Body = dict[str, typing.Any]


def _http_options(
    timeout: TimeoutTypes, proxy: ProxyTypes, trust_env: bool
) -> dict[str, typing.Any]:
    import httpx

    return {
        "timeout": (
            httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
            if timeout is None
            else timeout
        ),
        "proxy": proxy,
        "trust_env": trust_env,
    }


def _media_bytes(source: MediaSource, filename: str | None) -> tuple[bytes, str | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), filename
    data, name = _read(source)
    return data, filename or name


def _upload_timeout(timeout: TimeoutTypes) -> typing.Any:
    import httpx

    if timeout is not None:
        return timeout
    return httpx.Timeout(UPLOAD_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)


class App:
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
        clock: where token expiry reads the time (see ``dingpush.testing.FakeClock``).
    """

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
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._core = AppCore(
            app_key,
            app_secret,
            api_base=api_base,
            oapi_base=oapi_base,
            token_cache=token_cache,
            clock=clock,
        )
        self._token_lock = threading.Lock()
        self._media_lock = threading.Lock()
        self._upload_timeout = _upload_timeout(timeout)
        self._owns_http = http_client is None
        if http_client is None:
            import httpx

            http_client = httpx.Client(
                transport=transport, **_http_options(timeout, proxy, trust_env)
            )
        self._http = http_client

    @property
    def app_key(self) -> str:
        return self._core.app_key

    def access_token(self) -> str:
        """Return a valid access token, fetching one (once, however many threads ask) if needed."""
        token = self._core.current_token()
        if token is not None:
            return token
        with self._token_lock:
            token = self._core.current_token()
            if token is not None:
                return token
            request = self._core.token_request()
            response = self._send(request)
            return self._core.accept_token(response.status_code, response.headers, response.content)

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
        data, name = _media_bytes(source, filename)
        name = self._core.check_upload(data, kind, name)
        media_id = self._upload(data, kind, name)
        self._core.media[(kind, hashlib.sha256(data).hexdigest())] = media_id
        return media_id

    def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        body = self._call(lambda t: self._core.task_request("getsendresult", agent_id, task_id, t))
        return self._core.delivery(agent_id, task_id, body)

    def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        body = self._call(
            lambda t: self._core.task_request("getsendprogress", agent_id, task_id, t)
        )
        return self._core.progress(agent_id, task_id, body)

    # -- I/O ------------------------------------------------------------------------------

    def _send(self, request: HttpRequest, timeout: typing.Any = None) -> httpx.Response:
        extra = {"timeout": timeout} if timeout is not None else {}
        with map_transport_errors(self._core.redact, f"DingTalk ({request.what})"):
            return self._http.request(
                request.method,
                request.url,
                content=request.content,
                headers=dict(request.headers),
                **extra,
            )

    def _call(self, build: Callable[[str], HttpRequest], timeout: typing.Any = None) -> Body:
        """Send with the current token; on an invalid-token answer, refresh once and retry."""
        for attempt in range(2):
            token = self.access_token()
            request = build(token)
            response = self._send(request, timeout)
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

    def _upload(self, data: bytes, kind: str, filename: str) -> str:
        body = self._call(
            lambda t: self._core.upload_request(data, kind, filename, t), self._upload_timeout
        )
        return self._core.media_id(body)

    def _resolve(self, message: Message) -> Message:
        """Upload a local image or file (once per content) and return its media_id form."""
        if not needs_upload(message):
            return message
        media = typing.cast(Image | File, message)
        data, kind, filename, digest = upload_source(media)
        with self._media_lock:
            media_id = self._core.media.get((kind, digest))
            if media_id is None:
                media_id = self._upload(data, kind, filename)
                self._core.media[(kind, digest)] = media_id
        return media.with_media_id(media_id)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return self._core.describe("App")


class AppGroup:
    """A group the app's robot posts into; ``send`` returns a :class:`GroupSendResult`."""

    def __init__(self, app: App, spec: GroupSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def open_conversation_id(self) -> str:
        return self._spec.open_conversation_id

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> GroupSendResult:
        """Send one message; raise a ``DingPushError`` unless DingTalk accepted it."""
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = self._app._resolve(prepared.message)
        body = self._app._call(lambda token: self._spec.request(resolved, token))
        return self._spec.result(body, prepared)

    def __repr__(self) -> str:
        return self._spec.describe("AppGroup")


class AppUsers:
    """Users the app's robot messages one-to-one, 20 a call; see :class:`UsersSendResult`."""

    def __init__(self, app: App, spec: UsersSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> UsersSendResult:
        """Send to every user; a failure after the first call carries ``.partial``."""
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = self._app._resolve(prepared.message)
        bodies: list[Body] = []
        for chunk in self._spec.chunks:
            try:
                bodies.append(self._app._call(partial(self._spec.request, resolved, chunk)))
            except DingPushError as exc:
                if bodies:
                    exc.partial = self._spec.result(bodies, prepared)
                raise
        return self._spec.result(bodies, prepared)

    def __repr__(self) -> str:
        return self._spec.describe("AppUsers")


class WorkNotice:
    """Work notifications to users, departments or everyone; see :class:`NoticeSendResult`."""

    def __init__(self, app: App, spec: NoticeSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def agent_id(self) -> int:
        return self._spec.agent_id

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> NoticeSendResult:
        """Queue the notification; DingTalk drops over-limit recipients silently (§4.1).

        ``app.send_result(agent_id, result.task_id)`` tells who got it.
        """
        prepared = self._spec.prepare(message, msg_uuid)
        resolved = self._app._resolve(prepared.message)
        bodies: list[Body] = []
        for call in self._spec.calls:
            try:
                bodies.append(self._app._call(partial(self._spec.request, resolved, call)))
            except DingPushError as exc:
                if bodies:
                    exc.partial = self._spec.result(bodies, prepared)
                raise
        return self._spec.result(bodies, prepared)

    def __repr__(self) -> str:
        return self._spec.describe("WorkNotice")
