"""``dingpush send``: one message from arguments, a file or stdin, or many with ``--batch``."""

from __future__ import annotations

import pathlib
import typing

import click

from dingpush import DingPushError
from dingpush.config import AppGroupTarget, AppUsersTarget, RobotTarget, WorkNoticeTarget

from ._common import common_options, complete_targets
from ._compose import (
    MessageOptions,
    apply_defaults,
    check_message,
    compose,
    message_options,
    read_text,
)
from ._deliver import Delivery
from ._state import error_json, exit_status, get_state, stderr_is_terminal, stdin_is_interactive

if typing.TYPE_CHECKING:
    from dingpush import Message
    from dingpush.config import Target

    from ._deliver import DryRunRequest, Outcome
    from ._state import State

_URL_PREFIXES = ("https://", "http://", "dingtalk://")
APP_TARGETS = (AppGroupTarget, AppUsersTarget, WorkNoticeTarget)

_HELP = """Send a message to a DingTalk group or to users.

\b
The text comes from TEXT, from stdin when piped (or TEXT is '-'), or from --input PATH.
Without --to, the configuration's default target is used (or $DINGPUSH_WEBHOOK).

\b
Examples:
  dingpush send "deploy finished"
  git log -1 --format=%B | dingpush send --to ops
  dingpush send -m --title "Nightly report" --input report.md
  dingpush send --card --title Release --button "Open=https://example.com" "v2.3 is out"
"""


@click.command(help=_HELP, short_help="Send a message (text, markdown, link, card, feed).")
@click.argument("text", required=False)
@click.option(
    "--to",
    "to",
    metavar="TARGET",
    shell_complete=complete_targets,
    help="A configured target name, a webhook URL, a dingtalk:// URL or app:NAME/….",
)
@click.option(
    "-i",
    "--input",
    "input_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=pathlib.Path),
    help="Read the text from PATH ('-' for stdin), byte for byte.",
)
@click.option(
    "-e", "--escapes", is_flag=True, help="Turn \\n, \\t, \\r and \\\\ in TEXT into characters."
)
@message_options
@click.option(
    "--keyword",
    metavar="WORD",
    help="One of the robot's custom keywords, appended when the text lacks it (robot and "
    "pool targets; default: the target's keyword, or $DINGPUSH_KEYWORD).",
)
@click.option(
    "--split",
    is_flag=True,
    help="Send a text or markdown message too long for one as numbered parts.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Fail (exit 5) instead of waiting when the robot has no free slot of its rate.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Longest wait for a free slot of the robot's rate (default 900).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    metavar="N",
    help="Retries of a transient failure (network, HTTP 5xx, -1 busy); default 3.",
)
@click.option(
    "--msg-uuid", metavar="ID", help="Idempotency key: DingTalk drops a repeat with the same one."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="HTTP timeout (default 10).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the exact request (credentials masked); send nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result (or the error) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option(
    "--batch",
    metavar="FILE.jsonl",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=pathlib.Path),
    help="Send every message of a JSON-lines file ('-' for stdin), with a summary.",
)
@click.option(
    "--save-failed",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True, path_type=pathlib.Path),
    help="With --batch: write the lines that were not sent to PATH, to send them again.",
)
@common_options
def send(
    text: str | None,
    to: str | None,
    input_path: pathlib.Path | None,
    escapes: bool,
    keyword: str | None,
    split: bool,
    no_wait: bool,
    max_wait: float | None,
    retries: int | None,
    msg_uuid: str | None,
    timeout: float | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    batch: pathlib.Path | None,
    save_failed: pathlib.Path | None,
    **shape: typing.Any,
) -> None:
    state = get_state()
    options = MessageOptions(**shape)
    delivery = Delivery(
        split=split,
        wait=not no_wait,
        max_wait=max_wait,
        retries=retries,
        timeout=timeout,
        quiet=quiet or as_json,
    )
    state.progress = not delivery.quiet and stderr_is_terminal()
    if batch is not None:
        given = [
            name
            for name, value in (
                ("TEXT", text),
                ("--input", input_path),
                ("--msg-uuid", msg_uuid),
                ("--keyword", keyword),
            )
            if value is not None
        ]
        if given or options != MessageOptions():
            what = ", ".join(given) or "message options"
            raise click.UsageError(f"--batch takes every message from the file; drop {what}")
        from ._batch import run_batch

        raise click.exceptions.Exit(
            run_batch(
                state,
                batch,
                to=to,
                dry_run=dry_run,
                as_json=as_json,
                quiet=quiet,
                failed_path=save_failed,
                delivery=delivery,
            )
        )
    if save_failed is not None:
        raise click.UsageError("--save-failed goes with --batch")
    options.check()
    try:
        outcome = _send_one(
            state,
            options,
            text,
            to=to,
            input_path=input_path,
            escapes=escapes,
            keyword=keyword,
            msg_uuid=msg_uuid,
            delivery=delivery,
            dry_run=dry_run,
            as_json=as_json,
        )
    except DingPushError as exc:
        if as_json:
            state.json({"ok": False, "error": error_json(exc, state)})
            state.detail_error(exc)
            raise click.exceptions.Exit(exit_status(exc)) from None
        raise
    if outcome is None:  # a dry run, already printed
        return
    if as_json:
        state.json(outcome.to_json())
    elif not quiet:
        state.out(outcome.line())


def _send_one(
    state: State,
    options: MessageOptions,
    text: str | None,
    *,
    to: str | None,
    input_path: pathlib.Path | None,
    escapes: bool,
    keyword: str | None,
    msg_uuid: str | None,
    delivery: Delivery,
    dry_run: bool,
    as_json: bool,
) -> Outcome | None:
    """Resolve, read, compose, then describe (dry run) or deliver one message."""
    target = resolve(state, to)
    if keyword is not None:
        target = with_keyword(state, target, keyword)
    body = read_text(
        text,
        input_path,
        implicit_stdin=options.needs_text,
        interactive=stdin_is_interactive(),
        escapes=escapes,
    )
    message = compose(options, body, app=isinstance(target, APP_TARGETS))
    if isinstance(target, RobotTarget):
        message = apply_defaults(message, target.webhook.mentions, target.webhook.markdown)
    state.detail(f"target {target.name}: {target.kind}, {target.destination}")
    if dry_run:
        from ._deliver import plan

        requests = plan(target, message, msg_uuid, split=delivery.split)
        show_plan(state, target, requests, markdown_findings(message), as_json=as_json)
        return None
    from ._deliver import send as deliver

    return deliver(state, target, message, msg_uuid=msg_uuid, delivery=delivery)


def resolve(state: State, spec: str | None) -> Target:
    """Resolve ``--to``; a URL needs no configuration file, so a broken one does not block it."""
    if spec is not None and (spec.strip().startswith(_URL_PREFIXES) or "://" in spec):
        target = state.empty_config().resolve(spec)
    else:
        target = state.config().resolve(spec)
    state.add_secrets(target.secrets())
    state.target = target
    return target


def with_keyword(state: State, target: Target, keyword: str) -> Target:
    """``target`` with ``--keyword`` in place of its own (a pool's robots all take it)."""
    import dataclasses

    from dingpush.config import PoolTarget

    if not keyword.strip():
        raise click.BadParameter("the keyword is empty", param_hint="--keyword")
    state.given.add("keyword")
    if isinstance(target, RobotTarget):
        target = dataclasses.replace(target, keyword=keyword)
    elif isinstance(target, PoolTarget):
        members = tuple(dataclasses.replace(m, keyword=keyword) for m in target.members)
        target = dataclasses.replace(target, members=members)
    else:
        raise click.UsageError(f"--keyword is for robot targets; {target.name} is {target.kind}")
    state.target = target
    return target


def markdown_findings(message: Message) -> list[str]:
    """What DingTalk will not draw in a markdown or action-card message (issue 7's checker)."""
    return [str(f) for f in check_message(message)]


def show_plan(
    state: State,
    target: Target,
    requests: list[DryRunRequest],
    warnings: list[str],
    *,
    as_json: bool,
) -> None:
    """Print a dry run: each request line, its headers and its exact body; warnings on stderr."""
    if as_json:
        state.json(
            {
                "dry_run": True,
                "target": target.name,
                "kind": target.kind,
                "requests": [r.to_json() for r in requests],
                "warnings": warnings,
            }
        )
        return
    for warning in warnings:
        state.err(f"warning: DingTalk will not render this as written: {warning}")
    for index, request in enumerate(requests):
        if index:
            state.out()
        if request.note:
            state.out(f"# {request.note}")
        state.out(f"{request.method} {request.url}")
        for name, value in request.headers.items():
            state.out(f"{name}: {value}")
        state.out()
        if request.body is None:
            state.out(f"({request.summary})")
            continue
        # The body as it would go out, byte for byte (only a leaked secret would be masked).
        click.echo(state.redact(request.body.decode("utf-8")).encode("utf-8"))
