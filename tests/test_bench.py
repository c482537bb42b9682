"""The benchmark harness runs end to end in quick mode and writes its tables (never timed)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_quick_mode_writes_every_scenario_table(tmp_path: pathlib.Path) -> None:
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=460,
    )
    assert run.returncode == 0, run.stderr
    report = output.read_text(encoding="utf-8")
    assert report.startswith("# Benchmarks")
    assert "CPU:" in report and "Python " in report and "DingtalkChatbot 1.5.7" in report
    for title in ("Raw send throughput", "Burst of", "into a pool of 5 robots", "Signed robot"):
        assert f"## {title}" in report or title in report
    # five delivery tables, the async transport's, the relay burst and Stream mode's
    assert report.count("| client |") == 8
    assert "## The async transport: AsyncRobot against the alternatives" in report
    assert "dingpush's `AsyncioTransport` (the default)" in report
    assert "## Outbox ingest (relay)" in report
    assert "## Relay ingest over HTTP" in report and "raw `sqlite3`" in report
    assert "through the relay" in report and "coalescing off" in report
    assert "targets at their limit, one relay process on one core" in report
    assert "## Alert rendering and routing (the relay's Alertmanager receiver)" in report
    assert "## Alertmanager ingest over HTTP (relay)" in report
    assert "`POST /v1/messages` (peer, same run)" in report
    assert "-alert storm from a real Alertmanager, through the relay" in report
    assert "## Several relays on PostgreSQL: ingest over HTTP" in report
    assert "across 3 relays on PostgreSQL" in report and "## Failover: kill -9" in report
    assert "## CLI cold start" in report
    assert "## Stream mode: reconnect and chat → handler → reply" in report
    assert "dingpush StreamClient" in report
    assert "## On call: from the policy's deadline to the DING" in report
    for peer in ("DingtalkChatbot 1.5.7", "apprise", "plain `requests.Session` loop"):
        assert peer in report


def test_scenarios_are_registered_for_other_issues_to_extend() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0
    assert run.stdout.split() == [
        "raw",
        "transport",
        "raw-latency",
        "burst",
        "pool",
        "signed",
        "ingest",
        "relay-ingest",
        "relay-burst",
        "relay-targets",
        "alert-render",
        "fleet-ingest",
        "relay-cpu",
        "alert-ingest",
        "fleet-dispatch",
        "alert-storm",
        "fleet-failover",
        "cli-cold-start",
        "stream",
        "oncall-escalation",
        "oncall-ack",
    ]
