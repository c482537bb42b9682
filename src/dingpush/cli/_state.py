"""What every command shares: the configuration (loaded once, lazily), masking and output."""

from __future__ import annotations

import json
import logging
import os
import sys
import typing

import click

from dingpush._errors import APIError, DingPushError, TransportError
from dingpush._masking import Redactor, install_log_redaction

if typing.TYPE_CHECKING:
    from dingpush.config import Config


class State:
    """The ``ctx.obj`` of every command: options common to all, and the loaded config."""

    def __init__(self) -> None:
        self.config_path: str | None = None
        self.verbose = False
        self._config: Config | None = None
        self._secrets: list[str] = []
        self.redact = Redactor()

    # -- configuration ---------------------------------------------------------------------

    def config(self) -> Config:
        """Load the configuration the first time it is needed (a URL target needs none)."""
        if self._config is None:
            from dingpush.config import load_config

            self._config = load_config(self.config_path)
            self.add_secrets(self._config.secrets())
            self.detail(f"configuration: {self._config.path or 'environment (no file found)'}")
        return self._config

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

    def enable_verbose(self, ctx: click.Context) -> None:
        """Show details on stderr: dingpush's debug log and httpx's request lines, masked."""
        if self.verbose:
            return
        self.verbose = True
        install_log_redaction()
        handler = _EchoHandler(self)
        loggers = [logging.getLogger("dingpush"), logging.getLogger("httpx")]
        saved = [logger.level for logger in loggers]
        for logger, level in zip(loggers, (logging.DEBUG, logging.INFO), strict=True):
            logger.addHandler(handler)
            logger.setLevel(level)

        def restore() -> None:
            for logger, level in zip(loggers, saved, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)

        ctx.call_on_close(restore)

    # -- errors ----------------------------------------------------------------------------

    def report(self, exc: DingPushError) -> None:
        """Print an error in one or two lines; ``--verbose`` adds the details, never secrets."""
        self.err(f"Error: {exc}")
        self.detail_error(exc)

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
        self.state.detail(f"{record.name}: {record.getMessage()}")


def error_details(exc: DingPushError) -> list[str]:
    """The facts behind an error: its class, exit status, DingTalk's answer, the cause chain."""
    lines = [f"error class: dingpush.{type(exc).__name__} (exit status {exc.exit_code})"]
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


def error_json(exc: DingPushError) -> dict[str, object]:
    """The ``--json`` form of an error."""
    data: dict[str, object] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "exit_code": exc.exit_code,
        "transient": exc.transient,
    }
    if isinstance(exc, APIError):
        data.update(errcode=exc.errcode, errmsg=exc.errmsg, request_id=exc.request_id)
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


def env() -> typing.Mapping[str, str]:
    return os.environ
