"""The sans-I/O core of ``App``/``AsyncApp``: tokens, request building and reply checking.

The shells in ``_app.py`` only move bytes: they ask the core for an :class:`HttpRequest`, send
it, and hand the answer back. Everything else (credentials, token lifetime, message mapping,
size checks, chunking, result parsing) happens here, once for both.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dingpush._engine._clock import SYSTEM_CLOCK, Clock
from dingpush._errors import BadCredentials, ConfigError, ProtocolError
from dingpush._masking import Redactor, install_log_redaction
from dingpush._messages._app_models import File, Image
from dingpush._messages._channels import (
    MSG_PARAM_LIMIT,
    NOTICE_MSG_LIMIT,
    app_robot_template,
    check_app_robot_message,
    check_msg_param,
    check_notice_message,
    check_notice_msg,
    msg_param_bytes,
    msg_param_json,
    notice_msg,
    notice_msg_bytes,
)
from dingpush._messages._media import check_kind, check_media, encode_multipart
from dingpush._messages._models import Message, Text
from dingpush._results import (
    GroupSendResult,
    NoticeDelivery,
    NoticeForbidden,
    NoticeProgress,
    NoticeSendResult,
)
from dingpush._robot._target import oapi_base as resolve_oapi_base
from dingpush._wire import JSON_HEADERS, USER_AGENT, parse_oapi_reply, parse_v1_reply, payload_bytes

from ._tokens import AccessToken, FileTokenCache, TokenCache, cache_key
from ._tokens import api_base as resolve_api_base

__all__ = ["AppCore", "GroupSpec", "HttpRequest", "NoticeSpec", "Prepared", "UsersSpec"]

#: ``oToMessages/batchSend`` takes at most 20 users a call (§3.2: the page says 20, its own
#: error table 100 [U]; 20 is safe under both).
OTO_USERS_PER_CALL = 20
#: ``asyncsend_v2`` takes at most 100 user ids and 20 departments a call (§4.1).
NOTICE_USERS_PER_CALL = 100
NOTICE_DEPTS_PER_CALL = 20

CONSOLE_HINT = (
    "AppKey and AppSecret are the Client ID and Client Secret under 凭证与基础信息 "
    "(Credentials and basic info) of the app in the DingTalk developer console: "
    "open-dev.dingtalk.com → 应用开发 (App development) → your internal app"
)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

Api = typing.Literal["v1", "oapi"]
TokenCacheTypes: typing.TypeAlias = "TokenCache | str | os.PathLike[str] | bool | None"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request for a shell to send: method, URL, headers and body, and which API family."""

    method: str
    url: str = dataclasses.field(repr=False)
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    content: bytes = dataclasses.field(repr=False)
    api: Api
    what: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message checked for a channel: the coerced message, its key or type, its msg_uuid."""

    message: Message
    kind: str
    msg_uuid: str


def _check_credentials(app_key: object, app_secret: object) -> tuple[str, str]:
    for name, value in (("app_key", app_key), ("app_secret", app_secret)):
        if not isinstance(value, str) or not value.strip():
            raise BadCredentials(
                f"{name} is empty: give the app's {'AppKey' if name == 'app_key' else 'AppSecret'}"
                f". {CONSOLE_HINT}",
                credential=typing.cast(typing.Literal["app_key", "app_secret"], name),
            )
    key, secret = typing.cast(str, app_key).strip(), typing.cast(str, app_secret).strip()
    if "://" in key or "access_token=" in key:
        raise BadCredentials(
            "app_key is a URL: a custom robot's webhook URL goes to Robot(url), not App(). "
            + CONSOLE_HINT,
            credential="app_key",
        )
    return key, secret


def _which_credential(
    app_key: str, app_secret: str
) -> tuple[typing.Literal["app_key", "app_secret", "unknown"], str]:
    """Guess which credential DingTalk refused; it only says "one of the two" (§2.2)."""
    if _HEX64.fullmatch(app_key):
        return "app_key", (
            "the app_key looks like a custom robot's webhook access_token (64 hex digits), not "
            "an AppKey; webhook robots are used with Robot(webhook_url)"
        )
    if app_secret.startswith("SEC"):
        return "app_secret", (
            "the app_secret looks like a custom robot's signing secret (SEC…), not an AppSecret"
        )
    if app_secret.startswith("ding") and not app_key.startswith("ding"):
        return "app_key", "the AppKey and AppSecret look swapped: the AppKey starts with 'ding'"
    if not app_key.startswith("ding"):
        return "app_key", (
            f"the app_key {app_key!r} does not start with 'ding' as internal apps' AppKeys do; "
            "if it is the app's AppKey all the same, the AppSecret is the wrong one"
        )
    # A well-formed AppKey is rarely the culprit: the AppSecret changes whenever it is reset.
    return "app_secret", (
        f"the AppSecret is most likely wrong ({app_key!r} looks like an AppKey; DingTalk does "
        "not say which of the two it refused): copy the AppSecret again, whole, and check it "
        "was not reset since"
    )


def _token_cache(value: TokenCacheTypes) -> TokenCache | None:
    if value is None or value is False:
        return None
    if value is True:
        return FileTokenCache()
    if isinstance(value, str | os.PathLike):
        return FileTokenCache(value)
    return value


def _ids(values: str | int | Iterable[str | int], what: str) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str | int) else tuple(values)
    result: list[str] = []
    for item in items:
        text = str(item).strip() if isinstance(item, str | int) else ""
        if not text:
            raise ConfigError(f"{what}: {item!r} is not an id; give non-empty strings")
        result.append(text)
    return tuple(dict.fromkeys(result))


def _chunks(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _coerce(message: Message | str) -> Message:
    if isinstance(message, Message):
        return message
    if isinstance(message, str):
        return Text(message)
    raise TypeError(f"send() takes a dingpush message or a str, not {type(message).__name__}")


class AppCore:
    """Credentials, hosts, the token and the media cache of one app; no I/O."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        api_base: str | None = None,
        oapi_base: str | None = None,
        token_cache: TokenCacheTypes = None,
        clock: Clock | None = None,
    ) -> None:
        self.app_key, self._secret = _check_credentials(app_key, app_secret)
        self.api_base = resolve_api_base(api_base)
        self.oapi_base = resolve_oapi_base(oapi_base)
        self.clock = clock or SYSTEM_CLOCK
        self.token_cache = _token_cache(token_cache)
        self._cache_key = cache_key(self.app_key, self._secret, self.api_base)
        self._token: AccessToken | None = None
        self._secrets: list[str] = [self._secret]
        self.redact = Redactor(self._secrets)
        #: ``(kind, sha256) -> media_id`` of what this client uploaded.
        self.media: dict[tuple[str, str], str] = {}
        install_log_redaction()

    def describe(self, cls: str) -> str:
        return f"{cls}({self.app_key!r}, api_base={self.api_base!r}, oapi_base={self.oapi_base!r})"

    # -- tokens ---------------------------------------------------------------------------

    def current_token(self) -> str | None:
        """The token to use now, from memory or the cache; ``None`` when one must be fetched."""
        token = self._token
        now = self.clock.time()
        # A token due for refresh is looked up in the cache too: another process (another
        # relay instance) may have refreshed it already, and a shared cache lets one fetch.
        if (token is None or not token.fresh(now)) and self.token_cache is not None:
            cached = self.token_cache.load(self._cache_key)
            if cached is not None and (token is None or cached.expires_at >= token.expires_at):
                self._remember(cached)
                token = cached
        if token is not None and token.fresh(now):
            return token.value
        return None

    def token_request(self) -> HttpRequest:
        """``POST /v1.0/oauth2/accessToken`` with the credentials as JSON (protocol §2.2)."""
        body = payload_bytes({"appKey": self.app_key, "appSecret": self._secret})
        url = f"{self.api_base}/v1.0/oauth2/accessToken"
        return HttpRequest("POST", url, JSON_HEADERS, body, "v1", "DingTalk's token endpoint")

    def accept_token(self, status: int, headers: Mapping[str, str], content: bytes) -> str:
        """Read the token endpoint's answer; keep and return the token."""
        try:
            body = parse_v1_reply(
                status, content, self.redact, headers=headers, what="DingTalk's token endpoint"
            )
        except BadCredentials as exc:
            credential, why = _which_credential(self.app_key, self._secret)
            raise BadCredentials(
                f"DingTalk refused the app credentials ({exc.errcode}, request id "
                f"{exc.request_id}): {why}. {CONSOLE_HINT}",
                credential=credential,
                errcode=exc.errcode,
                request_id=exc.request_id,
            ) from None
        value, lifetime = body.get("accessToken"), body.get("expireIn")
        if not isinstance(value, str) or not value or not isinstance(lifetime, int | float):
            raise ProtocolError(
                "DingTalk's token endpoint answered without accessToken/expireIn",
                status_code=status,
            )
        now = self.clock.time()
        token = AccessToken(value, now + float(lifetime), now)
        self._remember(token)
        if self.token_cache is not None:
            self.token_cache.store(self._cache_key, token)
        return value

    def drop_token(self, value: str) -> None:
        """Forget ``value`` after DingTalk refused it, unless a newer token replaced it."""
        if self._token is not None and self._token.value == value:
            self._token = None
            if self.token_cache is not None:
                self.token_cache.discard(self._cache_key)

    def _remember(self, token: AccessToken) -> None:
        self._token = token
        if token.value not in self._secrets:
            self._secrets.append(token.value)
            self.redact = Redactor(self._secrets)

    # -- requests -------------------------------------------------------------------------

    def v1(
        self, path: str, payload: Mapping[str, typing.Any], token: str, what: str
    ) -> HttpRequest:
        headers = {**JSON_HEADERS, "x-acs-dingtalk-access-token": token}
        url = f"{self.api_base}{path}"
        return HttpRequest("POST", url, headers, payload_bytes(payload), "v1", what)

    def oapi(
        self,
        path: str,
        token: str,
        what: str,
        *,
        payload: Mapping[str, typing.Any] | None = None,
        content: bytes = b"",
        headers: Mapping[str, str] = JSON_HEADERS,
    ) -> HttpRequest:
        url = f"{self.oapi_base}{path}?access_token={urllib.parse.quote(token, safe='')}"
        body = payload_bytes(payload) if payload is not None else content
        return HttpRequest("POST", url, headers, body, "oapi", what)

    def parse(
        self, request: HttpRequest, status: int, headers: Mapping[str, str], content: bytes
    ) -> dict[str, typing.Any]:
        """Check an answer; raise what it refuses (``InvalidAccessToken`` triggers a retry)."""
        what = f"DingTalk ({request.what})"
        if request.api == "v1":
            return parse_v1_reply(status, content, self.redact, headers=headers, what=what)
        return parse_oapi_reply(status, content, self.redact, what=what)

    # -- media ----------------------------------------------------------------------------

    def upload_request(self, data: bytes, kind: str, filename: str, token: str) -> HttpRequest:
        """``media/upload`` as multipart: the file part ``media`` and the field ``type`` (§5)."""
        content_type, body = encode_multipart({"type": kind}, "media", filename, data)
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
        return self.oapi("/media/upload", token, "media/upload", content=body, headers=headers)

    def check_upload(self, data: bytes, kind: str, filename: str | None) -> str:
        check_kind(kind)
        return check_media(data, kind, filename)

    def media_id(self, body: Mapping[str, typing.Any]) -> str:
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise ProtocolError("DingTalk's media/upload answered without a media_id")
        return media_id

    # -- work-notification queries -------------------------------------------------------

    def task_request(
        self, which: str, agent_id: int | str, task_id: int, token: str
    ) -> HttpRequest:
        payload = {"agent_id": _agent_id(agent_id), "task_id": int(task_id)}
        path = f"/topapi/message/corpconversation/{which}"
        return self.oapi(path, token, which, payload=payload)

    def delivery(
        self, agent_id: int | str, task_id: int, body: Mapping[str, typing.Any]
    ) -> NoticeDelivery:
        result = body.get("send_result")
        result = result if isinstance(result, Mapping) else {}
        forbidden = tuple(
            NoticeForbidden(str(item.get("userid", "")), str(item.get("code", "")), _int(item))
            for item in result.get("forbidden_list") or ()
            if isinstance(item, Mapping)
        )
        return NoticeDelivery(
            task_id=int(task_id),
            agent_id=_agent_id(agent_id),
            invalid_user_ids=_strings(result.get("invalid_user_id_list")),
            forbidden_user_ids=_strings(result.get("forbidden_user_id_list")),
            failed_user_ids=_strings(result.get("failed_user_id_list")),
            read_user_ids=_strings(result.get("read_user_id_list")),
            unread_user_ids=_strings(result.get("unread_user_id_list")),
            invalid_dept_ids=_strings(result.get("invalid_dept_id_list")),
            forbidden=forbidden,
        )

    def progress(
        self, agent_id: int | str, task_id: int, body: Mapping[str, typing.Any]
    ) -> NoticeProgress:
        progress = body.get("progress")
        progress = progress if isinstance(progress, Mapping) else {}
        return NoticeProgress(
            task_id=int(task_id),
            agent_id=_agent_id(agent_id),
            percent=int(progress.get("progress_in_percent", 0)),
            status=int(progress.get("status", 0)),
        )


def _int(item: Mapping[str, typing.Any]) -> int:
    try:
        return int(item.get("count", 1))
    except (TypeError, ValueError):
        return 1


def _agent_id(value: int | str) -> int:
    try:
        agent_id = int(value)
    except (TypeError, ValueError):
        agent_id = 0
    if agent_id <= 0 or isinstance(value, bool):
        raise ConfigError(
            f"agent_id {value!r} is not an AgentId: give the number shown as AgentId under "
            "the app's 凭证与基础信息 (Credentials and basic info) in the developer console"
        )
    return agent_id


def _prepare_robot(message: Message | str, msg_uuid: str | None) -> Prepared:
    message = _coerce(message)
    check_app_robot_message(message)
    key = app_robot_template(message, placeholder=True)[0]
    return Prepared(message, key, msg_uuid or str(uuid.uuid4()))


class GroupSpec:
    """Where and how an app robot posts into a group (``groupMessages/send``, §3.1)."""

    #: What splitting measures a part against: the ``msgParam`` (§3.1).
    limit = MSG_PARAM_LIMIT
    measure = staticmethod(msg_param_bytes)

    def __init__(
        self,
        core: AppCore,
        open_conversation_id: str,
        robot_code: str | None,
        cool_app_code: str | None,
    ) -> None:
        if not isinstance(open_conversation_id, str) or not open_conversation_id.strip():
            raise ConfigError(
                "open_conversation_id is empty: give the group's openConversationId (cid…==), "
                "from a robot callback's conversationId or chat/…/convertToOpenConversationId"
            )
        self.core = core
        self.open_conversation_id = open_conversation_id.strip()
        self.robot_code = robot_code or core.app_key
        self.cool_app_code = cool_app_code

    def prepare(self, message: Message | str, msg_uuid: str | None) -> Prepared:
        return _prepare_robot(message, msg_uuid)

    def request(self, message: Message, token: str) -> HttpRequest:
        key, param = msg_param_json(message)
        check_msg_param(param)
        payload = {
            "robotCode": self.robot_code,
            "openConversationId": self.open_conversation_id,
            "msgKey": key,
            "msgParam": param,
        }
        if self.cool_app_code:
            payload["coolAppCode"] = self.cool_app_code
        return self.core.v1("/v1.0/robot/groupMessages/send", payload, token, "groupMessages/send")

    def result(self, body: Mapping[str, typing.Any], prepared: Prepared) -> GroupSendResult:
        return GroupSendResult(
            process_query_key=str(body.get("processQueryKey", "")),
            open_conversation_id=self.open_conversation_id,
            msg_key=prepared.kind,
            msg_uuid=prepared.msg_uuid,
        )

    def describe(self, cls: str) -> str:
        return f"{cls}({self.open_conversation_id!r}, robot_code={self.robot_code!r})"


class UsersSpec:
    """An app robot's one-to-one chats (``oToMessages/batchSend``, §3.2), 20 users a call."""

    limit = MSG_PARAM_LIMIT
    measure = staticmethod(msg_param_bytes)

    def __init__(
        self, core: AppCore, user_ids: str | Iterable[str], robot_code: str | None
    ) -> None:
        self.core = core
        self.user_ids = _ids(user_ids, "user_ids")
        if not self.user_ids:
            raise ConfigError("user_ids is empty: give the userIds of the people to message")
        self.robot_code = robot_code or core.app_key
        self.chunks = _chunks(self.user_ids, OTO_USERS_PER_CALL)

    def prepare(self, message: Message | str, msg_uuid: str | None) -> Prepared:
        return _prepare_robot(message, msg_uuid)

    def request(self, message: Message, chunk: Sequence[str], token: str) -> HttpRequest:
        key, param = msg_param_json(message)
        check_msg_param(param)
        payload = {
            "robotCode": self.robot_code,
            "userIds": list(chunk),
            "msgKey": key,
            "msgParam": param,
        }
        path = "/v1.0/robot/oToMessages/batchSend"
        return self.core.v1(path, payload, token, "oToMessages/batchSend")

    def describe(self, cls: str) -> str:
        shown = ", ".join(self.user_ids[:3]) + ("…" if len(self.user_ids) > 3 else "")
        return f"{cls}([{shown}], {len(self.user_ids)} users, robot_code={self.robot_code!r})"


class NoticeSpec:
    """A work notification's recipients (``asyncsend_v2``, §4.1), split into allowed calls."""

    #: What splitting measures a part against: the ``msg`` object (§4.1).
    limit = NOTICE_MSG_LIMIT
    measure = staticmethod(notice_msg_bytes)

    def __init__(
        self,
        core: AppCore,
        agent_id: int | str,
        users: str | Iterable[str],
        departments: str | int | Iterable[str | int],
        everyone: bool,
    ) -> None:
        self.core = core
        self.agent_id = _agent_id(agent_id)
        self.users = _ids(users, "users")
        self.departments = _ids(departments, "departments")
        self.everyone = bool(everyone)
        if self.everyone and (self.users or self.departments):
            raise ConfigError(
                "a work notification to everyone goes to everyone alone: drop the users and "
                "departments, or send to them without everyone"
            )
        if not (self.everyone or self.users or self.departments):
            raise ConfigError(
                "a work notification needs recipients: give users=[...], departments=[...] "
                "or everyone=True"
            )
        user_chunks = _chunks(self.users, NOTICE_USERS_PER_CALL)
        dept_chunks = _chunks(self.departments, NOTICE_DEPTS_PER_CALL)
        count = max(len(user_chunks), len(dept_chunks), 1)
        self.calls = [
            (
                user_chunks[i] if i < len(user_chunks) else (),
                dept_chunks[i] if i < len(dept_chunks) else (),
            )
            for i in range(count)
        ]

    def prepare(self, message: Message | str, msg_uuid: str | None) -> Prepared:
        message = _coerce(message)
        check_notice_message(
            message, users=self.users, departments=self.departments, everyone=self.everyone
        )
        kind = notice_msg(message, placeholder=True)["msgtype"]
        return Prepared(message, str(kind), msg_uuid or str(uuid.uuid4()))

    def request(
        self, message: Message, call: tuple[Sequence[str], Sequence[str]], token: str
    ) -> HttpRequest:
        users, departments = call
        payload: dict[str, typing.Any] = {"agent_id": self.agent_id}
        if self.everyone:
            payload["to_all_user"] = True
        if users:
            payload["userid_list"] = ",".join(users)
        if departments:
            payload["dept_id_list"] = ",".join(departments)
        msg = notice_msg(message)
        check_notice_msg(msg)
        payload["msg"] = msg
        path = "/topapi/message/corpconversation/asyncsend_v2"
        return self.core.oapi(path, token, "asyncsend_v2", payload=payload)

    def result(
        self, bodies: Sequence[Mapping[str, typing.Any]], prepared: Prepared
    ) -> NoticeSendResult:
        task_ids = []
        for body in bodies:
            try:
                task_ids.append(int(body["task_id"]))
            except (KeyError, TypeError, ValueError):
                raise ProtocolError("DingTalk's asyncsend_v2 answered without a task_id") from None
        return NoticeSendResult(
            task_ids=tuple(task_ids),
            agent_id=self.agent_id,
            msgtype=prepared.kind,
            msg_uuid=prepared.msg_uuid,
        )

    def describe(self, cls: str) -> str:
        who = (
            "everyone"
            if self.everyone
            else f"{len(self.users)} users, {len(self.departments)} departments"
        )
        return f"{cls}(agent_id={self.agent_id}, {who})"


def needs_upload(message: Message) -> typing.TypeGuard[Image | File]:
    """Whether ``message`` is a local image or file an app must upload before sending."""
    return isinstance(message, Image | File) and message.needs_upload


def upload_source(message: Image | File) -> tuple[bytes, str, str, str]:
    """``(data, kind, filename, digest)`` of a local image or file."""
    kind = "image" if isinstance(message, Image) else "file"
    name = message.filename if isinstance(message, Image) else message.name
    return (
        typing.cast(bytes, message.data),
        kind,
        typing.cast(str, name),
        typing.cast(str, message.digest),
    )
