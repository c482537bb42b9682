"""Helpers for the relay's tests: a relay app in-process or in its own OS process, fast settings,
waiting for states."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from dingpush import RetryPolicy
from dingpush.relay import Relay, RelaySettings, create_app

#: Retries that take milliseconds, so tests exercise many attempts without waiting.
FAST_RETRY = RetryPolicy(
    max_attempts=8, base_delay=0.005, max_delay=0.05, jitter=0.0, max_elapsed=math.inf
)


def fast_settings(**changes: object) -> RelaySettings:
    values: dict[str, object] = {
        "retry": FAST_RETRY,
        "idle_poll": 0.2,
        "lease": 30.0,
        "shutdown_deadline": 5.0,
        "allowed_hosts": ("relay",),  # the in-process client's base URL, http://relay
    }
    values.update(changes)
    return RelaySettings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def serving(relay: Relay, **client: object) -> AsyncIterator[httpx.AsyncClient]:
    """Start ``relay`` (its lifespan) and yield an HTTP client talking to it in-process."""
    app = create_app(relay)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://relay",
            **client,  # type: ignore[arg-type]
        ) as http:
            yield http


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 30.0,
    what: str = "the condition",
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds (a bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """:func:`eventually` for a test without an event loop (one driving relay processes)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


class RelayProcess:
    """A relay in its own OS process, from the configuration file ``config``, to ``kill -9``.

    ``python -m dingpush.relay``, or with ``serve`` the CLI's ``dingpush serve``. Its output
    (stdout and stderr) is read until it listens, then drained in a thread so that it never
    blocks; ``lines`` holds it, for a failure's message.
    """

    def __init__(self, config: pathlib.Path, *, serve: bool = False) -> None:
        entry = (
            ["dingpush", "--config", str(config), "serve"]
            if serve
            else [
                "dingpush.relay",
                "--config",
                str(config),
            ]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", *entry],
            cwd=config.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.lines: list[str] = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("the relay ended before listening:\n" + "".join(self.lines))
            self.lines.append(line)
            if line.startswith("dingpush relay listening on "):
                break
        self.url = line.split()[4]
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no lease given up."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL if that takes more than 30 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        self._drain.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def text(content: str, **extra: object) -> dict[str, object]:
    return {"msgtype": "text", "text": {"content": content}, **extra}
