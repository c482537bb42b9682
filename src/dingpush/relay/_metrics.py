"""The relay's metrics, written in Prometheus' text exposition format (no client library).

Counters live in this process (they restart at zero, as Prometheus expects). Most are per
target, every configured target listed from the start; the on-call loop's are per route or
policy, a series appearing at its first count. The queue depth is read from the outbox at
scrape time, so it survives restarts. docs/relay.md's table of metrics lists every one (a test
compares them).
"""

from __future__ import annotations

import bisect
import collections
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from ._incidents import (
    ChatClaim,
    EventKind,
    Incident,
    IncidentState,
    IncidentStore,
    TimelineEvent,
)

__all__ = ["CountedIncidents", "Metrics"]

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
    "recalled": "Delivered messages and DINGs recalled through the relay (API, dashboard).",
    "cancelled": "Queued messages cancelled by a recall before they were sent.",
    "dings": "DINGs DingTalk accepted (an escalation step's).",
    "ding_fallbacks": "DINGs sent in-app after their SMS or phone DING failed.",
}

#: The on-call loop's counters: help text and label names (values as they come: route paths,
#: policy names, how an incident was acknowledged).
_LABELLED: dict[str, tuple[str, tuple[str, ...]]] = {
    "incidents_opened": ("Incidents opened by a firing notification.", ("route",)),
    "incidents_acknowledged": (
        "Incidents acknowledged, by how: chat, link, dashboard or api.",
        ("route", "via"),
    ),
    "incidents_silenced": ("Incidents silenced in Alertmanager from the chat.", ("route",)),
    "incidents_resolved": (
        "Incidents resolved: by a notification, or their alerts stopped while silenced.",
        ("route",),
    ),
    "escalation_steps": (
        "Escalation steps run: a DING or a message to another target.",
        ("policy", "action"),
    ),
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
        self._labelled: dict[str, defaultdict[tuple[str, ...], int]] = {
            name: defaultdict(int) for name in _LABELLED
        }

    def count(self, name: str, target: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name][target] += amount

    def value(self, name: str, target: str) -> int:
        with self._lock:
            return self._counts[name].get(target, 0)

    def count_labelled(self, name: str, *values: str) -> None:
        """Count one on an on-call counter (``_LABELLED``), its label values in order."""
        if len(values) != len(_LABELLED[name][1]):
            raise ValueError(f"{name} takes the labels {_LABELLED[name][1]}")
        with self._lock:
            self._labelled[name][values] += 1

    def labelled_value(self, name: str, *values: str) -> int:
        with self._lock:
            return self._labelled[name].get(values, 0)

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
            for name, (help_text, labels) in _LABELLED.items():
                metric = f"dingpush_relay_{name}_total"
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
                for values, value in sorted(self._labelled[name].items()):
                    pairs = ",".join(
                        f'{label}="{_escape(v)}"' for label, v in zip(labels, values, strict=True)
                    )
                    lines.append(f"{metric}{{{pairs}}} {value}")
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


class CountedIncidents:
    """The relay's incident store, counting the transitions ``/metrics`` shows.

    Every part of the on-call loop (alert receivers, escalation, chat commands, ack links, the
    API and dashboard) goes through ``Relay.incidents``, so wrapping it counts each opening,
    acknowledgement, silence and resolution once, whoever made it.
    """

    #: How many incident numbers are remembered as counted (``open_incident`` is asked twice
    #: for one alert group: before an ack link is signed, then as the messages are attached).
    REMEMBERED = 4096

    def __init__(self, store: IncidentStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._opened: collections.OrderedDict[int, None] = collections.OrderedDict()

    async def open_incident(
        self,
        *,
        route: str,
        group_key: str,
        title: str,
        labels: Mapping[str, str],
        policy: str | None,
        targets: Sequence[str],
        due_at: float | None,
        now: float,
    ) -> Incident:
        incident = await self.store.open_incident(
            route=route,
            group_key=group_key,
            title=title,
            labels=labels,
            policy=policy,
            targets=targets,
            due_at=due_at,
            now=now,
        )
        # Made by this call: only its OPENED event, at this call's time, and not seen before.
        fresh = (
            incident.opened_at == now
            and len(incident.timeline) == 1
            and incident.timeline[0].kind is EventKind.OPENED
        )
        if fresh and incident.number not in self._opened:
            self._opened[incident.number] = None
            if len(self._opened) > self.REMEMBERED:
                self._opened.popitem(last=False)
            self.metrics.count_labelled("incidents_opened", incident.route)
        return incident

    async def attach_messages(self, number: int, message_ids: Sequence[str]) -> Incident:
        return await self.store.attach_messages(number, message_ids)

    async def resolve(self, *, route: str, group_key: str, now: float) -> Incident | None:
        closed = await self.store.resolve(route=route, group_key=group_key, now=now)
        if closed is not None:
            self.metrics.count_labelled("incidents_resolved", closed.route)
        return closed

    async def acknowledge(self, number: int, *, who: str, via: str, now: float) -> Incident:
        before = await self.store.get(number)
        acked = await self.store.acknowledge(number, who=who, via=via, now=now)
        opened = before is not None and before.state is IncidentState.OPEN
        if opened and acked.state is IncidentState.ACKNOWLEDGED:  # this call took it
            self.metrics.count_labelled("incidents_acknowledged", acked.route, via)
        return acked

    async def silence(self, number: int, *, who: str, detail: str, now: float) -> Incident:
        silenced = await self.store.silence(number, who=who, detail=detail, now=now)
        if silenced.state is IncidentState.SILENCED:  # a resolved incident stays resolved
            self.metrics.count_labelled("incidents_silenced", silenced.route)
        return silenced

    async def record(self, number: int, event: TimelineEvent) -> Incident:
        return await self.store.record(number, event)

    async def get(self, number: int) -> Incident | None:
        return await self.store.get(number)

    async def find_by_message(self, message_id: str) -> Incident | None:
        return await self.store.find_by_message(message_id)

    async def list_incidents(
        self, *, states: Sequence[IncidentState] = (), target: str | None = None, limit: int = 100
    ) -> list[Incident]:
        return await self.store.list_incidents(states=states, target=target, limit=limit)

    async def claim_due(
        self, *, now: float, holder: str, lease: float, limit: int = 50
    ) -> list[Incident]:
        return await self.store.claim_due(now=now, holder=holder, lease=lease, limit=limit)

    async def advance(
        self,
        number: int,
        *,
        from_step: int,
        to_step: int,
        due_at: float | None,
        event: TimelineEvent,
    ) -> Incident | None:
        return await self.store.advance(
            number, from_step=from_step, to_step=to_step, due_at=due_at, event=event
        )

    async def claim_chat_message(self, key: str, *, now: float, ttl: float) -> ChatClaim:
        return await self.store.claim_chat_message(key, now=now, ttl=ttl)

    async def answer_chat_message(self, key: str, answer: str | None) -> None:
        await self.store.answer_chat_message(key, answer)
