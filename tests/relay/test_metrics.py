"""``/metrics``: docs/relay.md's table lists exactly the metrics, and incidents are counted once."""

from __future__ import annotations

import pathlib
import re

import pytest

from dingpush.relay._metrics import CountedIncidents, Metrics
from dingpush.relay.stores import MemoryIncidentStore

pytestmark = pytest.mark.anyio

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "relay.md"


def _documented() -> dict[str, tuple[str, str]]:
    """The Metrics section's table: name → (type, labels)."""
    section = DOCS.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(dingpush_relay_\w+)` \| (\w+) \| ([^|]*) \|", section, re.M)
    return {name: (kind, labels.strip()) for name, kind, labels in rows}


def _exposed() -> dict[str, tuple[str, str]]:
    metrics = Metrics()
    metrics.count_labelled("incidents_acknowledged", "ops", "chat")  # a series shows its labels
    metrics.count_labelled("escalation_steps", "page", "ding")
    for name in ("incidents_opened", "incidents_silenced", "incidents_resolved"):
        metrics.count_labelled(name, "ops")
    text = metrics.render(["ops"], {"ops": 0})
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    found = {}
    for name, kind in types.items():
        sample = re.search(rf"^{name}(?:_bucket)?\{{([^}}]*)\}}", text, re.M)
        assert sample, name
        labels = [pair.split("=")[0] for pair in sample.group(1).split(",")]
        found[name] = (kind, ", ".join(f"`{label}`" for label in labels if label != "le"))
    return found


def test_the_docs_table_lists_exactly_the_metrics() -> None:
    assert _documented() == _exposed()


async def test_incident_transitions_are_counted_once_whoever_makes_them() -> None:
    metrics = Metrics()
    incidents = CountedIncidents(MemoryIncidentStore(), metrics)

    async def open_(group: str, now: float) -> int:
        incident = await incidents.open_incident(
            route="ops",
            group_key=group,
            title=group,
            labels={},
            policy=None,
            targets=["ops"],
            due_at=None,
            now=now,
        )
        return incident.number

    first = await open_("a", 10.0)
    assert await open_("a", 10.0) == first  # asked again for the same group at the same time
    assert await open_("a", 11.0) == first
    second = await open_("b", 12.0)
    assert metrics.labelled_value("incidents_opened", "ops") == 2

    await incidents.acknowledge(first, who="alice", via="chat", now=13.0)
    await incidents.acknowledge(first, who="bob", via="link", now=13.0)  # alice keeps it
    await incidents.silence(second, who="bob", detail="2h", now=14.0)
    await incidents.acknowledge(second, who="carol", via="dashboard", now=15.0)  # silenced
    assert metrics.labelled_value("incidents_acknowledged", "ops", "chat") == 1
    assert metrics.labelled_value("incidents_acknowledged", "ops", "link") == 0
    assert metrics.labelled_value("incidents_acknowledged", "ops", "dashboard") == 0
    assert metrics.labelled_value("incidents_silenced", "ops") == 1

    assert await incidents.resolve(route="ops", group_key="a", now=16.0) is not None
    assert await incidents.resolve(route="ops", group_key="a", now=17.0) is None
    assert await incidents.silence(first, who="bob", detail="1h", now=18.0)  # resolved stays
    assert metrics.labelled_value("incidents_resolved", "ops") == 1
    assert metrics.labelled_value("incidents_silenced", "ops") == 1
    text = metrics.render([], {})
    assert 'dingpush_relay_incidents_acknowledged_total{route="ops",via="chat"} 1' in text
