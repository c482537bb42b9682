"""Clocks: the system clock, and the protocol tests use to stand in a fake one."""

from __future__ import annotations

import time
import typing

__all__ = ["Clock", "SystemClock"]


class Clock(typing.Protocol):
    """What dingpush reads time from and sleeps with; inject a fake one in tests."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (signatures, cool-down deadlines)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards (rate windows)."""

    def sleep(self, seconds: float) -> None:
        """Block the calling thread."""

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task without blocking the event loop."""


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio  # only async callers pay for importing asyncio

        await asyncio.sleep(max(seconds, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
