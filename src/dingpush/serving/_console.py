"""What a ``python -m`` server command prints of dingpush's log: what ``dingpush`` prints.

``dingpush serve`` and ``dingpush emulator`` route the library's log through the CLI's own
handler; ``python -m dingpush.relay`` and ``python -m dingpush.emulator`` run without click, and
print the same lines with :func:`command_log_lines`: warnings always, as ``warning: …``; with
``-v`` also dingpush's debug records and httpx's request lines, as ``· name: …``. Records are
masked by the library's log redaction first.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import typing
from collections.abc import Iterator

from dingpush.lowlevel import install_log_redaction

__all__ = ["command_log_lines"]


class _CommandLines(logging.Handler):
    def __init__(self, stream: typing.TextIO, verbose: bool) -> None:
        super().__init__()
        self.stream = stream
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            line = f"warning: {record.getMessage()}"
        elif self.verbose:
            line = f"· {record.name}: {record.getMessage()}"
        else:
            return
        self.stream.write(line + "\n")
        self.stream.flush()


@contextlib.contextmanager
def command_log_lines(
    *, verbose: bool = False, stream: typing.TextIO | None = None
) -> Iterator[logging.Handler]:
    """Print dingpush's log on ``stream`` (stderr) inside the block, as the ``dingpush`` command
    does: warnings always, details with ``verbose`` (``-v``)."""
    install_log_redaction()
    handler = _CommandLines(stream or sys.stderr, verbose)
    loggers = [("dingpush", logging.DEBUG)] + ([("httpx", logging.INFO)] if verbose else [])
    saved = []
    for name, level in loggers:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
