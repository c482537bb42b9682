"""The relay's metrics, written in Prometheus' text exposition format (no client library).

Counters are per target and live in this process (they restart at zero, as Prometheus
expects); the queue depth is read from the outbox at scrape time, so it survives restarts.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["Metrics"]

#: Delivery latency buckets (seconds from accepted to delivered): from a quick send to a
#: message that waited out a ten-minute cool-down and more.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

_COUNTERS = {
    "accepted": "Messages committed to the outbox (202 or errcode 0 answered).",
    "delivered": "Messages DingTalk accepted (a digest counts once).",
    "failed": "Messages that became dead letters.",
    "digested": "Original messages merged into a digest.",
    "digests": "Digest messages made by coalescing.",
    "throttled": "Throttle replies from DingTalk (130101/410100 and the platform's QPS limits).",
    "retries": "Delivery attempts that failed and were scheduled again.",
    "alerts": "Alerts the alert receivers turned into messages (per target).",
    "alert_render_failures": "Messages rendered with the builtin template after theirs failed.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters and a latency histogram, per target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, defaultdict[str, int]] = {
            name: defaultdict(int) for name in _COUNTERS
        }
        self._buckets: defaultdict[str, list[int]] = defaultdict(
            lambda: [0] * (len(LATENCY_BUCKETS) + 1)
        )
        self._sums: defaultdict[str, float] = defaultdict(float)

    def count(self, name: str, target: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name][target] += amount

    def value(self, name: str, target: str) -> int:
        with self._lock:
            return self._counts[name].get(target, 0)

    def observe_latency(self, target: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        with self._lock:
            self._buckets[target][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._sums[target] += seconds

    def render(self, targets: Iterable[str], queue_depth: Mapping[str, int]) -> str:
        """The exposition text: every counter for every target, depths, the histogram."""
        names = sorted(set(targets) | set(queue_depth))
        lines: list[str] = []
        with self._lock:
            for name, help_text in _COUNTERS.items():
                metric = f"dingpush_relay_{name}_total"
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
                for target in names:
                    value = self._counts[name].get(target, 0)
                    lines.append(f'{metric}{{target="{_escape(target)}"}} {value}')
            lines += self._histogram(names)
        metric = "dingpush_relay_queue_depth"
        lines += [
            f"# HELP {metric} Messages queued or in flight, from the outbox.",
            f"# TYPE {metric} gauge",
        ]
        for target in names:
            lines.append(f'{metric}{{target="{_escape(target)}"}} {queue_depth.get(target, 0)}')
        return "\n".join(lines) + "\n"

    def _histogram(self, names: list[str]) -> list[str]:
        metric = "dingpush_relay_delivery_latency_seconds"
        lines = [
            f"# HELP {metric} Seconds from accepting a message to DingTalk accepting it.",
            f"# TYPE {metric} histogram",
        ]
        for target in names:
            label = _escape(target)
            buckets = self._buckets.get(target) or [0] * (len(LATENCY_BUCKETS) + 1)
            running = 0
            for bound, count in zip(LATENCY_BUCKETS, buckets, strict=False):
                running += count
                lines.append(f'{metric}_bucket{{target="{label}",le="{bound:g}"}} {running}')
            running += buckets[-1]
            lines.append(f'{metric}_bucket{{target="{label}",le="+Inf"}} {running}')
            lines.append(f'{metric}_sum{{target="{label}"}} {self._sums.get(target, 0.0):.6f}')
            lines.append(f'{metric}_count{{target="{label}"}} {running}')
        return lines
