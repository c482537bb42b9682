"""The relay's CPU per message in the 500-target scenario, against another checkout's relay.

Set ``BENCH_BASE_PYTHON`` to another checkout's interpreter (its venv's ``bin/python``, e.g.
old main in a ``git worktree``) to run its relay in the same run, interleaved; without it only
this checkout's relay is measured.
"""

from __future__ import annotations

import os
import pathlib
import pstats
import sys
import tempfile

from bench import Context, Section, scenario
from bench.profile import layers
from bench.relay_cpu import CpuRun, run_once

#: Where the relay's event loop spends its CPU, by file or function (first match wins).
RELAY_LAYERS = (
    ("<module>", "start-up"),
    ("relay/_api.py:metrics", "`/metrics` (the bench's own polling)"),
    ("relay/_metrics.py", "`/metrics` (the bench's own polling)"),
    ("_messages/", "messages: parse and encode (`parse_message`, JSON)"),
    ("/logging/", "the delivery log line (logging, redaction)"),
    ("_masking.py", "the delivery log line (logging, redaction)"),
    ("dingpush/_transports/", "dingpush's HTTP transport"),
    ("dingpush/_robot/", "the robot client and delivery engine (`AsyncRobot.send`)"),
    ("dingpush/_engine/", "the robot client and delivery engine (`AsyncRobot.send`)"),
    ("relay/stores/", "outbox calls on the event loop (futures)"),
    ("/uvicorn/", "HTTP ingest (uvicorn, starlette, the API's checks)"),
    ("/starlette/", "HTTP ingest (uvicorn, starlette, the API's checks)"),
    ("relay/_api.py", "HTTP ingest (uvicorn, starlette, the API's checks)"),
    ("relay/_http.py", "HTTP ingest (uvicorn, starlette, the API's checks)"),
    ("relay/_dispatcher.py", "the dispatcher (claim, settle, timers)"),
    ("relay/_targets.py", "the dispatcher (claim, settle, timers)"),
    ("/asyncio/", "the event loop (asyncio, epoll)"),
    ("select.epoll", "the event loop (asyncio, epoll)"),
    ("/httpx/", "httpx"),
)


@scenario("relay-cpu", order=54)
def relay_cpu(context: Context) -> Section:
    """CPU per message accepted and delivered, this relay beside BENCH_BASE_PYTHON's."""
    targets, window, rounds = (50, 2.0, 1) if context.quick else (500, 10.0, 3)
    per_target = 40
    base = os.environ.get("BENCH_BASE_PYTHON")
    pythons = [("this checkout", sys.executable)]
    if base:
        pythons.insert(0, (f"base (`{base}`)", base))
    runs: dict[str, list[CpuRun]] = {label: [] for label, _ in pythons}
    everywhere = os.sched_getaffinity(context.emulator.pid)
    os.sched_setaffinity(context.emulator.pid, {1})  # the relay has CPU 0 to itself
    try:
        for _ in range(rounds):
            for label, python in pythons:
                runs[label].append(
                    run_once(
                        context.emulator,
                        python,
                        targets=targets,
                        per_target=per_target,
                        window=window,
                    )
                )
        with tempfile.TemporaryDirectory() as folder:
            stats = str(pathlib.Path(folder) / "relay.prof")
            run_once(
                context.emulator,
                sys.executable,
                targets=targets,
                per_target=per_target,
                window=window,
                profile=stats,
            )
            loop = _loop_layers(stats)
            writer = pstats.Stats(f"{stats}.writer").total_tt  # type: ignore[attr-defined]
    finally:
        os.sched_setaffinity(context.emulator.pid, everywhere)
    return _section(runs, targets, per_target, window, rounds, loop, writer)


def _loop_layers(stats: str) -> dict[str, float]:
    folded = layers(stats, RELAY_LAYERS)
    for left_out in ("other", "start-up"):  # imports, configuration, the interpreter's own
        folded.pop(left_out, None)
    return folded


def _section(
    runs: dict[str, list[CpuRun]],
    targets: int,
    per_target: int,
    window: float,
    rounds: int,
    loop: dict[str, float],
    writer: float,
) -> Section:
    total = targets * per_target
    section = Section(
        "Relay CPU per message (500 targets)" if targets == 500 else "Relay CPU per message",
        f"{targets} robots at 20/{window:g} s, {per_target} messages each ({total:,} in all) "
        "posted through `/v1/messages:batch` to a relay pinned to one CPU (SQLite outbox, "
        "coalescing off), until every one is delivered. CPU is the relay process's user + "
        "system time from the first post to the last delivery (`/proc`), split by thread: "
        "the event loop, the outbox's writer and readers. Windows are shortened to "
        f"{window:g} s so that a run takes seconds; per message the work is the same as at "
        "60 s. CPU time, not wall time, and the checkouts interleaved in one run: on a "
        "shared machine that is what stays comparable. Median of "
        f"{rounds} round(s).",
        [
            "relay",
            "delivered",
            "CPU s",
            "ms per message",
            "event loop s",
            "other threads s",
            "runs ms/msg",
        ],
    )
    medians: dict[str, float] = {}
    threads: dict[str, tuple[float, float]] = {}
    for label, results in runs.items():
        middle = sorted(results, key=lambda r: r.per_message_ms)[len(results) // 2]
        medians[label] = middle.per_message_ms
        main = middle.threads.get("main", 0.0)
        threads[label] = (main, sum(middle.threads.values()) - main)
        section.rows.append(
            [
                label,
                f"{middle.delivered}/{middle.messages}",
                f"{middle.cpu:.2f}",
                f"{middle.per_message_ms:.3f}",
                f"{main:.2f}",
                f"{sum(middle.threads.values()) - main:.2f}",
                ", ".join(f"{r.per_message_ms:.3f}" for r in results),
            ]
        )
    if len(medians) == 2:
        base, this = medians.values()
        (base_loop, base_other), (loop_s, other_s) = threads.values()
        section.notes.append(
            f"Target (issue 17): at most half of old main's CPU per message on the same "
            f"machine — measured {this / base:.2f}× ({this:.3f} against {base:.3f} ms)"
            + ("." if this <= base / 2 else f", short by {this / (base / 2):.2f}×.")
            + f" By thread: the event loop's CPU is {loop_s / max(base_loop, 1e-9):.2f}× old "
            f"main's, the outbox's threads' {other_s / max(base_other, 1e-9):.2f}×: what is "
            "left is mostly SQLite's own statements (a claim, and a delivery's read, attempt "
            "row and update, each touching the outbox's indexes), already group-committed."
        )
    share = sum(loop.values()) or 1.0
    breakdown = "; ".join(
        f"{name} {seconds / share:.0%}"
        for name, seconds in sorted(loop.items(), key=lambda x: -x[1])
    )
    section.notes.append(
        "Where this checkout's event loop spends it (one more run under cProfile on the "
        f"thread's CPU clock; proportions only, profiling slows small functions most): {breakdown}."
    )
    section.notes.append(
        f"The outbox writer thread (claims, deliveries, inserts, in group commits) took "
        f"{writer:.1f} s of profiled CPU beside the loop's {share:.1f} s; most of it is in "
        "SQLite's own statements."
    )
    return section
