"""Crash safety (``kill -9`` of a relay mid-dispatch) and a fault-injection soak.

Nothing here asserts a duration: loops wait for states, bounded so a broken relay fails the
test instead of hanging it.
"""

from __future__ import annotations

import pathlib

import httpx
import pytest

from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.testing import EmulatorServer

from ._support import RelayProcess, eventually, fast_settings, serving, text, wait_until

ROBOTS = ("a", "b", "c", "d")


def _config(path: pathlib.Path, emulator: EmulatorServer) -> pathlib.Path:
    lines = []
    for name in ROBOTS:
        lines += [
            f"[targets.{name}]",
            'kind = "robot"',
            f'webhook = "{emulator.webhook_url(name)}"',
            'rate = "100000/1s"',
            "",
        ]
    lines += [
        "[relay]",
        "port = 0",
        'store = "outbox.sqlite"',
        'lease = "2s"',
        'shutdown_deadline = "1s"',
        'retry = { base_delay = "10ms", max_delay = "100ms" }',
        "",
    ]
    for name in ROBOTS:
        lines += [f"[relay.targets.{name}]", "coalesce = false", ""]
    config = path / "dingpush.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_mid_dispatch_loses_nothing_and_shows_nothing_twice(
    tmp_path: pathlib.Path,
) -> None:
    with EmulatorServer() as emulator:
        for name in ROBOTS:
            emulator.add_robot(name, rate_limit=100_000, rate_window=1)
        config = _config(tmp_path, emulator)
        relay = RelayProcess(config)
        ids: list[str] = []
        try:
            with httpx.Client(base_url=relay.url, timeout=30) as http:
                for round_ in range(4):
                    batch = [
                        {"target": ROBOTS[i % 4], "message": text(f"message {round_}-{i}")}
                        for i in range(500)
                    ]
                    reply = http.post("/v1/messages:batch", json={"messages": batch})
                    assert reply.status_code == 202
                    ids += reply.json()["ids"]
            wait_until(lambda: len(emulator.emulator.messages()) >= 200, 60, "dispatch to start")
            relay.kill()  # mid-dispatch: messages in flight, most still queued
        finally:
            relay.stop()
        delivered_before = len(emulator.emulator.messages())
        assert delivered_before < 2000, "the relay finished before it could be killed"

        restarted = RelayProcess(config)
        try:
            wait_until(lambda: len(emulator.emulator.messages()) >= 2000, 120, "every delivery")
            with httpx.Client(base_url=restarted.url, timeout=30) as http:

                def all_settled() -> bool:
                    page = http.get("/v1/messages?status=queued&limit=1").json()["items"]
                    sending = http.get("/v1/messages?status=sending&limit=1").json()["items"]
                    return not page and not sending

                wait_until(all_settled, 60, "the outbox to settle")
                assert http.get("/v1/messages?status=failed").json()["items"] == []
        finally:
            restarted.stop()
        messages = emulator.emulator.messages()
        shown = [m.msg_uuid for m in messages]
        assert len(shown) == 2000 and len(set(shown)) == 2000  # none twice
        assert set(shown) == set(ids)  # none lost
        stats = emulator.emulator.stats()
        duplicates = sum(r.duplicates for r in stats.robots.values())
        # Re-sent after the crash and dropped by DingTalk's msgUuid check (a count, for the log).
        print(f"delivered before the kill: {delivered_before}; de-duplicated resends: {duplicates}")


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fault_soak_delivers_everything_once_and_dead_letters_the_revoked(
    dingtalk_emulator: EmulatorServer,
) -> None:
    emulator = dingtalk_emulator.emulator
    names = ("x", "y", "z")
    for name in names:
        # DingTalk's limit, shrunk 60x in time; the relay believes a little more: it trips it.
        dingtalk_emulator.add_robot(name, rate_limit=20, rate_window=1, lockout=2)
    revoked_url = dingtalk_emulator.webhook_url("x").replace(emulator.robot("x").token, "f" * 64)
    for kind, probability, extra in (
        ("http500", 0.10, {}),
        ("drop", 0.05, {"after_accept": True}),
        ("errcode", 0.05, {"errcode": -1}),
    ):
        emulator.inject_fault(kind, count=None, probability=probability, seed=7, **extra)  # type: ignore[arg-type]
    options = TargetOptions(coalesce=False)
    targets = [
        RobotTarget(n, dingtalk_emulator.webhook_url(n), rate="25/1s", cooldown=2, options=options)
        for n in names
    ]
    targets.append(RobotTarget("revoked", revoked_url, options=options))
    relay = Relay(targets, settings=fast_settings())
    async with serving(relay) as api:
        batch = [{"target": names[i % 3], "message": text(f"soak {i}")} for i in range(300)]
        ids = (await api.post("/v1/messages:batch", json={"messages": batch})).json()["ids"]
        dead = (
            await api.post("/v1/messages", json={"target": "revoked", "message": text("?")})
        ).json()["id"]

        async def settled() -> bool:
            for status in ("queued", "sending"):
                if (await api.get(f"/v1/messages?status={status}&limit=1")).json()["items"]:
                    return False
            return True

        await eventually(settled, timeout=180, what="the soak to settle")
        failed = (await api.get("/v1/messages?status=failed")).json()["items"]
        assert [m["id"] for m in failed] == [dead]
        assert failed[0]["last_errcode"] == 300001
        assert "token" in failed[0]["last_error"]
        metrics = (await api.get("/metrics")).text
    shown = [m.msg_uuid or "" for m in emulator.messages()]
    assert sorted(shown) == sorted(ids)  # every message, each shown once
    stats = emulator.stats()
    assert sum(r.rejected.get("fault", 0) for r in stats.robots.values()) > 0
    assert any(relay.metrics.value("throttled", n) for n in names)  # throttles were met
    assert any(relay.metrics.value("retries", n) for n in names)
    assert 'dingpush_relay_failed_total{target="revoked"} 1' in metrics
