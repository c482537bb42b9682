"""What ``App`` and ``AsyncApp`` share: their arguments and every step of a call but the I/O.

httpx's ``BaseClient`` pattern: :class:`BaseApp` holds the sans-I/O core (``AppCore``) and the
delivery settings (``AppDelivery``), and builds each flow, request and checked answer. The
shells, ``App`` (``_app.py``) and ``AsyncApp`` (``_async_app.py``), only send, run the flows
and hold the locks, so they differ in little but ``await``; tests/test_app_parity.py keeps
their surfaces in step.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import typing
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from dingpush._engine._clock import Clock
from dingpush._engine._delivery import Flow, SendOptions
from dingpush._engine._limiter import DEFAULT_MAX_WAIT, Rate, RateLimiter
from dingpush._engine._retry import RetryTypes
from dingpush._errors import (
    ConfigError,
    DingPushError,
    DingQuotaExhausted,
    InvalidAccessToken,
    TransportError,
)
from dingpush._messages._app_models import _read
from dingpush._messages._channels import check_webhook_message
from dingpush._messages._models import Message
from dingpush._receive._incoming import IncomingMessage
from dingpush._results import (
    DingReadStatus,
    DingResult,
    GroupReadStatus,
    NoticeDelivery,
    NoticeProgress,
    RecallResult,
    RemindType,
    UserReadStatus,
    UsersReadStatus,
)
from dingpush._wire import (
    DEFAULT_CONNECT_TIMEOUT,
    JSON_HEADERS,
    HttpT,
    TransportT,
    http_options,
    map_transport_errors,
    payload_bytes,
)

from . import _oncall as oncall
from ._core import (
    AppCore,
    GroupSpec,
    HttpRequest,
    NoticeSpec,
    TokenCacheTypes,
    UsersSpec,
    _coerce,
)
from ._delivery import (
    DEFAULT_APP_COOLDOWN,
    DEFAULT_APP_RATE,
    DEFAULT_NOTICE_RATE,
    TASK_PATH,
    UPLOAD_PATH,
    AppCall,
    AppDelivery,
    Part,
    call_flow,
)

if typing.TYPE_CHECKING:
    import httpx

    from dingpush._wire import ProxyTypes, TimeoutTypes

__all__ = ["BaseApp"]

logger = logging.getLogger("dingpush")

#: Seconds an upload may take when no timeout= was given: files go up to 20 MB (§5).
UPLOAD_TIMEOUT = 120.0

MediaSource = typing.Union[str, "os.PathLike[str]", bytes]
#: What an upload sends: ``(data, kind, filename, sha256)``, as ``upload_source()`` gives it.
Upload = tuple[bytes, str, str, str]
Body = dict[str, typing.Any]
T = typing.TypeVar("T")
S = typing.TypeVar("S", GroupSpec, UsersSpec, NoticeSpec)
#: ``group_flow``, ``users_flow``, ``notice_flow``: the delivery to an app's recipients.
RecipientsFlow = Callable[[AppDelivery, S, Sequence[Part], str, SendOptions], Flow[T]]


def _upload_timeout(timeout: TimeoutTypes) -> typing.Any:
    import httpx

    if timeout is not None:
        return timeout
    return httpx.Timeout(UPLOAD_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)


def request_args(request: HttpRequest, timeout: typing.Any = None) -> dict[str, typing.Any]:
    """``HttpRequest`` as the keyword arguments of ``httpx.Client.request`` (and the async one)."""
    args: dict[str, typing.Any] = {
        "method": request.method,
        "url": request.url,
        "content": request.content,
        "headers": dict(request.headers),
    }
    if timeout is not None:
        args["timeout"] = timeout
    return args


@contextlib.contextmanager
def token_not_sent() -> Iterator[None]:
    """Fetching the token failed in transit: the call it was for has not gone out."""
    try:
        yield
    except TransportError as exc:
        exc.maybe_delivered = False
        raise


class BaseApp(typing.Generic[HttpT, TransportT]):
    """The part of ``App`` and ``AsyncApp`` that does no I/O, under one ``__init__``.

    The shells add how their HTTP client is made (:meth:`_open_http`, with their locks), how a
    request is sent and how a flow is run; everything they send or read is built here.
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
        transport: TransportT | None = None,
        http_client: HttpT | None = None,
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
        self._upload_timeout = _upload_timeout(timeout)
        self._owns_http = http_client is None
        self._http: HttpT = self._open_http(
            http_client, transport, http_options(timeout, proxy, trust_env)
        )

    def _open_http(
        self,
        http_client: HttpT | None,
        transport: TransportT | None,
        options: dict[str, typing.Any],
    ) -> HttpT:
        """The HTTP client to send with (``http_client``, or a new one) and the shell's locks."""
        raise NotImplementedError

    @property
    def app_key(self) -> str:
        return self._core.app_key

    def __repr__(self) -> str:
        return self._core.describe(type(self).__name__)

    # -- flows: what the engine runs for the shell -------------------------------------------

    def _query(self, which: str, agent_id: int | str, task_id: int) -> Flow[Body]:
        # Queries only read: repeating one is harmless, so any transient failure is retried.
        channel = self._delivery.channel(TASK_PATH + which, which, idempotent=True)
        call = AppCall(
            lambda t: self._core.task_request(which, agent_id, task_id, t), f"task {task_id}"
        )
        return call_flow(channel, call, self._delivery.defaults())

    def _send_result(self, agent_id: int | str, task_id: int) -> Flow[NoticeDelivery]:
        body = yield from self._query("getsendresult", agent_id, task_id)
        return self._core.delivery(agent_id, task_id, body)

    def _send_progress(self, agent_id: int | str, task_id: int) -> Flow[NoticeProgress]:
        body = yield from self._query("getsendprogress", agent_id, task_id)
        return self._core.progress(agent_id, task_id, body)

    # -- on call: recall, read status, DING (protocol §11, §14) -------------------------------

    def _v1_call(
        self,
        path: str,
        what: str,
        build: Callable[[str], HttpRequest],
        label: str,
        *,
        idem: bool,
        permission: Callable[[DingPushError], DingPushError],
    ) -> Flow[Body]:
        """One on-call API call; a failure comes out as ``permission`` makes it, a refusal
        naming the permission the app lacks (``oncall.recall_permission``/``ding_permission``)."""
        channel = self._delivery.channel(path, what, idempotent=idem)
        try:
            return (yield from call_flow(channel, AppCall(build, label), self._delivery.defaults()))
        except DingPushError as exc:
            raise permission(exc) from None

    def _recall(
        self, source: oncall.KeySource, group: str | None, robot_code: str | None
    ) -> Flow[RecallResult]:
        """Recall messages 20 keys a call (§11.1, §11.2); a failure carries ``.partial``."""
        keys, cid = oncall.keys_of(source), oncall.group_of(source, group)
        code = robot_code or self._core.app_key
        path = oncall.GROUP_RECALL_PATH if cid else oncall.OTO_RECALL_PATH
        recalled: list[str] = []
        failed: dict[str, str] = {}
        calls = 0
        for chunk in oncall.recall_chunks(keys):
            # Recalling twice only reports the key as failed: a retry is harmless.
            try:
                body = yield from self._v1_call(
                    path,
                    path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1],
                    partial(oncall.recall_request, self._core, code, cid, chunk),
                    f"recall of {len(chunk)} keys",
                    idem=True,
                    permission=oncall.recall_permission,
                )
            except DingPushError as error:
                if calls:
                    error.partial = RecallResult(tuple(recalled), dict(failed), cid, calls)
                raise
            calls += 1
            done, refused = oncall.recall_answer(body)
            recalled += done
            failed |= refused
        return RecallResult(tuple(recalled), failed, cid, calls)

    def _group_read(
        self, key: str, group: str, robot_code: str | None, size: int
    ) -> Flow[GroupReadStatus]:
        """Every page of a group message's read list (§11.3)."""
        code = robot_code or self._core.app_key
        size = oncall.page_size(size)
        users: list[str] = []
        cursor: str | None = ""
        status, pages = "SUCCESS", 0
        while cursor is not None:
            body = yield from self._v1_call(
                oncall.GROUP_QUERY_PATH,
                "groupMessages/query",
                partial(oncall.group_read_request, self._core, code, group, key, cursor, size),
                "read status",
                idem=True,
                permission=oncall.recall_permission,
            )
            status, page, cursor = oncall.group_read_page(body)
            users += page
            pages += 1
        return oncall.group_read_status(key, group, status, users, pages)

    def _users_read(self, keys: tuple[str, ...], robot_code: str | None) -> Flow[UsersReadStatus]:
        """One ``oToMessages/readStatus`` per key (§11.4), merged."""
        code = robot_code or self._core.app_key
        statuses: list[str] = []
        users: dict[str, UserReadStatus] = {}
        for key in keys:
            body = yield from self._v1_call(
                oncall.OTO_READ_PATH,
                "oToMessages/readStatus",
                partial(oncall.oto_read_request, self._core, code, key),
                "read status",
                idem=True,
                permission=oncall.recall_permission,
            )
            status, page = oncall.oto_read_answer(body)
            statuses.append(status)
            for user in page:
                users.setdefault(user.user_id, user)
        return UsersReadStatus(keys, oncall.merge_status(statuses), tuple(users.values()))

    def _read_status(
        self, source: oncall.KeySource, group: str | None, robot_code: str | None, size: int
    ) -> Flow[GroupReadStatus | UsersReadStatus]:
        keys, cid = oncall.keys_of(source), oncall.group_of(source, group)
        if cid is None:
            return (yield from self._users_read(keys, robot_code))
        if len(keys) > 1:
            raise ConfigError(
                f"{len(keys)} keys given: a group's read list is asked one message at a time"
            )
        return (yield from self._group_read(keys[0], cid, robot_code, size))

    def _ding_once(
        self,
        users: tuple[str, ...],
        content: str,
        kind: RemindType,
        voice: str | None,
        code: str,
    ) -> Flow[tuple[list[str], dict[str, list[str]]]]:
        ids: list[str] = []
        failed: dict[str, list[str]] = {}
        for chunk in oncall.ding_chunks(users, kind):
            # Not idempotent: a DING sent twice rings twice.
            try:
                body = yield from self._v1_call(
                    oncall.DING_PATH,
                    "robot/ding/send",
                    partial(oncall.ding_request, self._core, code, chunk, content, kind, voice),
                    f"DING to {len(chunk)} users",
                    idem=False,
                    permission=oncall.ding_permission,
                )
            except DingPushError as error:
                if ids:
                    error.partial = DingResult(tuple(ids), kind, users, {})
                raise
            ding_id, refused = oncall.ding_answer(body)
            ids.append(ding_id)
            for reason, who in refused.items():
                failed.setdefault(reason, []).extend(who)
        return ids, failed

    def _ding(
        self,
        user_ids: str | typing.Iterable[str],
        content: str,
        remind_type: RemindType | int,
        call_voice: str | None,
        fallback: bool,
        robot_code: str | None,
    ) -> Flow[DingResult]:
        """A DING (§14.1); with ``fallback``, an in-app one when SMS/phone has no quota."""
        users = oncall.user_ids(user_ids)
        if not users:
            raise ConfigError("a DING needs receivers: give the userIds to ring")
        text = oncall.ding_content(content)
        asked = oncall.remind_type(remind_type)
        voice = oncall.call_voice(call_voice, asked)
        code = robot_code or self._core.app_key
        try:
            ids, failed = yield from self._ding_once(users, text, asked, voice, code)
            kind = asked
        except DingQuotaExhausted:
            if not fallback or asked == "app":
                raise
            logger.warning("no %s DING quota: falling back to an in-app DING", asked)
            kind = "app"
            ids, failed = yield from self._ding_once(users, text, kind, None, code)
        return oncall.ding_result(ids, kind, users, failed, asked)

    def _recall_ding(self, source: str | DingResult, robot_code: str | None) -> Flow[list[str]]:
        """§14.2: recall each call's DING; the recalled ids."""
        code = robot_code or self._core.app_key
        done: list[str] = []
        for ding_id in oncall.ding_ids(source):
            body = yield from self._v1_call(
                oncall.DING_RECALL_PATH,
                "robot/ding/recall",
                partial(oncall.ding_recall_request, self._core, code, ding_id),
                "DING recall",
                idem=True,
                permission=oncall.ding_permission,
            )
            done.append(str(body.get("openDingId") or ding_id))
        return done

    def _ding_read(self, source: str | DingResult, robot_code: str | None) -> Flow[DingReadStatus]:
        """§14.3: who has read the DING (read, not confirmed: §14.4)."""
        code = robot_code or self._core.app_key
        ids = oncall.ding_ids(source)
        statuses: dict[str, str] = {}
        for ding_id in ids:
            body = yield from self._v1_call(
                oncall.DING_READ_PATH,
                "robot/ding/readStatuses/query",
                partial(oncall.ding_read_request, self._core, code, ding_id),
                "DING read status",
                idem=True,
                permission=oncall.ding_permission,
            )
            statuses |= oncall.ding_read_answer(body)
        return DingReadStatus(ids, statuses)

    # -- replies to incoming messages (§12.4) ----------------------------------------------------

    def _session_request(
        self, incoming: IncomingMessage, message: Message | str
    ) -> HttpRequest | None:
        """A reply through the message's sessionWebhook while it lives (§12.4); else None."""
        if not incoming.session_alive(self._core.clock.time()):
            return None
        message = _coerce(message)
        check_webhook_message(message)
        body = payload_bytes(message.to_payload())
        return HttpRequest(
            "POST", incoming.session_webhook, JSON_HEADERS, body, "oapi", "sessionWebhook"
        )

    def _reply_target(self, incoming: IncomingMessage) -> tuple[GroupSpec | None, UsersSpec | None]:
        """Where a reply goes through the app API when the session is gone."""
        robot_code = incoming.robot_code or None
        if incoming.is_group:
            return GroupSpec(self._core, incoming.conversation_id, robot_code, None), None
        if not incoming.sender_user_id:
            raise ConfigError(
                "the session webhook expired and the sender has no userId (an external user, "
                "or the robot is not published): DingTalk cannot be asked to answer them"
            )
        return None, UsersSpec(self._core, [incoming.sender_user_id], robot_code)

    def _checked_upload(self, source: MediaSource, kind: str, filename: str | None) -> Upload:
        """``upload()``'s arguments, read and checked (size, format)."""
        if isinstance(source, bytes | bytearray | memoryview):
            data, name = bytes(source), filename
        else:
            data, read_name = _read(source)
            name = filename or read_name
        name = self._core.check_upload(data, kind, name)
        return data, kind, name, hashlib.sha256(data).hexdigest()

    def _upload(
        self, upload: Upload, options: SendOptions, msg_uuid: str, *, reuse: bool = False
    ) -> Flow[str]:
        """``media/upload`` of one file; its ``media_id``, remembered for that content.

        With ``reuse``, a content this client uploaded before is not uploaded again.
        """
        data, kind, filename, digest = upload
        known = self._core.media.get((kind, digest)) if reuse else None
        if known is not None:
            return known
        # A repeated upload only stores a second copy: any transient failure is retried.
        channel = self._delivery.channel(UPLOAD_PATH, "media/upload", idempotent=True)
        call = AppCall(
            lambda t: self._core.upload_request(data, kind, filename, t),
            msg_uuid,
            timeout=self._upload_timeout,
        )
        media_id = self._core.media_id((yield from call_flow(channel, call, options)))
        self._core.media[(kind, digest)] = media_id
        return media_id

    # -- requests and answers ---------------------------------------------------------------

    def _transport_errors(self, request: HttpRequest) -> contextlib.AbstractContextManager[None]:
        """Where httpx's exceptions become dingpush's, naming the endpoint, secrets masked."""
        return map_transport_errors(self._core.redact, f"DingTalk ({request.what})")

    def _answer(
        self, request: HttpRequest, response: httpx.Response, token: str, *, last: bool
    ) -> Body | None:
        """The checked answer's body; ``None`` when DingTalk refused the token: call again.

        The refused token is dropped, so the next ``access_token()`` fetches a new one. The
        call is made again once (``last`` then holds), at once and in the same slot: it is
        not one of the retry policy's attempts.
        """
        try:
            return self._core.parse(
                request, response.status_code, response.headers, response.content
            )
        except InvalidAccessToken:
            if last:
                raise
            logger.debug("access token refused by %s; refreshing once", request.what)
            self._core.drop_token(token)
            return None
