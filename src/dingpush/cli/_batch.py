"""``dingpush send --batch FILE.jsonl``: many messages, one JSON document a line, none lost.

A line is a robot message body (``{"msgtype": "text", …}``, protocol §1.3), a JSON string (a
text message), or an envelope ``{"to": TARGET, "message": BODY_OR_STRING, "msg_uuid": ID}``.
Every line is checked before the first send; lines that cannot be sent are reported with their
number and reason and, with ``--save-failed``, written out for a re-run: as written, with the
msgUuid of any attempt added, so that DingTalk drops a message it already had.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
import time
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import click

from dingpush import ConfigError, DingPushError, InvalidMessage

if typing.TYPE_CHECKING:
    from dingpush import Message
    from dingpush.config import Sender, Target

    from ._deliver import Delivery
    from ._state import State

_ENVELOPE_KEYS = ("to", "message", "msg_uuid")


@dataclass
class Line:
    """One line of the file: where it is, what it says, and what became of it."""

    number: int
    text: str
    target: Target | None = None
    message: Message | None = None
    msg_uuid: str | None = None
    error: str = ""
    exit_code: int = 0
    #: Fields the line's message has but its type does not (ignored), in words.
    warnings: list[str] = field(default_factory=list)
    result: dict[str, object] = field(default_factory=dict)
    sent: bool = False
    attempted: bool = False
    waited: float = 0.0

    def fail(self, error: DingPushError | str, exit_code: int = 2) -> None:
        if isinstance(error, DingPushError):
            from ._state import exit_status

            self.error, self.exit_code = str(error), exit_status(error)
        else:
            self.error, self.exit_code = error, exit_code

    def retry_text(self) -> str:
        """The line to send again: as written, plus the msgUuid of an attempt that may have
        reached DingTalk, so that a re-run cannot post it twice."""
        if not self.attempted:
            return self.text
        document = json.loads(self.text)
        if isinstance(document, str):
            document = {"message": document, "msg_uuid": self.msg_uuid}
        elif "msgtype" in document:
            document["msgUuid"] = self.msg_uuid
        else:
            document["msg_uuid"] = self.msg_uuid
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"line": self.number, "ok": self.sent}
        if self.target is not None:
            data["target"] = self.target.name
        if self.sent:
            data.update(self.result, waited=round(self.waited, 3))
        elif self.error:
            data.update(error=self.error, exit_code=self.exit_code)
        if self.warnings:
            data["warnings"] = self.warnings
        return data


def read_lines(path: pathlib.Path) -> list[Line]:
    """The non-blank lines of the file (``-`` for stdin), numbered from 1, decoded as UTF-8."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {str(path)!r}: {exc.strerror or exc}", param_hint="--batch"
            ) from None
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            line = Line(number, raw.decode("utf-8", "replace"))
            line.fail(f"not UTF-8 (invalid byte at column {exc.start + 1})")
            lines.append(line)
            continue
        if text.strip():
            lines.append(Line(number, text))
    return lines


def parse_line(line: Line, resolve: typing.Callable[[str | None], Target]) -> None:
    """Turn a line into its target and message, or record why it cannot be sent."""
    from dingpush import Text, UnknownField, parse_message
    from dingpush.lowlevel import load_json

    try:
        document = load_json(line.text)
    except InvalidMessage as exc:  # nested too deeply, or a lone surrogate
        line.fail(exc)
        return
    except ValueError as exc:
        line.fail(f"not JSON: {exc}")
        return
    to: str | None = None
    body = document
    if isinstance(document, dict) and "msgtype" not in document:
        unknown = sorted(set(document) - set(_ENVELOPE_KEYS))
        if unknown or "message" not in document:
            line.fail(
                f"unknown key {unknown[0]!r}" if unknown else "no msgtype and no message",
                exit_code=2,
            )
            line.error += (
                '; write a robot body {"msgtype": …}, a JSON string, or '
                '{"to": …, "message": …, "msg_uuid": …}'
            )
            return
        to, body = document.get("to"), document["message"]
        line.msg_uuid = document.get("msg_uuid")
        if not isinstance(to, str | None) or not isinstance(line.msg_uuid, str | None):
            line.fail('"to" and "msg_uuid" must be strings')
            return
    elif isinstance(body, dict):
        line.msg_uuid = body.get("msgUuid")
    ignored: list[UnknownField] = []
    try:
        line.target = resolve(to)
        if isinstance(body, str):
            line.message = Text(body)
        else:
            line.message = parse_message(body, unknown=ignored)
    except DingPushError as exc:
        line.fail(exc)
    line.warnings = [str(field) for field in ignored]


class Senders:
    """One open client per target for the whole batch (its limiter state and token reused)."""

    def __init__(self, state: State, delivery: Delivery) -> None:
        self._state = state
        self.delivery = delivery
        # Keyed by the target itself: two webhook URLs may share a masked name.
        self._open: dict[Target, Sender] = {}
        self._stack = contextlib.ExitStack()

    def get(self, target: Target) -> Sender:
        sender = self._open.get(target)
        if sender is None:
            sender = self._stack.enter_context(self.delivery.open(self._state, target))
            self._open[target] = sender
        return sender

    def send(self, target: Target, message: Message, msg_uuid: str | None) -> object:
        return self.delivery.send(self.get(target), target, message, msg_uuid)

    def __enter__(self) -> Senders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


@contextlib.contextmanager
def progress(total: int, *, show: bool) -> Iterator[typing.Callable[[], None]]:
    """A Rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "sending",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("send", total=total)
        yield lambda: bar.advance(task)


def deliver(
    state: State, lines: list[Line], senders: Senders, advance: typing.Callable[[], None]
) -> None:
    """Send each good line in order; Ctrl-C stops, leaving the rest marked as not sent."""
    from ._deliver import expected_wait, outcome

    for index, line in enumerate(lines):
        if line.error or line.target is None or line.message is None:
            advance()
            continue
        line.msg_uuid = line.msg_uuid or str(uuid.uuid4())
        try:
            waited = expected_wait(state, line.target).seconds
            line.attempted = True
            result = senders.send(line.target, line.message, line.msg_uuid)
            done = outcome(line.target, line.message, result)
        except DingPushError as exc:
            line.fail(exc)
            line.error = state.message(exc, line.target)  # the fix in command-line terms
            state.detail(f"line {line.number}: {exc}")
        except KeyboardInterrupt:
            robot = line.target.kind in ("robot", "pool")
            line.fail(
                "interrupted while sending: DingTalk may have it; "
                + (
                    f"sending it again with the same msgUuid ({line.msg_uuid}) is safe"
                    if robot
                    else "check the chat before sending it again (apps have no msgUuid)"
                ),
                exit_code=130,
            )
            for rest in lines[index + 1 :]:
                if not rest.error:
                    rest.fail("not sent: the batch was interrupted", exit_code=130)
            raise
        else:
            line.sent = True
            line.result = {k: v for k, v in done.to_json().items() if k not in ("ok", "target")}
            line.waited = waited
        advance()


def summarize(
    state: State, lines: list[Line], *, as_json: bool, quiet: bool, elapsed: float
) -> int:
    """Print the summary (and every failure with its line number); return the exit status."""
    sent = [line for line in lines if line.sent]
    failed = [line for line in lines if not line.sent]
    waited = [line for line in sent if line.waited > 0]
    if as_json:
        state.json(
            {
                "sent": len(sent),
                "waited": len(waited),
                "waited_seconds": round(sum(line.waited for line in waited), 3),
                "failed": len(failed),
                "elapsed": round(elapsed, 3),
                "lines": [line.to_json() for line in lines],
            }
        )
    else:
        if not quiet or failed:
            pause = sum(line.waited for line in waited)
            state.err(
                f"sent {len(sent)} of {len(lines)} in {elapsed:.1f} s; waited for a rate-limit "
                f"slot {len(waited)} times ({pause:.1f} s); failed {len(failed)}"
            )
        for line in failed:
            state.err(f"line {line.number}: {line.error}")
    codes = {line.exit_code for line in failed}
    if not codes:
        return 0
    return codes.pop() if len(codes) == 1 else 1


def save_failed(path: pathlib.Path, lines: list[Line]) -> None:
    """Write the lines that were not sent, verbatim, so that the file can be sent again."""
    failed = [line.retry_text() for line in lines if not line.sent]
    path.write_text("".join(f"{text}\n" for text in failed), encoding="utf-8")


def run_batch(
    state: State,
    path: pathlib.Path,
    *,
    to: str | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    failed_path: pathlib.Path | None,
    delivery: Delivery,
) -> int:
    """Check every line, then send the good ones; return the exit status."""
    from ._send import resolve

    lines = read_lines(path)
    if not lines:
        raise InvalidMessage(
            f"{path}: no messages (the file is empty)", field="batch", rule="required"
        )
    cache: dict[str | None, Target | ConfigError] = {}

    def resolve_once(spec: str | None) -> Target:
        key = spec if spec is not None else to
        if key not in cache:
            try:
                cache[key] = resolve(state, key)
            except ConfigError as exc:
                cache[key] = exc
        found = cache[key]
        if isinstance(found, ConfigError):
            raise found
        return found

    from dingpush.config import RobotTarget

    from ._compose import apply_defaults

    for line in lines:
        if not line.error:
            parse_line(line, resolve_once)
        if isinstance(line.target, RobotTarget) and line.message is not None:
            webhook = line.target.webhook
            line.message = apply_defaults(line.message, webhook.mentions, webhook.markdown)
        if not (as_json or quiet):
            for warning in line.warnings:
                state.err(f"line {line.number}: warning: {warning}")
    started = time.monotonic()
    if dry_run:
        return dry_run_summary(state, lines, as_json=as_json, delivery=delivery)
    show = not (as_json or quiet) and sys.stderr.isatty()
    try:
        with Senders(state, delivery) as senders, progress(len(lines), show=show) as advance:
            deliver(state, lines, senders, advance)
    except KeyboardInterrupt:
        status = 130
    else:
        status = 0
    if failed_path is not None:
        save_failed(failed_path, lines)
    code = summarize(state, lines, as_json=as_json, quiet=quiet, elapsed=time.monotonic() - started)
    return status or code


def dry_run_summary(state: State, lines: list[Line], *, as_json: bool, delivery: Delivery) -> int:
    """Check the whole file without sending: each line's target, type and body size."""
    from ._deliver import plan

    for line in lines:
        if line.error or line.target is None or line.message is None:
            continue
        try:
            requests = plan(line.target, line.message, line.msg_uuid, split=delivery.split)
        except DingPushError as exc:
            line.fail(exc)
            continue
        size = sum(len(r.body or b"") for r in requests)
        line.result = {"msgtype": line.message.msgtype, "requests": len(requests), "bytes": size}
    good = [line for line in lines if not line.error]
    if as_json:
        state.json(
            {
                "dry_run": True,
                "lines": [
                    {"line": line.number, "ok": not line.error, **line.result}
                    | ({"target": line.target.name} if line.target else {})
                    | ({"error": line.error} if line.error else {})
                    | ({"warnings": line.warnings} if line.warnings else {})
                    for line in lines
                ],
            }
        )
    else:
        for line in good:
            assert line.target is not None
            state.out(
                f"line {line.number}: {line.result['msgtype']} to {line.target.name} "
                f"({line.result['bytes']:,} bytes)"
            )
        state.err(f"{len(good)} of {len(lines)} lines would be sent; nothing was sent")
        for line in lines:
            if line.error:
                state.err(f"line {line.number}: {line.error}")
    codes = {line.exit_code for line in lines if line.error}
    return 0 if not codes else codes.pop() if len(codes) == 1 else 1
