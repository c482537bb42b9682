"""``python -m bench.worker SPEC``: run one tool in this process and report as JSON lines.

Each line is ``{"i": index, "ok": bool, "t": seconds since the first send}``; the last is
``{"done": true, "elapsed": seconds, "cpu": seconds}`` (the process's CPU time from the first
send on). With ``profile`` set, a ``{"profile": {layer: seconds}}`` line comes before it
(bench/profile.py). Lines are flushed as they come when ``stream`` is set, so the runner can
stop a tool that sleeps past the scenario's cap and still know what it did.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from ._tools import TOOLS
from .profile import layers, profiler


def main() -> int:
    spec = json.loads(sys.argv[1])
    logging.disable(logging.WARNING)  # peers log every refusal; the emulator counts them
    recorder = Recorder(stream=bool(spec.get("stream")), profile=bool(spec.get("profile")))
    TOOLS[spec["tool"]](spec, recorder)
    recorder.finish()
    return 0


class Recorder:
    """Times a run from ``begin()`` and records each message's outcome."""

    def __init__(self, *, stream: bool, profile: bool = False) -> None:
        self.stream = stream
        self.profiler = profiler() if profile else None
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.start = time.perf_counter()
        self.cpu = time.process_time()

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.cpu = time.process_time()
        if self.profiler is not None:  # the sends only: not the imports, not the set-up
            self.profiler.enable()
        if self.stream:  # the runner's cap counts from here, not from interpreter start-up
            sys.stdout.write(json.dumps({"begin": True}) + "\n")
            sys.stdout.flush()

    def __call__(self, index: int, ok: bool) -> None:
        line = json.dumps({"i": index, "ok": ok, "t": time.perf_counter() - self.start})
        with self.lock:
            if self.stream:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            else:
                self.lines.append(line)

    def finish(self) -> None:
        elapsed, cpu = time.perf_counter() - self.start, time.process_time() - self.cpu
        if self.profiler is not None:
            self.profiler.disable()
            self.lines.append(json.dumps({"profile": layers(self.profiler)}))
        self.lines.append(json.dumps({"done": True, "elapsed": elapsed, "cpu": cpu}))
        sys.stdout.write("\n".join(self.lines) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
