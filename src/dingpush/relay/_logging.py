"""What ``dingpush serve`` logs besides uvicorn's lines: the relay's own, at INFO.

Without a handler Python prints only warnings, so the relay said nothing per delivery unless
``-v`` was given. While served from the command line its logger writes to stderr, formatted like
uvicorn's lines: one line per delivery outcome (``dingpush.relay.delivery``), outages,
coalescing, start and stop. Records are masked by the relay's redactor before they are written
(``Relay`` filters its loggers). Embedding code (``RelayServer``, tests) keeps its own logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import typing
from collections.abc import Iterator

__all__ = ["relay_log_lines"]


class _LevelPrefixed(logging.Formatter):
    """``INFO:     message``: the shape of uvicorn's own lines, without importing uvicorn."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(9)
        return f"{prefix} {super().format(record)}"


@contextlib.contextmanager
def relay_log_lines(stream: typing.TextIO | None = None) -> Iterator[logging.Handler]:
    """Print ``dingpush.relay``'s records from INFO up on ``stream`` (stderr) inside the block."""
    logger = logging.getLogger("dingpush.relay")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_LevelPrefixed("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    # Not also through the CLI's own handler on "dingpush", which would print warnings twice.
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
