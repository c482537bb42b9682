"""A real Alertmanager (Debian's prometheus-alertmanager) notifying the relay's receiver, which
delivers to the emulator: firing then resolved, its own retries across a relay outage, and a
500-alert storm that arrives as digests without one throttle reply."""

from __future__ import annotations

import pathlib
import time
import typing

import pytest
from bench._alertmanager import Alertmanager, alert, free_port

from dingpush.alerts import AlertSettings, Route
from dingpush.relay import AlertReceivers, Relay, RelayServer, RelaySettings, RobotTarget
from dingpush.testing import EmulatorServer

#: A real Alertmanager takes seconds (group_wait, its retry back-off): `make test` runs these.
pytestmark = pytest.mark.slow

ROBOT_TOKEN = "robot-token-alertmanager-0123456789"


def _wait(check: typing.Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def _relay(
    emulator: EmulatorServer, port: int, *, window: float = 60.0, coalesce_after: float = 60.0
) -> Relay:
    settings = AlertSettings(routes={"ops": Route(targets=["ops"])})
    return Relay(
        [RobotTarget("ops", emulator.webhook_url("ops"), rate=f"20/{window:g}s")],
        settings=RelaySettings(port=port, coalesce_after=coalesce_after, idle_poll=0.2),
        alerts=AlertReceivers(settings),
    )


def _texts(emulator: EmulatorServer) -> list[str]:
    return [
        m.payload["markdown"]["title"] + "\n" + m.payload["markdown"]["text"]
        if m.msgtype == "markdown"
        else str(m.payload)
        for m in emulator.emulator.messages(robot="ops")
    ]


def test_firing_then_resolved_from_a_real_alertmanager(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    dingtalk_emulator.add_robot("ops", ROBOT_TOKEN)
    port = free_port()
    url = f"http://127.0.0.1:{port}/alertmanager/ops"
    with (
        RelayServer(_relay(dingtalk_emulator, port)),
        Alertmanager(tmp_path / "am", url) as am,
    ):
        labels = {"severity": "critical", "instance": "db-01:9100"}
        am.fire([alert("DiskFull", labels)])
        _wait(lambda: len(_texts(dingtalk_emulator)) >= 1, "the firing message")
        (firing,) = _texts(dingtalk_emulator)
        assert "FIRING" in firing and "DiskFull" in firing and "db-01:9100" in firing
        am.fire([alert("DiskFull", labels, ends=time.time() - 1)])
        _wait(lambda: len(_texts(dingtalk_emulator)) >= 2, "the resolved message", 90)
        resolved = _texts(dingtalk_emulator)[1]
        assert "RESOLVED" in resolved and "DiskFull" in resolved


def test_alertmanager_retries_deliver_once_the_relay_is_back(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    dingtalk_emulator.add_robot("ops", ROBOT_TOKEN)
    port = free_port()
    url = f"http://127.0.0.1:{port}/alertmanager/ops"
    with Alertmanager(tmp_path / "am", url) as am:
        am.fire([alert("BackupLate", {"instance": "backup-01"})])
        failed = "alertmanager_notifications_failed_total"
        _wait(lambda: am.metric(failed) >= 1, "a failed notification while the relay is down")
        assert _texts(dingtalk_emulator) == []
        with RelayServer(_relay(dingtalk_emulator, port)):
            _wait(lambda: len(_texts(dingtalk_emulator)) >= 1, "delivery after the outage", 90)
        (shown,) = _texts(dingtalk_emulator)
        assert "BackupLate" in shown and "backup-01" in shown


def test_a_500_alert_storm_arrives_as_digests_without_throttle_replies(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    # The robot's limit, shrunk: 20 messages per 3 s at both ends (the logic is the same).
    dingtalk_emulator.add_robot("ops", ROBOT_TOKEN, rate_window=3.0)
    port = free_port()
    url = f"http://127.0.0.1:{port}/alertmanager/ops"
    relay = _relay(dingtalk_emulator, port, window=3.0, coalesce_after=0.5)
    names = [f"Storm{index:03d}" for index in range(500)]
    with (
        RelayServer(relay),
        Alertmanager(tmp_path / "am", url, group_by=("alertname",)) as am,
    ):
        am.fire([alert(name, {"instance": f"web-{i % 7}"}) for i, name in enumerate(names)])

        def all_shown() -> bool:
            shown = "\n".join(_texts(dingtalk_emulator))
            return all(name in shown for name in names)

        _wait(all_shown, "all 500 alerts at the emulator", 110)
        messages = dingtalk_emulator.emulator.messages(robot="ops")
        assert len(messages) < 500  # merged into digests
        assert relay.metrics.value("digests", "ops") >= 1
        refused = dingtalk_emulator.emulator.requests(robot="ops", accepted=False)
        assert [r.errcode for r in refused] == []
