"""The uvicorn server dingpush runs: configured once, quiet at start, leaving signals to us.

Imported only when something is served: ``import dingpush.serving`` (and with it the emulator
used in-process through ``httpx.ASGITransport``) does not load uvicorn.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from ._settings import ServerSettings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["QuietServer", "make_server"]

# What uvicorn logs while starting; the command's own banner says it better, and first.
_START_UP_LINES = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Uvicorn running on",
)


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to :func:`~dingpush.serving.stop_on_signals`.

    uvicorn's own handling restores the previous handlers once it has stopped serving and
    raises the signal again, so that the process ends "by" it: for SIGTERM the default action
    then kills the process (exit -15) before the relay has handed its in-flight messages back
    to the outbox, or the emulator's command could say goodbye. Set ``should_exit`` to stop it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _StartUpLines(logging.Filter):
    """Drop uvicorn's start-up INFO lines, so a command's banner is the first thing shown."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith(_START_UP_LINES)


def install_log_filters(*filters: logging.Filter) -> None:
    """Attach filters to uvicorn's error logger once each (it logs start-up and app errors)."""
    logger = logging.getLogger("uvicorn.error")
    for new in (_StartUpLines(), *filters):
        if not any(type(f) is type(new) for f in logger.filters):
            logger.addFilter(new)


def make_server(
    app: ASGIApp, settings: ServerSettings, *, log_filters: tuple[logging.Filter, ...] = ()
) -> QuietServer:
    """A uvicorn server for ``app`` with dingpush's settings (see :class:`ServerSettings`)."""
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # The apps send their own `Server` header (DingTalk's, for the emulator).
        server_header=False,
        lifespan="on" if settings.lifespan else "off",
        timeout_graceful_shutdown=max(int(settings.graceful_timeout), 1),
        log_config=LOGGING_CONFIG if settings.console_logging else None,
    )
    # uvicorn configures logging while building its Config, which may replace the filter set.
    install_log_filters(*log_filters)
    return QuietServer(config)
