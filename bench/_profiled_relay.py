"""``python -m bench._profiled_relay OUT ARGS…``: the relay under cProfile on thread CPU clocks.

The event loop's thread is profiled on its own CPU clock (``time.thread_time``), so time the
outbox's threads spend does not count as the loop's; the outbox writer thread is profiled
the same way into ``OUT.writer``. SIGTERM stops the relay as usual and the stats are written.
"""

from __future__ import annotations

import cProfile
import sys
import threading
import time


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    from dingpush.relay.__main__ import main as relay_main

    profiles: list[tuple[str, cProfile.Profile]] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        if not self.name.startswith("dingpush-outbox-writer"):
            original(self)
            return
        profile = cProfile.Profile(time.thread_time)
        profiles.append((f"{out}.writer", profile))
        profile.runcall(original, self)

    threading.Thread.run = run  # type: ignore[method-assign]
    profile = cProfile.Profile(time.thread_time)
    try:
        return int(profile.runcall(relay_main, argv))
    finally:
        profile.dump_stats(out)
        for path, other in profiles:
            other.dump_stats(path)


if __name__ == "__main__":
    sys.exit(main())
