"""The sans-I/O core of an app robot's on-call calls: recall, read status, DING.

Protocol §11 (recall and read status of app-robot messages) and §14 (DING). Every function
here builds an :class:`HttpRequest` or reads an answer; ``BaseApp`` strings them into flows
that ``App`` and ``AsyncApp`` run.
"""

from __future__ import annotations

import typing
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence

from dingpush._errors import ConfigError, DingPushError, PermissionDenied, ProtocolError
from dingpush._results import (
    DingResult,
    GroupReadStatus,
    GroupSendResult,
    RemindType,
    UserReadStatus,
    UsersSendResult,
)
from dingpush._wire import JSON_HEADERS

from ._core import AppCore, HttpRequest, _chunks, _ids

__all__ = [
    "DING_PATH",
    "GROUP_QUERY_PATH",
    "GROUP_RECALL_PATH",
    "OTO_READ_PATH",
    "OTO_RECALL_PATH",
    "KeySource",
    "ding_chunks",
    "ding_permission",
    "recall_permission",
    "remind_type",
]

GROUP_RECALL_PATH = "/v1.0/robot/groupMessages/recall"
#: §11: the casing differs between the two 1:1 paths; use each exactly.
OTO_RECALL_PATH = "/v1.0/robot/otoMessages/batchRecall"
GROUP_QUERY_PATH = "/v1.0/robot/groupMessages/query"
OTO_READ_PATH = "/v1.0/robot/oToMessages/readStatus"
DING_PATH = "/v1.0/robot/ding/send"
DING_RECALL_PATH = "/v1.0/robot/ding/recall"
DING_READ_PATH = "/v1.0/robot/ding/readStatuses/query"

#: §11.1/§11.2: at most 20 keys a recall.
RECALL_KEYS_PER_CALL = 20
#: §11.3: ``maxResults`` ≤ 200.
READ_PAGE_MAX = 200
#: §14.1: receivers a DING call: 200 in the app, 20 by SMS or phone.
DING_RECEIVERS = {"app": 200, "sms": 20, "call": 20}
#: §14.1 ``remindType``: 1 in-app, 2 SMS, 3 phone call (not the legacy JSAPI numbering).
REMIND_CODES: Mapping[RemindType, int] = {"app": 1, "sms": 2, "call": 3}
#: §14.1 ``callVoice`` values (phone DING only).
CALL_VOICES = (
    "Standard_Female_Voice",
    "Cantonese_Female_Voice",
    "Gentine_Female_Voice",
    "Overbearing_Female_Voice",
    "Lovely_Girl_Voice",
    "Standard_Male_Voice",
)
DING_PERMISSION = "Premium.Ding.Write"
ROBOT_PERMISSION = "qyapi_robot_sendmsg"

#: What names the messages to recall or query: keys, or the results that carry them.
KeySource: typing.TypeAlias = "str | Iterable[str] | GroupSendResult | UsersSendResult"


def remind_type(value: RemindType | int | str) -> RemindType:
    """``"app"``/``"sms"``/``"call"``, from those names or DingTalk's 1/2/3 (§14.1)."""
    names = {"app": "app", "1": "app", "sms": "sms", "2": "sms", "call": "call", "3": "call"}
    names |= {"phone": "call", "in-app": "app"}
    name = names.get(str(value).strip().lower()) if not isinstance(value, bool) else None
    if name is None:
        raise ConfigError(
            f"remind_type {value!r} is not a DING reminder type: give 'app' (1, in-app, free), "
            "'sms' (2) or 'call' (3, a phone call); SMS and calls need the paid DING quota"
        )
    return typing.cast(RemindType, name)


def keys_of(source: KeySource) -> tuple[str, ...]:
    """The ``processQueryKey``s a source names, every part's for a split message."""
    if isinstance(source, GroupSendResult):
        results = source.parts or (source,)
        return _ids([r.process_query_key for r in results], "process_query_keys")
    if isinstance(source, UsersSendResult):
        parts = source.parts or (source,)
        return _ids([k for r in parts for k in r.process_query_keys], "process_query_keys")
    keys = _ids(source, "process_query_keys")
    if not keys:
        raise ConfigError("no processQueryKey given: pass the key a send returned, or its result")
    return keys


def group_of(source: KeySource, group: str | None) -> str | None:
    """The group a recall or query is about: ``group=`` or the group of a group result."""
    if isinstance(source, GroupSendResult):
        if group is not None and group != source.open_conversation_id:
            raise ConfigError(
                f"group={group!r} is not the group of this result "
                f"({source.open_conversation_id!r}): leave group= out"
            )
        return source.open_conversation_id
    if isinstance(source, UsersSendResult) and group is not None:
        raise ConfigError("a one-to-one result has no group: leave group= out")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise ConfigError("group= is empty: give the group's openConversationId (cid…==)")
    return group.strip() if group is not None else None


def recall_request(
    core: AppCore, robot_code: str, group: str | None, keys: Sequence[str], token: str
) -> HttpRequest:
    """§11.1 group recall or §11.2 1:1 recall of at most 20 keys."""
    payload: dict[str, typing.Any] = {"robotCode": robot_code, "processQueryKeys": list(keys)}
    if group is not None:
        payload["openConversationId"] = group
        return core.v1(GROUP_RECALL_PATH, payload, token, "groupMessages/recall")
    return core.v1(OTO_RECALL_PATH, payload, token, "otoMessages/batchRecall")


def recall_chunks(keys: Sequence[str]) -> list[tuple[str, ...]]:
    return _chunks(keys, RECALL_KEYS_PER_CALL)


def recall_answer(body: Mapping[str, typing.Any]) -> tuple[list[str], dict[str, str]]:
    """``{"successResult":[…],"failedResult":{key: reason}}`` (§11.1)."""
    recalled = [str(k) for k in body.get("successResult") or () if isinstance(k, str)]
    failed = body.get("failedResult")
    failed = failed if isinstance(failed, Mapping) else {}
    return recalled, {str(k): str(v) for k, v in failed.items()}


def group_read_request(
    core: AppCore,
    robot_code: str,
    group: str,
    key: str,
    next_token: str,
    page_size: int,
    token: str,
) -> HttpRequest:
    """§11.3 ``groupMessages/query``: one page of the read list."""
    payload = {
        "processQueryKey": key,
        "openConversationId": group,
        "robotCode": robot_code,
        "maxResults": page_size,
        "nextToken": next_token,
    }
    return core.v1(GROUP_QUERY_PATH, payload, token, "groupMessages/query")


def page_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= READ_PAGE_MAX:
        raise ConfigError(f"page_size={value!r}: DingTalk pages read lists by 1 to 200 (§11.3)")
    return value


def group_read_page(
    body: Mapping[str, typing.Any],
) -> tuple[str, list[str], str | None]:
    """``(sendStatus, readUserIds, nextToken or None at the end)`` of one page (§11.3)."""
    users = [str(u) for u in body.get("readUserIds") or () if isinstance(u, str | int)]
    if not users:  # the SDK also models readUsers:[{userId, unionId}] (§11.3)
        users = [
            str(u.get("userId"))
            for u in body.get("readUsers") or ()
            if isinstance(u, Mapping) and u.get("userId")
        ]
    more = body.get("hasMore") is True and bool(body.get("nextToken"))
    return _send_status(body), users, str(body["nextToken"]) if more else None


def group_read_status(
    key: str, group: str, status: str, users: Iterable[str], pages: int
) -> GroupReadStatus:
    return GroupReadStatus(key, group, status, tuple(dict.fromkeys(users)), pages)


def oto_read_request(core: AppCore, robot_code: str, key: str, token: str) -> HttpRequest:
    """§11.4: a GET with query parameters; the key (``+/=``) URL-encoded."""
    query = urllib.parse.urlencode({"robotCode": robot_code, "processQueryKey": key})
    headers = {**JSON_HEADERS, "x-acs-dingtalk-access-token": token}
    url = f"{core.api_base}{OTO_READ_PATH}?{query}"
    return HttpRequest("GET", url, headers, b"", "v1", "oToMessages/readStatus")


def oto_read_answer(body: Mapping[str, typing.Any]) -> tuple[str, list[UserReadStatus]]:
    users = [
        UserReadStatus(
            str(item.get("userId", "")),
            str(item.get("name", "")),
            str(item.get("readStatus", "")).upper() == "READ",
        )
        for item in body.get("messageReadInfoList") or ()
        if isinstance(item, Mapping)
    ]
    return _send_status(body), users


def _send_status(body: Mapping[str, typing.Any]) -> str:
    status = str(body.get("sendStatus") or "SUCCESS").upper()
    # §11.4: the doc example spells "SUCESS"; read it leniently.
    return "SUCCESS" if status == "SUCESS" else status


def merge_status(statuses: Sequence[str]) -> str:
    """One status for several keys: the least advanced wins (PROCESSING, then RECALLED)."""
    for status in ("PROCESSING", "RECALLED"):
        if status in statuses:
            return status
    return statuses[0] if statuses else "SUCCESS"


# -- DING (§14) ------------------------------------------------------------------------------


def ding_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise ConfigError("a DING needs content: the text the receivers see")
    return content


def call_voice(value: str | None, kind: RemindType) -> str | None:
    if value is None:
        return None
    if value not in CALL_VOICES:
        raise ConfigError(f"call_voice {value!r} is not one of {', '.join(CALL_VOICES)} (§14.1)")
    if kind != "call":
        raise ConfigError("call_voice= is for phone DINGs only: pass remind_type='call'")
    return value


def ding_chunks(users: Sequence[str], kind: RemindType) -> list[tuple[str, ...]]:
    return _chunks(users, DING_RECEIVERS[kind])


def ding_request(
    core: AppCore,
    robot_code: str,
    users: Sequence[str],
    content: str,
    kind: RemindType,
    voice: str | None,
    token: str,
) -> HttpRequest:
    """§14.1 ``robot/ding/send``."""
    payload: dict[str, typing.Any] = {
        "robotCode": robot_code,
        "receiverUserIdList": list(users),
        "content": content,
        "remindType": REMIND_CODES[kind],
    }
    if voice is not None:
        payload["callVoice"] = voice
    return core.v1(DING_PATH, payload, token, "robot/ding/send")


def ding_answer(body: Mapping[str, typing.Any]) -> tuple[str, dict[str, list[str]]]:
    """``{"openDingId": …, "failedList": {reason: [userIds]}}``; a missing map: no failures."""
    ding_id = body.get("openDingId")
    if not isinstance(ding_id, str | int) or not str(ding_id):
        raise ProtocolError("DingTalk's robot/ding/send answered without an openDingId")
    failed = body.get("failedList")
    failed = failed if isinstance(failed, Mapping) else {}
    return str(ding_id), {
        str(reason): [str(u) for u in users] if isinstance(users, list) else [str(users)]
        for reason, users in failed.items()
    }


def ding_result(
    ids: Sequence[str],
    kind: RemindType,
    users: Sequence[str],
    failed: Mapping[str, Sequence[str]],
    asked: RemindType,
) -> DingResult:
    return DingResult(
        tuple(ids),
        kind,
        tuple(users),
        {reason: tuple(who) for reason, who in failed.items()},
        asked if asked != kind else None,
    )


def ding_recall_request(core: AppCore, robot_code: str, ding_id: str, token: str) -> HttpRequest:
    """§14.2 ``robot/ding/recall``: only the robot that sent it may recall it."""
    payload = {"robotCode": robot_code, "openDingId": ding_id}
    return core.v1(DING_RECALL_PATH, payload, token, "robot/ding/recall")


def ding_read_request(core: AppCore, robot_code: str, ding_id: str, token: str) -> HttpRequest:
    """§14.3 ``robot/ding/readStatuses/query`` (SDK-only; no page)."""
    payload = {"robotCode": robot_code, "openDingId": ding_id}
    return core.v1(DING_READ_PATH, payload, token, "robot/ding/readStatuses/query")


def ding_read_answer(body: Mapping[str, typing.Any]) -> dict[str, str]:
    result = body.get("result")
    result = result if isinstance(result, Mapping) else body
    return {
        str(item.get("userId")): str(item.get("readStatus") or "UNREAD").upper()
        for item in result.get("robotDingReadInfoList") or ()
        if isinstance(item, Mapping) and item.get("userId")
    }


def user_ids(values: str | Iterable[str]) -> tuple[str, ...]:
    return _ids(values, "user_ids")


def ding_ids(source: str | DingResult) -> tuple[str, ...]:
    if isinstance(source, DingResult):
        return source.open_ding_ids
    return _ids(source, "open_ding_id")


def _with_permission(exc: PermissionDenied, permission: str, what: str) -> PermissionDenied:
    error = PermissionDenied(
        exc.errcode,
        exc.errmsg,
        hint=(
            f"{what} needs the app permission {permission}: grant it in the developer console "
            "(open-dev.dingtalk.com → your app → 权限管理 / permissions), publish the app, and "
            "check robotCode equals the AppKey"
        ),
        request_id=exc.request_id,
        status_code=exc.status_code,
    )
    return error


def ding_permission(exc: DingPushError) -> DingPushError:
    """A refused DING names its permission, ``Premium.Ding.Write`` (§14)."""
    if isinstance(exc, PermissionDenied) and exc.errcode != "not.allowed.robotCode":
        return _with_permission(exc, DING_PERMISSION, "sending and recalling DINGs")
    return exc


def recall_permission(exc: DingPushError) -> DingPushError:
    """A refused recall or read-status call names its permission (§11)."""
    if isinstance(exc, PermissionDenied) and str(exc.errcode).startswith("Forbidden"):
        return _with_permission(exc, ROBOT_PERMISSION, "recall and read status")
    return exc
