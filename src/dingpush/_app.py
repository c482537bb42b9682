"""The enterprise-app client ``App`` and its targets: a thin sync shell over ``AppCore``.

An app (AppKey/AppSecret) sends as its robot into groups (``app.group(cid)``) and one-to-one
chats (``app.users([...])``), and as work notifications (``app.notify(agent_id, ...)``); it
uploads media and fetches its own access token, refreshed single-flight. Every call goes
through the delivery engine (``_delivery.py``, ``_app_delivery.py``): rate budgets, retries,
parts. The shell only posts: a token, the request, the answer checked (``_call``).
``AsyncApp`` (``_async_app.py``) is the same over ``httpx.AsyncClient``; keep the two in step.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import typing
import uuid
from collections.abc import Callable, Iterable, Sequence

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
from ._app_messages import File, Image, _read
from ._app_results import (
    GroupSendResult,
    NoticeDelivery,
    NoticeProgress,
    NoticeSendResult,
    UsersSendResult,
)
from ._clock import Clock
from ._delivery import Flow, Post, SendOptions, run
from ._errors import InvalidAccessToken, TransportError
from ._limiter import DEFAULT_MAX_WAIT, Rate, RateLimiter
from ._messages import Message
from ._retry import RetryTypes
from ._split import Splitter
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
T = typing.TypeVar("T")
S = typing.TypeVar("S", GroupSpec, UsersSpec, NoticeSpec)
#: ``group_flow``, ``users_flow``, ``notice_flow``: a target's delivery as the engine runs it.
TargetFlow = Callable[[AppDelivery, S, Sequence[Part], str, SendOptions], Flow[T]]


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
        rate: Rate | str = DEFAULT_APP_RATE,
        notice_rate: Rate | str = DEFAULT_NOTICE_RATE,
        cooldown: float = DEFAULT_APP_COOLDOWN,
        limiter: RateLimiter | None = None,
        retry: RetryTypes = True,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
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
        media_id = self._upload(data, kind, name, self._delivery.defaults(), str(uuid.uuid4()))
        self._core.media[(kind, hashlib.sha256(data).hexdigest())] = media_id
        return media_id

    def send_result(self, agent_id: int | str, task_id: int) -> NoticeDelivery:
        """Who a work notification reached: read, unread, forbidden (flow control), failed."""
        body = self._run(self._query("getsendresult", agent_id, task_id))
        return self._core.delivery(agent_id, task_id, body)

    def send_progress(self, agent_id: int | str, task_id: int) -> NoticeProgress:
        """How far DingTalk is with a work-notification task."""
        body = self._run(self._query("getsendprogress", agent_id, task_id))
        return self._core.progress(agent_id, task_id, body)

    def _query(self, which: str, agent_id: int | str, task_id: int) -> Flow[Body]:
        # Queries only read: repeating one is harmless, so any transient failure is retried.
        channel = self._delivery.channel(TASK_PATH + which, which, idempotent=True)
        call = AppCall(
            lambda t: self._core.task_request(which, agent_id, task_id, t), f"task {task_id}"
        )
        return call_flow(channel, call, self._delivery.defaults())

    # -- I/O ------------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        return run(flow, self._core.clock, self._post)

    def _post(self, step: Post[AppChannel, AppCall]) -> Body:
        return self._call(step.prepared.build, step.prepared.timeout)

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
        """Send with the current token; on an invalid-token answer, refresh once and retry.

        The refresh is not one of the retry policy's attempts: the call is made again at
        once, in the same slot.
        """
        for attempt in range(2):
            try:
                token = self.access_token()
            except TransportError as exc:
                exc.maybe_delivered = False  # the call itself has not gone out
                raise
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

    def _upload(
        self, data: bytes, kind: str, filename: str, options: SendOptions, msg_uuid: str
    ) -> str:
        # A repeated upload only stores a second copy: any transient failure is retried.
        channel = self._delivery.channel(UPLOAD_PATH, "media/upload", idempotent=True)
        call = AppCall(
            lambda t: self._core.upload_request(data, kind, filename, t),
            msg_uuid,
            timeout=self._upload_timeout,
        )
        return self._core.media_id(self._run(call_flow(channel, call, options)))

    def _resolve(self, message: Message, options: SendOptions, msg_uuid: str) -> Message:
        """Upload a local image or file (once per content) and return its media_id form."""
        if not needs_upload(message):
            return message
        media = typing.cast(Image | File, message)
        data, kind, filename, digest = upload_source(media)
        with self._media_lock:
            media_id = self._core.media.get((kind, digest))
            if media_id is None:
                media_id = self._upload(data, kind, filename, options, msg_uuid)
                self._core.media[(kind, digest)] = media_id
        return media.with_media_id(media_id)

    def _deliver(
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
        parts = [Part(p, self._resolve(p.message, options, p.msg_uuid)) for p in prepared]
        return self._run(flow(self._delivery, spec, parts, base, options))

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

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> GroupSendResult:
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
        return self._app._deliver(self._spec, group_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("AppGroup")


class AppUsers:
    """Users the app's robot messages one-to-one, 20 a call; see :class:`UsersSendResult`."""

    def __init__(self, app: App, spec: UsersSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._spec.user_ids

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> UsersSendResult:
        """Send to every user; flow-controlled users get it again later, up to the policy's
        attempts. A failure after the first call carries ``.partial``.

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
        return self._app._deliver(self._spec, users_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("AppUsers")


class WorkNotice:
    """Work notifications to users, departments or everyone; see :class:`NoticeSendResult`."""

    def __init__(self, app: App, spec: NoticeSpec) -> None:
        self._app, self._spec = app, spec

    @property
    def agent_id(self) -> int:
        return self._spec.agent_id

    def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> NoticeSendResult:
        """Queue the notification within DingTalk's recipient limits (§4.1), which it enforces
        by dropping the excess silently; ``app.send_result(agent_id, result.task_id)`` tells
        who got it.

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
        return self._app._deliver(self._spec, notice_flow, message, msg_uuid, options, split)

    def __repr__(self) -> str:
        return self._spec.describe("WorkNotice")
