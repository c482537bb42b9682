"""Where a worker's CPU goes, by layer: cProfile on a CPU clock, folded into a few lines.

A function is counted in the layer its file belongs to (dingpush's transport, the rest of
dingpush, httpx, the event loop, system calls on sockets); anything else (the standard library,
built-ins) in the layer of the caller that spent most on it, so that ``http.cookiejar`` called
by httpx counts as httpx. Proportions only: profiling slows small functions more than large.
"""

from __future__ import annotations

import cProfile
import pstats
import time
import typing

#: (substring of a file name or built-in's name, layer), first match wins.
LAYERS = (
    ("dingpush/_transports/", "dingpush's transport"),
    ("/httpx/", "httpx's client layer (request, headers, URL, cookies, response)"),
    ("/httpcore/", "httpcore"),
    ("/aiohttp/", "aiohttp"),
    ("/dingpush/", "dingpush's delivery (engine, limiter, robot, message, reply)"),
    ("_socket.socket", "socket system calls (send, recv)"),
    ("epoll", "the event loop (asyncio, epoll)"),
    ("select.select", "the event loop (asyncio, epoll)"),
    ("/asyncio/", "the event loop (asyncio, epoll)"),
    ("selectors.py", "the event loop (asyncio, epoll)"),
)
OTHER = "other"

Func = tuple[str, int, str]


def profiler() -> cProfile.Profile:
    """A profiler on the process's CPU clock: time spent waiting for the server is not CPU."""
    return cProfile.Profile(time.process_time)


def layers(
    profile: cProfile.Profile | str, table: typing.Sequence[tuple[str, str]] = LAYERS
) -> dict[str, float]:
    """CPU seconds by layer (``table``: (substring, layer), first match wins); ``profile``
    may be a stats file."""
    raw: typing.Any = pstats.Stats(profile)
    stats: dict[Func, tuple[int, int, float, float, dict[Func, typing.Any]]] = raw.stats
    memo: dict[Func, str] = {}

    def layer(func: Func, seen: frozenset[Func] = frozenset()) -> str:
        if func in memo:
            return memo[func]
        where = f"{func[0]}:{func[2]}"
        for needle, name in table:
            if needle in where:
                memo[func] = name
                return name
        callers = stats.get(func, (0, 0, 0.0, 0.0, {}))[4]
        candidates = [(t[3], c) for c, t in callers.items() if c not in seen and c != func]
        if not candidates:
            return OTHER
        _, caller = max(candidates)
        result = layer(caller, seen | {func})
        memo[func] = result
        return result

    totals: dict[str, float] = {}
    for func, (_, _, own, _, _) in stats.items():
        name = layer(func)
        totals[name] = totals.get(name, 0.0) + own
    return totals
