"""What every command shares: the configuration (loaded once, lazily), masking and output."""

from __future__ import annotations

import json
import logging
import os
import sys
import typing

import click

from dingpush import APIError, DingPushError, TransportError
from dingpush.lowlevel import Redactor, install_log_redaction

from ._advice import cli_message, origin_line

if typing.TYPE_CHECKING:
    from dingpush import FileRateLimiter
    from dingpush.config import Config, Target


class State:
    """The ``ctx.obj`` of every command: options common to all, and the loaded config."""

    def __init__(self) -> None:
        self.config_path: str | None = None
        self.verbose = False
        self._config: Config | None = None
        self._limiter: FileRateLimiter | None = None
        self._secrets: list[str] = []
        self.redact = Redactor()
        #: The target the command resolved, so that an error can say where its settings are.
        self.target: Target | None = None
        #: Whether to say on stderr what a send is doing (a retry): a terminal, not --quiet.
        self.progress = False
        #: The target settings given as options (``--keyword``): an error's fix names them.
        self.given: set[str] = set()

    # -- configuration ---------------------------------------------------------------------

    def config(self) -> Config:
        """Load the configuration the first time it is needed (a URL target needs none)."""
        if self._config is None:
            from dingpush.config import load_config

            self._config = load_config(self.config_path)
            self.add_secrets(self._config.secrets())
            self.detail(f"configuration: {self._config.path or 'environment (no file found)'}")
        return self._config

    def limiter(self) -> FileRateLimiter:
        """The robots' send log shared by every dingpush process of this user (a SQLite file in
        the cache directory, ``$DINGPUSH_LIMITER_PATH`` to move it): cron jobs and CI steps
        posting through one robot stay under DingTalk's limit together."""
        if self._limiter is None:
            from dingpush import FileRateLimiter

            self._limiter = FileRateLimiter()
            self.detail(f"rate-limit state: {self._limiter.path}")
            click.get_current_context().call_on_close(self._limiter.close)
        return self._limiter

    def empty_config(self) -> Config:
        from dingpush.config import Config

        return Config(path=None, targets={}, apps={})

    def add_secrets(self, secrets: typing.Iterable[str | None]) -> None:
        """Mask these values in everything the CLI prints from now on."""
        self._secrets.extend(s for s in secrets if s)
        self.redact = Redactor(self._secrets)

    # -- output ----------------------------------------------------------------------------

    def out(self, text: str = "", *, nl: bool = True) -> None:
        """Print to stdout, with every known secret masked."""
        click.echo(self.redact(text), nl=nl)

    def err(self, text: str) -> None:
        click.echo(self.redact(text), err=True)

    def detail(self, text: str) -> None:
        """Print a ``--verbose`` detail on stderr."""
        if self.verbose:
            click.echo(self.redact(f"· {text}"), err=True)

    def json(self, data: object) -> None:
        """Print one JSON document on stdout (UTF-8 as is, secrets masked)."""
        self.out(json.dumps(data, ensure_ascii=False, indent=2, default=str))

    def capture_logs(self, ctx: click.Context, name: str, level: int) -> None:
        """Route a library logger through :class:`_EchoHandler` until the command ends."""
        install_log_redaction()
        logger = logging.getLogger(name)
        handler, saved = _EchoHandler(self), logger.level
        logger.addHandler(handler)
        logger.setLevel(level)

        def restore() -> None:
            logger.removeHandler(handler)
            logger.setLevel(saved)

        ctx.call_on_close(restore)

    def enable_verbose(self, ctx: click.Context) -> None:
        """Show details on stderr: dingpush's debug log and httpx's request lines, masked."""
        if self.verbose:
            return
        self.verbose = True
        self.capture_logs(ctx, "httpx", logging.INFO)

    # -- errors ----------------------------------------------------------------------------

    def report(self, exc: DingPushError) -> None:
        """Print an error in one or two lines; ``--verbose`` adds the details, never secrets."""
        self.err(f"Error: {self.message(exc)}")
        for hint in (origin_line(exc, self.target, self._config), cli_hint(exc)):
            if hint:
                self.err(f"  {hint}")
        self.detail_error(exc)

    def message(self, exc: DingPushError, target: Target | None = None) -> str:
        """``exc``'s message with its fix in command-line terms (``--split``, not
        ``split=True``; ``DINGPUSH_KEYWORD`` or the file line, not ``keyword='…'``), for
        ``target`` (default: the command's)."""
        return cli_message(exc, target or self.target, self._config, given=self.given)

    def detail_error(self, exc: DingPushError) -> None:
        if self.verbose:
            for line in error_details(exc):
                self.err(f"  {line}")


class _EchoHandler(logging.Handler):
    """Write log records through click (so tests capture them), masked."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        # Warnings (a throttled robot resting, a pool member taken out) always show; a retry
        # on a terminal; the rest only with --verbose.
        retry = getattr(record, "dingpush_retry", None)
        if retry is not None and self.state.progress and not self.state.verbose:
            self.state.err(retry_line(*retry))
        elif record.levelno >= logging.WARNING:
            self.state.err(f"warning: {record.getMessage()}")
        else:
            self.state.detail(f"{record.name}: {record.getMessage()}")


def retry_line(attempt: int, attempts: int | None, error: DingPushError, delay: float) -> str:
    """``retrying (2/3) after connection refused…``: what a send that is not done yet does."""
    of = f"/{attempts - 1}" if attempts else ""
    return f"retrying ({attempt}{of}) in {delay:.1f} s after {failure_words(error)}…"


def failure_words(error: DingPushError) -> str:
    """A failure in a few words: ``connection refused``, ``a time-out``, ``HTTP 502``."""
    import re

    from dingpush import ProtocolError, Timeout

    if isinstance(error, APIError):
        return f"{error.errcode} {error.errmsg}".strip()
    if isinstance(error, Timeout):
        return "a time-out"
    if isinstance(error, ProtocolError) and error.status_code is not None:
        return f"HTTP {error.status_code}"
    cause = error.__cause__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause)) if cause is not None else ""
    return (text or type(error).__name__).rstrip(".").lower() if text else "a network error"


def cli_hint(exc: DingPushError) -> str:
    """The command-line form of advice the library gives in Python terms."""
    from dingpush import RateLimited

    if isinstance(exc, RateLimited) and exc.refused_locally:
        return (
            'a pool target (kind = "pool") spreads messages over several robots of the group; '
            "`dingpush serve` queues them"
        )
    return ""


def exit_status(exc: DingPushError) -> int:
    """The exit status of an error; a split message's partial delivery exits with its cause's."""
    from dingpush import PartialDelivery

    if isinstance(exc, PartialDelivery):
        return exit_status(exc.error)
    return exc.exit_code


def error_details(exc: DingPushError) -> list[str]:
    """The facts behind an error: its class, exit status, DingTalk's answer, the cause chain."""
    lines = [f"error class: dingpush.{type(exc).__name__} (exit status {exit_status(exc)})"]
    if isinstance(exc, APIError):
        lines.append(f"DingTalk answered: errcode {exc.errcode!r}, errmsg {exc.errmsg!r}")
        if exc.status_code is not None:
            lines.append(f"HTTP status: {exc.status_code}")
        if exc.request_id:
            lines.append(f"request id: {exc.request_id}")
    if isinstance(exc, TransportError) and exc.status_code is not None:
        lines.append(f"HTTP status: {exc.status_code}")
    lines.append(f"retrying may help: {'yes' if exc.transient else 'no'}")
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        lines.append(f"caused by: {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return lines


def error_json(exc: DingPushError, state: State | None = None) -> dict[str, object]:
    """The ``--json`` form of an error (its fix in command-line terms, given ``state``)."""
    data: dict[str, object] = {
        "type": type(exc).__name__,
        "message": state.message(exc) if state is not None else str(exc),
        "exit_code": exit_status(exc),
        "transient": exc.transient,
    }
    if isinstance(exc, APIError):
        data.update(errcode=exc.errcode, errmsg=exc.errmsg, request_id=exc.request_id)
        data["refused_locally"] = exc.refused_locally
    if exc.advice is not None:
        data["advice"] = {"setting": exc.advice.setting}
    sent = getattr(exc, "sent", None)  # PartialDelivery: the parts that went out
    if sent is not None:
        data["parts_sent"] = [part.msg_uuid for part in sent]
        data["parts"] = getattr(exc, "total", None)
    outcome = getattr(exc, "outcome", None)  # what did go out, when some of it did
    if outcome is not None:
        data["result"] = outcome.to_json()
    return data


def get_state() -> State:
    """The current command's :class:`State`."""
    ctx = click.get_current_context()
    state = ctx.find_object(State)
    if state is None:  # a command invoked on its own, as tests may do
        state = ctx.ensure_object(State)
    return state


def stdin_is_interactive() -> bool:
    """Whether stdin is a terminal (nothing piped in)."""
    stream = sys.stdin
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a person watching, not a log file or a pipe)."""
    stream = sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def env() -> typing.Mapping[str, str]:
    return os.environ
