"""Stopping the served relay on SIGTERM and SIGINT: one graceful shutdown for both, exit 0.

uvicorn's ``Server.serve()`` catches both signals itself, but once it has stopped serving it
restores the previous handlers and raises the signal again, so that the process ends "by" it.
For SIGTERM the default action then kills the process before the relay has stopped its
dispatcher: an in-flight message stays ``sending`` until its lease runs out, and the SQLite
outbox is never closed (its WAL not checkpointed). So the relay handles the signals itself, for
its whole life (serving, then draining the dispatcher), and gives uvicorn a server that leaves
them alone.

The first signal stops uvicorn from accepting; open requests and then in-flight sends get
``shutdown_deadline`` each. A second signal stops the waiting: open requests are cut and
in-flight sends go back to the queue at once (their ``msgUuid`` de-duplicates a send that
landed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import types
from collections.abc import Iterator

import uvicorn

from ._dispatcher import Dispatcher

__all__ = ["SIGNALS", "QuietServer", "stop_on_signals"]

log = logging.getLogger("dingpush.relay")

#: The signals that stop the relay gracefully (Ctrl+C; ``kill``, systemd, docker stop).
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to :func:`stop_on_signals`.

    Set ``should_exit`` to stop it, as the signal handler does.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version re-raises the signal after serving, which for SIGTERM ends
        # the process before the relay's shutdown has run.
        yield


@contextlib.contextmanager
def stop_on_signals(server: uvicorn.Server, dispatcher: Dispatcher) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM stop ``server``; a second one hurries the shutdown.

    Outside the main thread (``RelayServer``) signals cannot be handled and nothing is
    installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def handle(sig: int, frame: types.FrameType | None) -> None:
        # Runs between two bytecodes of whatever the main thread was doing: set flags, and
        # leave the rest (logging, the dispatcher's event) to the event loop.
        received.append(sig)
        if len(received) == 1:
            server.should_exit = True
        else:
            server.force_exit = True
            loop.call_soon_threadsafe(dispatcher.hurry)
        loop.call_soon_threadsafe(_report, sig, len(received))

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(sig: int, count: int) -> None:
    name = signal.Signals(sig).name
    if count == 1:
        log.info("%s: stopping gracefully (send it again to stop waiting)", name)
    else:
        log.warning("%s again: cutting open requests, releasing in-flight sends", name)
