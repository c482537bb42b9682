"""``DingTalkHandler``: the standard ``logging`` module's records, as DingTalk messages.

::

    import logging
    from dingpush.logging import DingTalkHandler

    logging.getLogger().addHandler(DingTalkHandler(os.environ["DINGPUSH_WEBHOOK"]))

The application's thread only formats the record and puts it in a bounded queue (as
``logging.handlers.QueueHandler`` does); a worker thread sends. Records that arrive while it
waits — for the robot's rate (20 messages a minute), for the network — are merged into one
markdown message, up to DingTalk's 20,000 bytes. When the queue is full a record is dropped and
counted, and the next message says how many were. Secrets are masked; a traceback is folded to
the exception and its innermost frames. At exit the queue is flushed, for at most
``flush_timeout`` seconds.

It sends through a :class:`dingpush.Robot` or to a dingpush relay (``POST /v1/messages``),
which stores the message durably and paces it itself. This module is loaded only when
imported: ``import dingpush`` does not load it.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import logging
import queue
import re
import sys
import threading
import time
import traceback
import typing
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dingpush import DingPushError, Markdown, RateLimited, Robot, mask
from dingpush.alerts._filters import escape_markdown, truncate_bytes
from dingpush.lowlevel import WEBHOOK_BODY_LIMIT

if typing.TYPE_CHECKING:
    import httpx

__all__ = ["DingTalkHandler", "HandlerStats", "fold_traceback", "mask_secrets"]

#: Bytes of markdown text one message carries: DingTalk's 20,000-byte body less room for the
#: title, the msgUuid, a robot keyword and the JSON around them.
DEFAULT_MAX_BYTES = 18_000
#: The most ``max_bytes`` may be: the body limit less room for the title and the JSON around.
MAX_BYTES_LIMIT = WEBHOOK_BODY_LIMIT - 1_000
_ICONS = {"CRITICAL": "🛑", "ERROR": "🔴", "WARNING": "🟠", "INFO": "🔵", "DEBUG": "⚪"}
_STOP = object()
_WAKE = object()

_SECRET_PATTERNS = (
    re.compile(
        r"(?i)(?P<key>\b(?:access_token|sign|secret|app_?secret|password|passwd|pwd|token|"
        r"api_?key)[\"']?\s*[=:]\s*[\"']?)(?P<value>[^&\s\"',;}]+)"
    ),
    re.compile(r"(?i)(?P<key>\bbearer\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"(?P<key>)(?P<value>\bSEC[0-9a-fA-F]{16,}\b)"),
    re.compile(r"(?P<key>dingtalk://)(?P<value>[^\s/?]+)"),
)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secret values, and credential-shaped parts, masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask(secret))
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    value = match.group("value")
    if value == "****" or "…" in value:
        return match.group(0)
    return f"{match.group('key')}{mask(value)}"


def fold_traceback(exc_info: typing.Any, frames: int = 3) -> list[str]:
    """The exception first, then its innermost ``frames`` frames, the rest counted."""
    if not exc_info or exc_info[0] is None:
        return []
    error = traceback.TracebackException(*exc_info, limit=None)
    lines = [line.rstrip() for line in error.format_exception_only() if line.strip()]
    stack = list(error.stack)
    if len(stack) > frames:
        lines.append(f"… {len(stack) - frames} outer frame(s) …")
    for frame in stack[-frames:]:
        where = f"{frame.filename}:{frame.lineno} in {frame.name}"
        lines.append(f"{where}: {frame.line.strip()}" if frame.line else where)
    cause = error.__cause__ or error.__context__
    if cause is not None:
        lines.append("caused by " + "".join(cause.format_exception_only()).strip())
    return lines


@dataclass(frozen=True, slots=True)
class _Entry:
    """A record reduced to what the message shows (taken in the application's thread)."""

    created: float
    levelno: int
    level: str
    logger: str
    message: str
    details: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """What the handler did with the records it was given.

    ``emitted == sent + dropped + failed + pending``: a record is in exactly one of them.
    """

    emitted: int
    sent: int
    #: Dropped because the queue was full (or the handler closed before sending them).
    dropped: int
    #: In messages DingTalk (or the relay) refused for good.
    failed: int
    pending: int
    messages: int


class _SendFailed(Exception):
    pass


class DingTalkHandler(logging.Handler):
    """A ``logging.Handler`` that sends records to a DingTalk group without blocking.

    Args:
        robot: a :class:`dingpush.Robot`, or its webhook URL (``dingtalk://…`` too); the
            handler paces its messages to the robot's rate.
        secret: the robot's signing secret, when ``robot`` is a URL.
        relay: instead of a robot, the URL of a dingpush relay; messages go to its
            ``POST /v1/messages`` for ``target``, with ``token`` as the bearer token.
        level: the least severe level sent (``ERROR`` by default).
        queue_size: records waiting at most; beyond, records are dropped and counted.
        linger: seconds the worker waits after a record for more to merge into its message.
        max_bytes: markdown bytes per message.
        secrets: more values to mask in every message (the robot's token and secret, the
            relay token are masked anyway).
        flush_timeout: the longest wait for the queue to empty at exit (``logging.shutdown``,
            ``close``).
        title: the message title, with ``{level}``, ``{logger}`` and ``{count}``.
        transport: an httpx transport for the relay client (tests).
    """

    def __init__(
        self,
        robot: Robot | str | None = None,
        *,
        secret: str | None = None,
        relay: str | None = None,
        target: str | None = None,
        token: str | None = None,
        level: int = logging.ERROR,
        queue_size: int = 10_000,
        linger: float = 2.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        secrets: Iterable[str] = (),
        flush_timeout: float = 5.0,
        title: str = "{level} {logger}",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(level)
        if (robot is None) == (relay is None):
            raise ValueError("DingTalkHandler: give robot= (a Robot or its URL) or relay=, one")
        if relay is not None and not target:
            raise ValueError("DingTalkHandler: relay= needs target= (the relay's target name)")
        if queue_size < 1 or linger < 0 or flush_timeout < 0:
            raise ValueError(
                "DingTalkHandler: queue_size >= 1, linger and flush_timeout >= 0 seconds"
            )
        if (
            not isinstance(max_bytes, int)
            or isinstance(max_bytes, bool)
            or not 1000 <= max_bytes <= MAX_BYTES_LIMIT
        ):
            raise ValueError(
                f"DingTalkHandler: max_bytes={max_bytes!r} must be a whole number between 1000 and "
                f"{MAX_BYTES_LIMIT}: DingTalk refuses a robot's body over {WEBHOOK_BODY_LIMIT} "
                f"bytes, and the title and JSON around the text take the rest"
            )
        self._secrets = [*secrets, *(s for s in (secret, token) if s)]
        self._robot: Robot | None = None
        self._owns_robot = False
        self._http: httpx.Client | None = None
        if robot is not None:
            self._robot = robot if isinstance(robot, Robot) else Robot(robot, secret=secret)
            self._owns_robot = not isinstance(robot, Robot)
            self._secrets += [s for s in (self._robot.target.token, self._robot.target.secret) if s]
        else:
            import httpx

            headers = {"Authorization": f"Bearer {token}"} if token else {}
            base = typing.cast(str, relay).rstrip("/")
            self._http = httpx.Client(
                base_url=base, headers=headers, transport=transport, timeout=10.0
            )
        self._target = target
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._queue_size = queue_size
        self._linger = linger
        self._max_bytes = max_bytes
        self._flush_timeout = flush_timeout
        self._title = title
        self._counts = threading.Condition()
        self._emitted = self._sent = self._dropped = self._failed = self._messages = 0
        self._reported_dropped = self._reported_failed = 0
        self._last_failure = ""
        self._gave_up = False
        self._stopping = threading.Event()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="dingpush-logging", daemon=True)
        self._worker.start()
        atexit.register(self.close)

    # -- the application's side ----------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record; never waits on the network (a full queue drops and counts it)."""
        if record.thread == self._worker.ident:
            return  # the handler's own sending (httpx, dingpush) would loop back here
        try:
            entry = self._entry(record)
        except Exception:
            self.handleError(record)
            return
        with self._counts:
            self._emitted += 1
            if self._closed:
                self._dropped += 1
                return
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                self._dropped += 1

    def _entry(self, record: logging.LogRecord) -> _Entry:
        if self.formatter is not None:
            message = self.format(record)
            return _Entry(
                record.created, record.levelno, record.levelname, record.name, message, ()
            )
        details = fold_traceback(record.exc_info) if record.exc_info else []
        if record.stack_info:
            details += [line for line in record.stack_info.splitlines()[-4:] if line.strip()]
        return _Entry(
            record.created,
            record.levelno,
            record.levelname,
            record.name,
            record.getMessage(),
            tuple(details),
        )

    def stats(self) -> HandlerStats:
        """Counts of the records so far."""
        with self._counts:
            done = self._sent + self._dropped + self._failed
            return HandlerStats(
                emitted=self._emitted,
                sent=self._sent,
                dropped=self._dropped,
                failed=self._failed,
                pending=self._emitted - done,
                messages=self._messages,
            )

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the records emitted so far are sent (or failed), at most ``timeout``
        seconds (``flush_timeout`` by default); merging waits no longer for more records."""
        limit = self._flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._counts:
            goal = self._emitted
        self._wake()
        with self._counts:
            while self._sent + self._dropped + self._failed < goal:
                left = deadline - time.monotonic()
                if left <= 0 or not self._worker.is_alive():
                    return
                self._counts.wait(min(left, 0.5))

    def close(self) -> None:
        """Send what is queued (at most ``flush_timeout`` seconds), then stop the worker."""
        with self._counts:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + self._flush_timeout
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=self._flush_timeout)
        self._worker.join(max(deadline - time.monotonic(), 0.0))
        if self._worker.is_alive():
            with self._counts:
                left = self._emitted - self._sent - self._dropped - self._failed
                self._dropped += left
                self._gave_up = True  # what the worker still settles is counted already
            sys.stderr.write(
                f"dingpush.logging: {left} log record(s) not sent to DingTalk before exit "
                f"(flush_timeout={self._flush_timeout:g}s)\n"
            )
        else:
            if self._robot is not None and self._owns_robot:
                self._robot.close()
            if self._http is not None:
                self._http.close()
        super().close()

    def _wake(self) -> None:
        # A full queue means the worker has plenty to do already, and no reason to linger.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        pending: list[_Entry] = []
        stop = False
        while not (stop and not pending):
            if not pending:
                item = self._queue.get()
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Entry):
                    pending.append(item)
                stop = self._gather(pending, linger=not stop) or stop
            else:
                stop = self._gather(pending, linger=False) or stop
            if pending:
                taken = self._take(pending)
                self._deliver(taken)

    def _gather(self, pending: list[_Entry], *, linger: bool) -> bool:
        """Move queued records into ``pending``; wait ``linger`` seconds for a burst to gather.

        ``pending`` holds at most ``queue_size`` records: beyond, they wait in the queue, and
        when that is full too the application's new records are dropped (and counted).
        """
        deadline = time.monotonic() + (self._linger if linger and pending else 0.0)
        while len(pending) < self._queue_size:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            if item is _WAKE:
                deadline = 0.0  # flush(): stop lingering
            elif isinstance(item, _Entry):
                pending.append(item)
        return False

    def _take(self, pending: list[_Entry]) -> list[tuple[_Entry, str]]:
        """The first records of ``pending`` that fit in one message, rendered."""
        budget = self._max_bytes - 600  # the heading and the notices
        taken: list[tuple[_Entry, str]] = []
        used = 0
        while pending:
            chunk = self._render(pending[0], budget)
            cost = _json_bytes(chunk) + 4
            if taken and used + cost > budget:
                break
            taken.append((pending.pop(0), chunk))
            used += cost
        return taken

    def _render(self, entry: _Entry, budget: int) -> str:
        """The record as markdown whose JSON-escaped bytes (what the body counts) fit ``budget``.

        The text is cut before it is escaped, and escaping grows it (a ``"`` or ``\\`` takes
        two bytes in the body, markdown's escapes more): cut shorter until the measure fits.
        """
        message_bytes, details_bytes = budget // 2, budget // 3
        while True:
            text = self._render_cut(entry, message_bytes, details_bytes)
            if _json_bytes(text) <= budget or message_bytes < 64:
                return text
            message_bytes, details_bytes = message_bytes // 2, details_bytes // 2

    def _render_cut(self, entry: _Entry, message_bytes: int, details_bytes: int) -> str:
        when = datetime.datetime.fromtimestamp(entry.created).strftime("%H:%M:%S")
        message = mask_secrets(entry.message, self._secrets)
        message = truncate_bytes(message, message_bytes, "… (cut)")
        text = f"**{when} {entry.level} {escape_markdown(entry.logger)}:** "
        text += escape_markdown(message, multiline=True)
        if entry.details:
            folded = mask_secrets("\n".join(entry.details), self._secrets)
            folded = truncate_bytes(folded, details_bytes, "… (cut)")
            text += "\n\n" + "\n".join(
                f"> {escape_markdown(line)}  " for line in folded.splitlines()
            )
        return text

    def _notices(self) -> list[str]:
        with self._counts:
            dropped = self._dropped - self._reported_dropped
            failed = self._failed - self._reported_failed
            self._reported_dropped, self._reported_failed = self._dropped, self._failed
            reason = self._last_failure
        notes = []
        if dropped:
            notes.append(
                f"> ⚠️ {dropped} record(s) dropped: the handler's queue "
                f"({self._queue_size}) was full"
            )
        if failed:
            notes.append(f"> ⚠️ {failed} record(s) could not be sent: {reason}")
        return notes

    def _message(self, taken: list[tuple[_Entry, str]]) -> Markdown:
        entries = [entry for entry, _ in taken]
        worst = max(entries, key=lambda e: e.levelno)
        icon = _ICONS.get(worst.level, "⚪")
        count = len(entries)
        heading = f"### {icon} {worst.level} · {escape_markdown(worst.logger)}"
        heading += f" · {count} records" if count > 1 else ""
        parts = [heading, *self._notices(), *(chunk for _, chunk in taken)]
        title = self._title.format(level=worst.level, logger=worst.logger, count=count)
        title = f"{icon} {mask_secrets(title, self._secrets)}"
        if count > 1:
            title += f" (+{count - 1})"
        return Markdown(title[:64], "\n\n".join(parts))

    def _deliver(self, taken: list[tuple[_Entry, str]]) -> None:
        message = self._message(taken)
        try:
            self._send(message)
        except _SendFailed as exc:
            self._settle(len(taken), failed=True, reason=str(exc))
            sys.stderr.write(f"dingpush.logging: {len(taken)} record(s) not sent: {exc}\n")
        else:
            self._settle(len(taken), failed=False)

    def _settle(self, count: int, *, failed: bool, reason: str = "") -> None:
        with self._counts:
            if self._gave_up:
                return
            if failed:
                self._failed += count
                self._last_failure = reason
            else:
                self._sent += count
                self._messages += 1
            self._counts.notify_all()

    def _send(self, message: Markdown) -> None:
        if self._robot is not None:
            self._send_robot(self._robot, message)
        else:
            self._send_relay(message)

    def _send_robot(self, robot: Robot, message: Markdown) -> None:
        while True:
            try:
                robot.send(message)
                return
            except RateLimited as exc:
                # Cooling down beyond the robot's max_wait: keep the records, try again later.
                wait = (exc.retry_at - time.time()) if exc.retry_at else 1.0
                if self._stopping.wait(min(max(wait, 0.1), 60.0)):
                    raise _SendFailed(f"the robot is rate limited ({exc})") from None
            except DingPushError as exc:
                raise _SendFailed(mask_secrets(str(exc), self._secrets)) from None

    def _send_relay(self, message: Markdown) -> None:
        import httpx

        assert self._http is not None
        body = {"target": self._target, "message": message.to_payload()}
        headers = {"Idempotency-Key": f"dingpush-logging-{uuid.uuid4()}"}
        reason = ""
        for attempt in range(6):
            if attempt and self._stopping.wait(min(2.0**attempt * 0.25, 10.0)):
                break
            try:
                reply = self._http.post("/v1/messages", json=body, headers=headers)
            except httpx.HTTPError as exc:
                reason = f"the relay is unreachable ({type(exc).__name__})"
                continue
            if reply.status_code == 202:
                return
            reason = f"the relay answered {reply.status_code}: {reply.text[:200]}"
            if reply.status_code < 500 and reply.status_code != 429:
                break
        raise _SendFailed(mask_secrets(reason, self._secrets))

    def __repr__(self) -> str:
        where = repr(self._robot) if self._robot is not None else f"relay target {self._target!r}"
        return f"<DingTalkHandler {where} ({logging.getLevelName(self.level)})>"


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2
