"""The relay's CPU per message, this checkout against another, in one run.

``python -m bench.relay_cpu [--base PYTHON] [--targets N] [--per-target N] [--window S]
[--profile DIR]`` starts the emulator, then for each relay (this checkout's interpreter and,
with ``--base``, another checkout's venv) posts ``targets × per-target`` messages through
``/v1/messages:batch`` and waits until every one is delivered; it reports the relay process's
CPU seconds (user + system, from ``/proc``) from the first post to the last delivery, split by
thread (the event loop, the outbox writer, the readers). The relays run one after the other on
the same emulator, pinned to the same CPU, so the ratio holds on a loaded machine. With
``--profile`` each relay runs under ``cProfile`` (event loop thread only) and its top functions
are printed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pstats
import sys
import time
from dataclasses import dataclass

from bench._emulator import EmulatorProcess
from bench._relay import BenchTarget, RelayProcess


@dataclass(frozen=True)
class CpuRun:
    python: str
    messages: int
    delivered: int
    cpu: float
    threads: dict[str, float]
    elapsed: float

    @property
    def per_message_ms(self) -> float:
        return self.cpu / max(self.delivered, 1) * 1000


def run_once(
    emulator: EmulatorProcess,
    python: str,
    *,
    targets: int,
    per_target: int,
    window: float,
    cpu: int | None = 0,
    profile: str | None = None,
) -> CpuRun:
    """Post ``targets × per_target`` messages to a fresh relay and wait until all are delivered."""
    emulator.reset()
    specs = [
        BenchTarget(f"t{i}", emulator.add_robot(f"t{i}", rate=(20, window)), rate=f"20/{window:g}s")
        for i in range(targets)
    ]
    total = targets * per_target
    with RelayProcess(specs, cpu=cpu, python=python, profile=profile) as relay:
        before = relay.thread_cpu()
        cpu_before = relay.cpu_seconds()
        started = time.monotonic()
        relay.post_spread(total, targets)
        relay.wait(
            lambda: sum(relay.delivered().values()) >= total, timeout=window * 3 + 600, every=2.0
        )
        elapsed = time.monotonic() - started
        used = relay.cpu_seconds() - cpu_before
        after = relay.thread_cpu()
        delivered = sum(relay.delivered().values())
    threads = {name: after[name] - before.get(name, 0.0) for name in after}
    return CpuRun(python, total, delivered, used, threads, elapsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_cpu")
    parser.add_argument("--base", help="the other checkout's python (its venv)")
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--per-target", type=int, default=40)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", help="a directory for cProfile stats")
    args = parser.parse_args(argv)
    pythons = [("branch", sys.executable)]
    if args.base:
        pythons.insert(0, ("base", args.base))
    with EmulatorProcess() as emulator:
        everywhere = os.sched_getaffinity(emulator.pid)
        os.sched_setaffinity(emulator.pid, {1})
        try:
            for round_ in range(args.rounds):
                for label, python in pythons:
                    profile = None
                    if args.profile:
                        profile = str(pathlib.Path(args.profile) / f"{label}-{round_}.prof")
                    result = run_once(
                        emulator,
                        python,
                        targets=args.targets,
                        per_target=args.per_target,
                        window=args.window,
                        profile=profile,
                    )
                    threads = ", ".join(
                        f"{name} {seconds:.2f}"
                        for name, seconds in sorted(result.threads.items())
                        if seconds
                    )
                    print(
                        f"{label}: {result.delivered}/{result.messages} delivered in "
                        f"{result.elapsed:.1f} s, CPU {result.cpu:.2f} s "
                        f"({result.per_message_ms:.3f} ms/message; {threads})",
                        flush=True,
                    )
                    for path in [] if profile is None else [profile, f"{profile}.writer"]:
                        if os.path.exists(path):
                            pstats.Stats(path).sort_stats("tottime").print_stats(30)
        finally:
            os.sched_setaffinity(emulator.pid, everywhere)
    return 0


if __name__ == "__main__":
    sys.exit(main())
