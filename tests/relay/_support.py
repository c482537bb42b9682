"""Helpers for the relay's tests: a relay app in-process, fast settings, waiting for states."""

from __future__ import annotations

import asyncio
import contextlib
import math
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


def text(content: str, **extra: object) -> dict[str, object]:
    return {"msgtype": "text", "text": {"content": content}, **extra}
