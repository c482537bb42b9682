"""On call from the command line: ``recall``, ``read-status``, ``ding`` and ``listen``.

Through an enterprise app's robot (protocol §11–§14; docs/oncall.md). ``--to`` names an app
(``NAME``, ``app:NAME``) or an app target: an app-group target supplies the group.
"""

from __future__ import annotations

import typing

import click

from dingpush import ConfigError

from ._apps import app_settings
from ._common import common_options, complete_targets
from ._state import State, get_state

if typing.TYPE_CHECKING:
    from dingpush import IncomingMessage
    from dingpush.config import AppSettings

_TO_HELP = (
    "The app: an [apps.NAME] name, app:NAME, or an app target (an app-group target gives --group)."
)


def _group(state: State, to: str, group: str | None) -> str | None:
    """``--group``, or the group of an app-group target named by ``--to``."""
    from dingpush.config import AppGroupTarget

    if group is not None:
        return group
    target = state.config().targets.get(to.strip())
    return target.open_conversation_id if isinstance(target, AppGroupTarget) else None


def _to_option(function: typing.Callable[..., None]) -> typing.Callable[..., None]:
    return click.option(
        "--to", "to", required=True, metavar="APP", shell_complete=complete_targets, help=_TO_HELP
    )(function)


_group_option = click.option(
    "--group",
    metavar="CID",
    help="The group's openConversationId (cid…==) for a group message; without it, and "
    "without an app-group target, the keys are one-to-one messages.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.command("recall")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@_to_option
@_group_option
@_json_option
@common_options
def recall(keys: tuple[str, ...], to: str, group: str | None, as_json: bool) -> None:
    """Recall app-robot messages by their processQueryKey (20 a call).

    \b
    One-to-one messages can be recalled within 24 hours of sending (exit 4 after).
      dingpush recall --to room KEY               # a group message of an app-group target
      dingpush recall --to corp KEY1 KEY2          # one-to-one messages
    """
    from dingpush.config import open_app

    state = get_state()
    settings = app_settings(state, to)
    cid = _group(state, to, group)
    with open_app(settings) as app:
        result = app.recall(keys, group=cid)
    if as_json:
        state.json({"recalled": list(result.recalled), "failed": dict(result.failed), "group": cid})
    else:
        where = f"group {cid}" if cid else "one-to-one"
        state.out(f"recalled {len(result.recalled)} of {len(keys)} ({where})")
        for key, reason in result.failed.items():
            state.out(f"  not recalled: {key}: {reason}")
    if result.failed:
        raise click.exceptions.Exit(4)


@click.command("read-status")
@click.argument("key", metavar="KEY")
@_to_option
@_group_option
@_json_option
@common_options
def read_status(key: str, to: str, group: str | None, as_json: bool) -> None:
    """Who read an app-robot message: a group's read list, or each one-to-one recipient."""
    from dingpush import GroupReadStatus
    from dingpush.config import open_app

    state = get_state()
    settings = app_settings(state, to)
    cid = _group(state, to, group)
    with open_app(settings) as app:
        status = app.read_status(key, group=cid) if cid else app.read_status(key)
    if isinstance(status, GroupReadStatus):
        data: dict[str, typing.Any] = {
            "send_status": status.send_status,
            "group": cid,
            "read": list(status.read_user_ids),
        }
        text = f"{status.send_status}: read by {len(status.read_user_ids)}" + (
            f": {', '.join(status.read_user_ids)}" if status.read_user_ids else ""
        )
    else:
        data = {
            "send_status": status.send_status,
            "read": list(status.read_user_ids),
            "unread": list(status.unread_user_ids),
        }
        text = (
            f"{status.send_status}: read {', '.join(status.read_user_ids) or '-'}; "
            f"unread {', '.join(status.unread_user_ids) or '-'}"
        )
    if as_json:
        state.json(data)
    else:
        state.out(text)


@click.command("ding")
@click.argument("text", required=False)
@_to_option
@click.option("-u", "--user", "users", multiple=True, metavar="USERID", help="A receiver (repeat).")
@click.option(
    "--remind",
    type=click.Choice(["app", "sms", "call"]),
    default="app",
    show_default=True,
    help="In the app (free), by SMS, or a phone call (SMS and calls need the paid DING quota).",
)
@click.option("--voice", metavar="VOICE", help="A phone DING's voice, e.g. Standard_Male_Voice.")
@click.option(
    "--fallback", is_flag=True, help="Send an in-app DING when there is no SMS/phone quota."
)
@click.option("--recall", "recall_id", metavar="DING_ID", help="Recall this DING instead.")
@click.option("--status", "status_id", metavar="DING_ID", help="Show who read this DING instead.")
@_json_option
@common_options
def ding(
    text: str | None,
    to: str,
    users: tuple[str, ...],
    remind: typing.Literal["app", "sms", "call"],
    voice: str | None,
    fallback: bool,
    recall_id: str | None,
    status_id: str | None,
    as_json: bool,
) -> None:
    """DING users through the app's robot; or --recall / --status an earlier DING.

    \b
      dingpush ding --to corp -u alice -u bob "db-1 is down"
      dingpush ding --to corp -u alice --remind call --fallback "db-1 is down"
      dingpush ding --to corp --status 54165xxx
    The app needs the permission Premium.Ding.Write. DingTalk reports read, not confirmed.
    """
    from dingpush.config import open_app

    state = get_state()
    settings = app_settings(state, to)
    if recall_id or status_id:
        if text or users or (recall_id and status_id):
            raise click.UsageError("--recall and --status take a DING id alone")
        with open_app(settings) as app:
            if recall_id:
                recalled = app.recall_ding(recall_id)
                _print(state, as_json, {"recalled": list(recalled)}, f"recalled {recall_id}")
                return
            assert status_id is not None
            status = app.ding_read_status(status_id)
        data: dict[str, typing.Any] = {
            "read": list(status.read_user_ids),
            "unread": list(status.unread_user_ids),
        }
        line = (
            f"read {', '.join(status.read_user_ids) or '-'}; "
            f"unread {', '.join(status.unread_user_ids) or '-'}"
        )
        _print(state, as_json, data, line)
        return
    if not text or not users:
        raise click.UsageError("give the DING's TEXT and at least one --user")
    with open_app(settings) as app:
        result = app.ding(users, text, remind_type=remind, call_voice=voice, fallback=fallback)
    data = {
        "open_ding_ids": list(result.open_ding_ids),
        "remind_type": result.remind_type,
        "fell_back_from": result.fell_back_from,
        "failed": {reason: list(who) for reason, who in result.failed.items()},
    }
    line = f"DING {', '.join(result.open_ding_ids)} ({result.remind_type})"
    if result.fell_back_from:
        line += f", in the app: no {result.fell_back_from} quota"
    for reason, who in result.failed.items():
        line += f"\n  not reached ({reason}): {', '.join(who)}"
    _print(state, as_json, data, line)


def _print(state: State, as_json: bool, data: dict[str, typing.Any], line: str) -> None:
    if as_json:
        state.json(data)
    else:
        state.out(line)


@click.command("listen")
@_to_option
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many messages.")
@click.option("--json", "as_json", is_flag=True, help="Print each message as one JSON line.")
@common_options
def listen(to: str, count: int | None, as_json: bool) -> None:
    """Print the messages people send the app's robot, over Stream mode.

    \b
    The quickest way to learn a person's userId and a group's openConversationId: @-mention
    the robot in the group (or message it one to one) and read them here. The app's robot
    must use Stream mode (消息接收模式) and be published. Needs: pip install 'dingpush[stream]'.
    Ctrl-C stops it (exit 130).
    """
    import asyncio

    state = get_state()
    settings = app_settings(state, to)
    try:
        asyncio.run(_listen(state, settings, count, as_json))
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None


async def _listen(state: State, settings: AppSettings, count: int | None, as_json: bool) -> None:
    from dingpush import StreamClient

    try:
        import websockets  # noqa: F401
    except ImportError:
        raise ConfigError(
            "dingpush listen receives over Stream mode, which needs the websockets library: "
            "pip install 'dingpush[stream]'"
        ) from None
    seen = 0
    async with StreamClient(
        settings.app_key, settings.app_secret, api_base=settings.api_base
    ) as client:
        state.err(f"listening for messages to app {settings.name} (Ctrl-C stops)")
        async for message in client.messages():
            _show(state, message, as_json)
            seen += 1
            if count is not None and seen >= count:
                return


def _show(state: State, message: IncomingMessage, as_json: bool) -> None:
    if as_json:
        import json

        data = {
            "text": message.text,
            "sender_user_id": message.sender_user_id,
            "sender_nick": message.sender_nick,
            "conversation_type": message.conversation_type,
            "conversation_id": message.conversation_id,
            "conversation_title": message.conversation_title,
            "msg_id": message.msg_id,
        }
        state.out(json.dumps(data, ensure_ascii=False))
        return
    where = (
        f"group {message.conversation_title!r} (openConversationId {message.conversation_id})"
        if message.is_group
        else "one-to-one chat"
    )
    who = f"{message.sender_nick} (userId {message.sender_user_id or 'unknown: not published?'})"
    state.out(f"{who} in {where}: {message.text}")
