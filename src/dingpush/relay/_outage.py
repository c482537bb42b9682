"""Outages: a target failing for transient causes pauses its whole queue, and probes.

When a delivery fails for a transient cause (the network, a time-out, HTTP 5xx, DingTalk's -1),
the next message would most likely fail the same way. Sending the backlog anyway spends an
attempt of every queued message while DingTalk is down (a 15 s outage left 1,687 messages with
6-7 attempts each), so the target rests instead: after each failure it pauses for the retry
policy's back-off, doubling up to ``max_delay``, and then sends one message — the probe — while
its other workers wait. A probe that fails pauses it again; one that is delivered ends the
outage and the backlog drains at the target's pace (through coalescing where it is on).

Sans-I/O: the dispatcher asks :meth:`Outages.wait` before claiming and reports each result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dingpush import Clock, RetryPolicy
from dingpush.lowlevel import format_seconds

__all__ = ["Outage", "Outages"]

log = logging.getLogger("dingpush.relay")

#: How long a worker waits for a probe in flight before it looks again (a finished probe
#: wakes the target's workers at once).
PROBE_POLL = 1.0


@dataclass(slots=True)
class Outage:
    """A target that fails for transient causes, and when it may be tried again."""

    since: float  #: when the first failure of the outage was reported (epoch seconds)
    failures: int  #: transient failures in a row, probes included
    resume_at: float  #: when the next probe may go (epoch seconds)
    last_error: str  #: the last failure, in words (secrets masked)
    probing: bool = False  #: a probe is in flight

    def view(self) -> dict[str, object]:
        """The outage as ``/v1/targets`` shows it."""
        return {
            "since": self.since,
            "failures": self.failures,
            "next_probe_at": self.resume_at,
            "probing": self.probing,
            "last_error": self.last_error,
        }


class Outages:
    """The outages of a dispatcher's targets, by target name."""

    def __init__(self, policy: RetryPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self._current: dict[str, Outage] = {}

    def get(self, target: str) -> Outage | None:
        return self._current.get(target)

    def wait(self, target: str) -> float:
        """Seconds before ``target`` may claim; 0.0 to go (the probe itself, during an outage).

        A worker that gets 0.0 during an outage sends the probe: it must report the result
        with :meth:`failed`, :meth:`succeeded` or :meth:`abandoned`.
        """
        outage = self._current.get(target)
        if outage is None:
            return 0.0
        if outage.probing:
            return PROBE_POLL
        left = outage.resume_at - self.clock.time()
        if left > 0:
            return left
        outage.probing = True
        return 0.0

    def failed(self, target: str, error: str, *, rand: float | None = None) -> float:
        """A delivery to ``target`` failed for a transient cause; returns the pause it starts.

        ``rand`` is the jitter's draw (the message's own back-off uses the same one, so a
        target's only message is due again just when the target may send).
        """
        now = self.clock.time()
        outage = self._current.get(target)
        if outage is None:
            outage = self._current[target] = Outage(
                since=now, failures=0, resume_at=now, last_error=error
            )
        outage.failures += 1
        outage.probing = False
        outage.last_error = error
        pause = self.policy.pause(outage.failures, rand=rand)
        outage.resume_at = max(outage.resume_at, now + pause)
        log.warning(
            "target %s is failing (%s); %s its queue for %s, then one message tries again",
            target,
            error,
            "pausing" if outage.failures == 1 else f"after {outage.failures} failures, pausing",
            format_seconds(pause),
        )
        return outage.resume_at - now

    def succeeded(self, target: str) -> Outage | None:
        """A delivery to ``target`` went through: its outage, if any, is over (and returned)."""
        outage = self._current.pop(target, None)
        if outage is not None:
            log.info(
                "target %s is back after %s and %d failed attempts: its queue drains",
                target,
                format_seconds(self.clock.time() - outage.since),
                outage.failures,
            )
        return outage

    def abandoned(self, target: str) -> None:
        """The probe ended without telling (released, or a failure of another kind)."""
        outage = self._current.get(target)
        if outage is not None:
            outage.probing = False
