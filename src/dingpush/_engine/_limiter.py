"""Per-robot rate limiting: an exact sliding window shared by every client of a robot.

DingTalk lets a custom robot send 20 messages a minute and then throttles it for 10 minutes
(protocol §1.5). The limiter keeps a log of the last ``limit`` sends of each robot and grants a
slot only when fewer than ``limit`` of them could still be inside the server's window, so a
client never trips the limit, whether the server's window slides or is fixed.

Why a sliding-window log and not GCRA: GCRA with a burst of 20 lets the 21st request through
three seconds after a burst, which a sliding 60-second window refuses; GCRA without a burst
spaces every message three seconds apart, so a script sending five messages waits twelve
seconds. The log is exact (it grants exactly what a sliding window allows), its memory is
``limit`` timestamps per robot, and its bookkeeping is a heap operation per send.

Latency: the server counts a request when it arrives, somewhere between the moment the client
sent it and the moment the answer came back. A slot is therefore reserved *before* sending (so
concurrent senders cannot oversubscribe it) and stamped with the time the answer came back, the
latest possible arrival; it is free again ``window`` seconds after that stamp.
"""

from __future__ import annotations

import heapq
import threading
import typing

from ._clock import SYSTEM_CLOCK, Clock
from ._units import Rate

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_RATE",
    "MemoryRateLimiter",
    "Rate",
    "RateLimiter",
    "Reservation",
    "default_limiter",
]


#: DingTalk's limit for a custom robot: 20 messages in any 60 seconds (protocol §1.5).
DEFAULT_RATE = Rate(20, 60.0)
#: Seconds a robot rests after DingTalk answered 130101/410100: its 10-minute throttle (§1.5).
DEFAULT_COOLDOWN = 600.0
#: Seconds a send waits for a slot before raising ``RateLimited``: one whole cool-down, a whole
#: window after it, and room for retries, so a message that meets a throttle is still sent.
DEFAULT_MAX_WAIT = 900.0


class Reservation(typing.Protocol):
    """A slot taken before sending; ``complete()`` stamps it when the answer is back."""

    def complete(self, extra: float = 0.0) -> None:
        """Stamp the slot with now (plus ``extra`` seconds when the request may land late)."""


class RateLimiter(typing.Protocol):
    """Where the per-robot send log lives: this process (``MemoryRateLimiter``) or a file.

    Keys are robots (``WebhookTarget.key``) or an app's budgets (one API of one app, its
    work-notification recipients). ``weight`` takes several slots at once: a work notification
    to 100 users uses 100 of the app's 5,000 recipients a minute.
    """

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        """Take ``weight`` slots for ``key`` now, or return the seconds until they may be free."""

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        """Seconds until :meth:`reserve` may succeed (0.0 when the slots are free now)."""

    def cool_down(self, key: str, seconds: float) -> None:
        """Keep robot ``key`` from sending for ``seconds`` (DingTalk throttled it)."""

    def cooldown_left(self, key: str) -> float:
        """Seconds robot ``key`` still rests after a throttle (0.0 when it may send)."""


class _Window:
    """One robot's log: stamps of completed sends (a heap), sends in flight, cool-down end."""

    __slots__ = ("cool_until", "pending", "stamps")

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.pending = 0
        self.cool_until = float("-inf")


def free_in(
    stamps: typing.Iterable[float], pending: int, rate: Rate, now: float, weight: int = 1
) -> float:
    """Seconds until ``weight`` more sends fit inside the window (0.0 if now).

    ``stamps`` are the times answers came back; a send still in flight is stamped no earlier
    than ``now``, so it counts as ``now``: its slot frees ``window`` seconds from now at best.
    """
    live = [s for s in stamps if s + rate.window > now]
    excess = len(live) + pending - rate.limit + weight
    if excess <= 0:
        return 0.0
    frees = sorted([*live, *([now] * pending)])
    return frees[excess - 1] + rate.window - now


def check_weight(weight: int, rate: Rate) -> None:
    """Refuse a weight the rate can never grant (it would wait forever)."""
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
        raise ValueError(f"weight must be an integer >= 1, got {weight!r}")
    if weight > rate.limit:
        raise ValueError(f"{weight} slots at once can never fit a rate of {rate}")


class _MemoryReservation:
    __slots__ = ("_done", "_limiter", "_weight", "_window")

    def __init__(self, limiter: MemoryRateLimiter, window: _Window, weight: int) -> None:
        self._limiter = limiter
        self._window = window
        self._weight = weight
        self._done = False

    def complete(self, extra: float = 0.0) -> None:
        self._limiter._complete(self, extra)


class MemoryRateLimiter:
    """The per-robot send log of this process, safe across threads and asyncio tasks.

    Every ``Robot`` and ``AsyncRobot`` of a robot shares :func:`default_limiter` unless given
    another one; a ``FileRateLimiter`` extends the sharing to other processes.

    Args:
        clock: Where time comes from (``monotonic()`` is used); ``FakeClock`` in tests.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SYSTEM_CLOCK
        # A plain lock: no caller awaits while holding it, so asyncio tasks can share it.
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def __repr__(self) -> str:
        return f"<MemoryRateLimiter robots={len(self._windows)}>"

    def reserve(self, key: str, rate: Rate, weight: int = 1) -> Reservation | float:
        check_weight(weight, rate)
        with self._lock:
            now = self.clock.monotonic()
            window = self._windows.setdefault(key, _Window())
            wait = self._wait(window, rate, now, weight)
            if wait > 0:
                return wait
            window.pending += weight
            return _MemoryReservation(self, window, weight)

    def delay(self, key: str, rate: Rate, weight: int = 1) -> float:
        check_weight(weight, rate)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                return 0.0
            return self._wait(window, rate, self.clock.monotonic(), weight)

    def cool_down(self, key: str, seconds: float) -> None:
        with self._lock:
            window = self._windows.setdefault(key, _Window())
            window.cool_until = max(window.cool_until, self.clock.monotonic() + seconds)

    def cooldown_left(self, key: str) -> float:
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                return 0.0
            return max(window.cool_until - self.clock.monotonic(), 0.0)

    def reset(self) -> None:
        """Forget every robot's log and cool-down (tests; a fresh emulator)."""
        with self._lock:
            self._windows.clear()

    def _wait(self, window: _Window, rate: Rate, now: float, weight: int = 1) -> float:
        stamps = window.stamps
        # The heap's smallest stamp is the oldest send; drop those the window has passed.
        while stamps and stamps[0] + rate.window <= now:
            heapq.heappop(stamps)
        cooling = window.cool_until - now
        if len(stamps) + window.pending + weight <= rate.limit:  # the common case, in O(1)
            return max(cooling, 0.0)
        return max(free_in(stamps, window.pending, rate, now, weight), cooling, 0.0)

    def _complete(self, reservation: _MemoryReservation, extra: float) -> None:
        with self._lock:
            if reservation._done:
                return
            reservation._done = True
            window = reservation._window
            window.pending -= reservation._weight
            stamp = self.clock.monotonic() + max(extra, 0.0)
            for _ in range(reservation._weight):
                heapq.heappush(window.stamps, stamp)


_defaults_lock = threading.Lock()
_system_default = MemoryRateLimiter()
# Clients given another clock (a FakeClock in tests) share a limiter that reads that clock.
_clock_defaults: dict[int, tuple[Clock, MemoryRateLimiter]] = {}


def default_limiter(clock: Clock | None = None) -> MemoryRateLimiter:
    """The process-wide limiter every client of a robot shares (one per clock)."""
    if clock is None or clock is SYSTEM_CLOCK:
        return _system_default
    with _defaults_lock:
        entry = _clock_defaults.get(id(clock))
        if entry is None or entry[0] is not clock:
            entry = (clock, MemoryRateLimiter(clock))
            _clock_defaults[id(clock)] = entry
        return entry[1]


def reset_default_limiters() -> None:
    """Empty the process-wide limiters (the test fixtures call this between tests)."""
    _system_default.reset()
    with _defaults_lock:
        _clock_defaults.clear()
