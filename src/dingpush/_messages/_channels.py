"""Which channel carries which message, and in what shape (protocol §1.3, §3.3, §4.1).

Sans-I/O mappings from dingpush's models to a webhook body, an app robot's
``msgKey``/``msgParam`` and a work notification's ``msg``; the byte measure and the check of
each channel's limit (one function each, used by the clients, their splitters, the CLI's dry run
and the relay's digests alike); and the refusals that name the channel able to carry what this
one cannot.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable

from dingpush._errors import Advice, InvalidMessage, MessageTooLarge, UnsupportedMessage
from dingpush._wire import payload_bytes

from ._app_models import OA, File, Image
from ._models import ActionCard, FeedCard, Link, Markdown, Message, Text

__all__ = [
    "MSGUUID_ALLOWANCE",
    "MSG_PARAM_LIMIT",
    "NOTICE_MSG_LIMIT",
    "STATUS_BAR_MAX_USERS",
    "WEBHOOK_BODY_LIMIT",
    "app_robot_template",
    "check_app_robot_message",
    "check_msg_param",
    "check_notice_message",
    "check_notice_msg",
    "check_webhook_message",
    "msg_param_bytes",
    "notice_msg",
    "notice_msg_bytes",
    "refuse_on_webhook",
    "webhook_body",
    "webhook_body_bytes",
]

#: DingTalk refuses a webhook body over 20,000 bytes with 460101 (protocol §1.5).
WEBHOOK_BODY_LIMIT = 20_000
#: An app robot's ``msgParam`` is at most 15,000 bytes (protocol §3.1).
MSG_PARAM_LIMIT = 15_000
#: A work notification's ``msg`` is at most 2,048 bytes (protocol §4.1).
NOTICE_MSG_LIMIT = 2_048
#: An OA card with a status bar goes to at most 5 users, no departments, not everyone (§4.1).
STATUS_BAR_MAX_USERS = 5
#: A msgUuid as long as any dingpush sends (a uuid4 plus a part suffix ``-NNNNNN``): what a
#: webhook body is measured with before its msgUuid is known.
MSGUUID_ALLOWANCE = "0" * 36 + "-" + "9" * 6

APP_ROBOT = "app robot"
WORK_NOTICE = "work notification"
WEBHOOK = "custom robot webhook"

# Stands in for the media_id of a file not uploaded yet, so sizes can be measured first.
_MEDIA_PLACEHOLDER = "@" + "x" * 40

_APP_HOW = (
    "send it through an app (AppKey/AppSecret): "
    "App(app_key, app_secret).group(open_conversation_id).send(...), .users([...]) or "
    ".notify(agent_id, users=[...]); see docs/apps.md"
)


def _a(channel: str) -> str:
    return f"an {channel}" if channel[0] in "aeiou" else f"a {channel}"


def _unsupported(message: Message, channel: str, advice: str) -> UnsupportedMessage:
    kind = type(message).__name__
    return UnsupportedMessage(
        f"{_a(channel)} cannot carry {kind} messages: {advice}",
        field="msgtype",
        rule=f"not on a {channel}",
    )


def refuse_on_webhook(message: Message) -> None:
    """Raise ``UnsupportedMessage`` for the types a custom robot's webhook cannot carry."""
    if isinstance(message, Image):
        if message.needs_upload:
            advice = (
                "webhook robots cannot upload files, and a local image needs an upload; "
                + _APP_HOW
                + ", or put the image at a public URL and send Markdown.with_image(title, url)"
            )
        else:
            advice = "use Markdown.with_image(title, url) to show an image by URL, or " + _APP_HOW
        raise _unsupported(message, WEBHOOK, advice)
    if isinstance(message, File):
        raise _unsupported(
            message,
            WEBHOOK,
            "webhook robots cannot upload or send files; " + _APP_HOW + ", or send a Link to "
            "where the file is shared",
        )
    if isinstance(message, OA):
        raise _unsupported(
            message, WEBHOOK, "OA cards are work notifications: use App(...).notify(agent_id, …)"
        )


def webhook_body(message: Message, msg_uuid: str, *, keyword: str | None = None) -> bytes:
    """The exact body of a webhook send: the payload, its ``msgUuid``, the keyword appended.

    ``keyword`` is added only when the message lacks it (``Message.with_keyword``).
    """
    if keyword is not None:
        message = message.with_keyword(keyword)
    payload = message.to_payload()
    payload["msgUuid"] = msg_uuid
    return payload_bytes(payload)


def webhook_body_bytes(message: Message, *, keyword: str | None = None) -> int:
    """The bytes DingTalk counts against a webhook body's 20,000 for ``message``.

    Measured with the longest ``msgUuid`` dingpush sends, so a message measured within the
    limit is sent in one request, whatever its msgUuid (a split part's included). The robots'
    splitter, the CLI's dry run and the relay's digests all measure with it.
    """
    return len(webhook_body(message, MSGUUID_ALLOWANCE, keyword=keyword))


def _splittable(message: Message, split: bool) -> bool:
    """Whether a send with ``split`` cuts a too-large ``message`` into parts instead."""
    return split and isinstance(message, Text | Markdown)


def check_webhook_message(
    message: Message, *, keyword: str | None = None, split: bool = False
) -> None:
    """Raise what a webhook send of ``message`` raises before any request.

    ``UnsupportedMessage`` for the types a webhook cannot carry, ``MessageTooLarge`` for a
    body over 20,000 bytes; with ``split``, a long ``Text``/``Markdown`` passes (its parts
    will fit).
    """
    refuse_on_webhook(message)
    if _splittable(message, split):
        return
    size = webhook_body_bytes(message, keyword=keyword)
    if size > WEBHOOK_BODY_LIMIT:
        raise MessageTooLarge.local(size=size, limit=WEBHOOK_BODY_LIMIT, channel="robot webhook")


def _refuse_mentions(message: Message, channel: str) -> None:
    if message.mentions:
        error = UnsupportedMessage(
            f"{_a(channel)} cannot @-mention people (DingTalk ignores 'at' outside webhook "
            "robots): drop at=, or send through a custom robot webhook (Robot), which can",
            field="at",
            rule=f"no mentions on a {channel}",
        )
        error.advice = Advice("at", "drop at=")
        raise error


def _media_ref(message: Image | File, placeholder: bool) -> str:
    if message.media_id is not None:
        return message.media_id
    if placeholder:
        return _MEDIA_PLACEHOLDER
    raise ValueError("upload the media before mapping the message")  # an internal misuse


def _action_card_template(card: ActionCard) -> tuple[str, dict[str, str]]:
    param = {"title": card.title, "text": card.text}
    buttons = (card.button,) if card.button is not None else tuple(card.buttons)
    if len(buttons) == 1:
        param.update(singleTitle=buttons[0].title, singleURL=buttons[0].url)
        return "sampleActionCard", param
    if card.orientation == "horizontal":
        if len(buttons) != 2:
            error = UnsupportedMessage(
                f"an {APP_ROBOT} shows horizontal buttons only as a pair (sampleActionCard6), "
                f"not {len(buttons)}: use orientation='vertical' (up to 5 buttons) or a "
                "custom robot webhook (Robot)",
                field="actionCard.btns",
                rule="2 horizontal buttons",
            )
            error.advice = Advice("orientation", "use orientation='vertical'")
            raise error
        for i, button in enumerate(buttons, 1):
            param[f"buttonTitle{i}"] = button.title
            param[f"buttonUrl{i}"] = button.url
        return "sampleActionCard6", param
    if len(buttons) > 5:
        raise UnsupportedMessage(
            f"an {APP_ROBOT} shows at most 5 buttons (sampleActionCard5), not {len(buttons)}: "
            "drop some, or send through a custom robot webhook (Robot)",
            field="actionCard.btns",
            rule="at most 5 buttons",
        )
    for i, button in enumerate(buttons, 1):
        param[f"actionTitle{i}"] = button.title
        param[f"actionURL{i}"] = button.url
    return f"sampleActionCard{len(buttons)}", param


def app_robot_template(
    message: Message, *, placeholder: bool = False
) -> tuple[str, dict[str, typing.Any]]:
    """Return ``(msgKey, msgParam)`` for an app robot (protocol §3.3).

    Local images and files must be uploaded first (``with_media_id``); ``placeholder=True``
    stands a typical media_id in for them, to measure the size before uploading.
    """
    _refuse_mentions(message, APP_ROBOT)
    if isinstance(message, Text):
        return "sampleText", {"content": message.content}
    if isinstance(message, Markdown):
        return "sampleMarkdown", {"title": message.title, "text": message.text}
    if isinstance(message, Link):
        param = {"title": message.title, "text": message.text, "messageUrl": message.message_url}
        if message.pic_url:
            param["picUrl"] = message.pic_url
        return "sampleLink", param
    if isinstance(message, ActionCard):
        return _action_card_template(message)
    if isinstance(message, Image):
        return "sampleImageMsg", {"photoURL": message.url or _media_ref(message, placeholder)}
    if isinstance(message, File):
        if not message.name:
            raise InvalidMessage(
                "file.name: an app robot shows a file under its name; give "
                "File(media_id=…, name='report.pdf')",
                field="file.name",
                rule="required on an app robot",
            )
        return "sampleFile", {
            "mediaId": _media_ref(message, placeholder),
            "fileName": message.name,
            "fileType": message.file_type,
        }
    if isinstance(message, FeedCard):
        raise _unsupported(
            message,
            APP_ROBOT,
            "DingTalk's app-robot API has no feed card (protocol §3.3); send it through a "
            "custom robot webhook (Robot), or as several Link messages",
        )
    if isinstance(message, OA):
        raise _unsupported(
            message, APP_ROBOT, "OA cards are work notifications: use app.notify(agent_id, …)"
        )
    raise _unsupported(message, APP_ROBOT, "dingpush has no app-robot template for it")


def notice_msg(message: Message, *, placeholder: bool = False) -> dict[str, typing.Any]:
    """Return the ``msg`` object of a work notification (protocol §4.1, snake_case fields)."""
    _refuse_mentions(message, WORK_NOTICE)
    if isinstance(message, Text):
        return {"msgtype": "text", "text": {"content": message.content}}
    if isinstance(message, Markdown):
        return {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.text}}
    if isinstance(message, Link):
        if not message.pic_url:
            raise InvalidMessage(
                "link.picUrl: a work-notification link needs a picture (a URL or a media_id); "
                "give Link(..., pic_url=...)",
                field="link.picUrl",
                rule="required in work notifications",
            )
        link = {
            "messageUrl": message.message_url,
            "picUrl": message.pic_url,
            "title": message.title,
            "text": message.text,
        }
        return {"msgtype": "link", "link": link}
    if isinstance(message, ActionCard):
        return {"msgtype": "action_card", "action_card": _notice_action_card(message)}
    if isinstance(message, Image):
        if message.url is not None:
            raise _unsupported(
                message,
                WORK_NOTICE,
                "work notifications show images by media_id only: use Image.from_file(path) "
                "(dingpush uploads it), Image(media_id=...), or Markdown.with_image(title, url)",
            )
        return {"msgtype": "image", "image": {"media_id": _media_ref(message, placeholder)}}
    if isinstance(message, File):
        return {"msgtype": "file", "file": {"media_id": _media_ref(message, placeholder)}}
    if isinstance(message, OA):
        return message.to_payload()
    if isinstance(message, FeedCard):
        raise _unsupported(
            message,
            WORK_NOTICE,
            "work notifications have no feed card; send it through a custom robot webhook "
            "(Robot), or as several Link messages",
        )
    raise _unsupported(message, WORK_NOTICE, "dingpush has no work-notification form for it")


def _notice_action_card(card: ActionCard) -> dict[str, typing.Any]:
    body: dict[str, typing.Any] = {"title": card.title, "markdown": card.text}
    if card.button is not None:
        body.update(single_title=card.button.title, single_url=card.button.url)
        return body
    body["btn_orientation"] = "1" if card.orientation == "horizontal" else "0"
    body["btn_json_list"] = [{"title": b.title, "action_url": b.url} for b in card.buttons]
    return body


def _compact(value: typing.Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def msg_param_json(message: Message, *, placeholder: bool = False) -> tuple[str, str]:
    """Return ``(msgKey, msgParam)`` with ``msgParam`` as the JSON string DingTalk expects."""
    key, param = app_robot_template(message, placeholder=placeholder)
    return key, _compact(param)


def msg_param_bytes(message: Message) -> int:
    """The bytes an app robot counts against its 15,000-byte ``msgParam`` limit.

    The measure for splitting long messages for app robots; media not yet uploaded count as a
    typical ``media_id``.
    """
    return len(msg_param_json(message, placeholder=True)[1].encode())


def notice_msg_bytes(message: Message) -> int:
    """The bytes of a work notification's ``msg`` (limit 2,048) for ``message``."""
    return len(_compact(notice_msg(message, placeholder=True)).encode())


def check_msg_param(param: str) -> None:
    """Refuse a ``msgParam`` over 15,000 bytes before any request."""
    size = len(param.encode())
    if size > MSG_PARAM_LIMIT:
        raise MessageTooLarge.local(
            size=size, limit=MSG_PARAM_LIMIT, channel=APP_ROBOT, field="msgParam"
        )


def check_app_robot_message(message: Message, *, split: bool = False) -> None:
    """Raise what an app robot's send (group or one-to-one) of ``message`` raises first.

    ``UnsupportedMessage``/``InvalidMessage`` for what an app robot cannot show,
    ``MessageTooLarge`` for a ``msgParam`` over 15,000 bytes (a local file counts as a typical
    ``media_id``); with ``split``, a long ``Text``/``Markdown`` passes.
    """
    param = msg_param_json(message, placeholder=True)[1]
    if not _splittable(message, split):
        check_msg_param(param)


def check_notice_message(
    message: Message,
    *,
    users: Iterable[str] = (),
    departments: Iterable[str | int] = (),
    everyone: bool = False,
    split: bool = False,
) -> None:
    """Raise what a work notification of ``message`` to these recipients raises first.

    ``UnsupportedMessage``/``InvalidMessage`` for what a work notification cannot show (an OA
    status bar reaches at most 5 users), ``MessageTooLarge`` for a ``msg`` over 2,048 bytes;
    with ``split``, a long ``Text``/``Markdown`` passes.
    """
    msg = notice_msg(message, placeholder=True)
    if not _splittable(message, split):
        check_notice_msg(msg)
    wide = everyone or bool(tuple(departments)) or len(tuple(users)) > STATUS_BAR_MAX_USERS
    if isinstance(message, OA) and message.status_value is not None and wide:
        raise InvalidMessage(
            f"oa.status_bar: DingTalk shows a status bar to at most {STATUS_BAR_MAX_USERS} "
            "users, no departments and not everyone (§4.1); drop status_value= or send to "
            "fewer users",
            field="oa.status_bar",
            rule=f"at most {STATUS_BAR_MAX_USERS} users",
        )


def check_notice_msg(msg: typing.Mapping[str, typing.Any]) -> str:
    """Return the compact JSON of ``msg``; refuse it when over 2,048 bytes."""
    text = _compact(msg)
    size = len(text.encode())
    if size > NOTICE_MSG_LIMIT:
        raise MessageTooLarge.local(
            size=size, limit=NOTICE_MSG_LIMIT, channel=WORK_NOTICE, field="msg"
        )
    return text
