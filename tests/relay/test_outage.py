"""A target down for transient causes: its queue rests, one probe at a time, nothing dies early.

Time is a ``FakeClock`` the tests move: an outage of hours takes milliseconds, and the relay's
real back-off (1 s doubling to 10 minutes) and horizon (24 h) are what is exercised.
"""

from __future__ import annotations

import logging
import typing

import httpx
import pytest

from dingpush.relay import Relay, RelaySettings, RobotTarget, TargetOptions
from dingpush.relay._outage import PROBE_POLL, Outages
from dingpush.relay._settings import RELAY_RETRY
from dingpush.relay.stores import OutboxMessage, OutboxStore, Status
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, serving, text

pytestmark = pytest.mark.anyio


# -- the bookkeeping on its own -----------------------------------------------------------------


def test_a_failing_target_rests_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    outages = Outages(RELAY_RETRY, clock)
    assert outages.wait("ops") == 0.0 and outages.get("ops") is None  # up: go
    assert outages.failed("ops", "TransportError: refused") == pytest.approx(1.0, abs=0.25)
    assert 0 < outages.wait("ops") <= 1.25  # resting: nobody claims
    clock.advance(1.25)
    assert outages.wait("ops") == 0.0  # the probe
    assert outages.wait("ops") == PROBE_POLL  # the other workers wait for it
    assert outages.failed("ops", "TransportError: refused") == pytest.approx(2.0, abs=0.5)
    outage = outages.get("ops")
    assert outage is not None and (outage.failures, outage.probing) == (2, False)
    for _ in range(20):  # doubling up to the policy's max_delay, however long it lasts
        clock.advance(outages.wait("ops"))
        assert outages.wait("ops") == 0.0
        pause = outages.failed("ops", "TransportError: refused")
    assert pause == pytest.approx(600.0)
    clock.advance(pause)
    assert outages.wait("ops") == 0.0
    outages.abandoned("ops")  # the probe found nothing to send: the next one may go
    assert outages.wait("ops") == 0.0
    ended = outages.succeeded("ops")
    assert ended is not None and ended.failures == 22
    assert outages.get("ops") is None and outages.wait("ops") == 0.0


# -- through the relay, against the emulator ----------------------------------------------------


def _relay(
    emulator: EmulatorServer,
    clock: FakeClock,
    *,
    rate: str = "100000/1s",
    coalesce: bool = False,
    concurrency: int = 1,
    **settings: typing.Any,
) -> Relay:
    emulator.add_robot("ops", rate_limit=100_000, rate_window=1)
    options = TargetOptions(coalesce=coalesce, concurrency=concurrency)
    target = RobotTarget("ops", emulator.webhook_url("ops"), rate=rate, options=options)
    # The relay's own back-off and horizon: only the clock is fake.
    values: dict[str, typing.Any] = {
        "idle_poll": 0.05,
        "lease": 3600.0,
        "allowed_hosts": ("relay",),  # the in-process client's base URL, http://relay
        **settings,
    }
    return Relay([target], settings=RelaySettings(**values), clock=clock)


async def _enqueue(api: httpx.AsyncClient, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        batch = [
            {"target": "ops", "message": text(f"alert {len(ids) + i}")}
            for i in range(min(1000, count - len(ids)))
        ]
        reply = await api.post("/v1/messages:batch", json={"messages": batch})
        assert reply.status_code == 202, reply.text
        ids += reply.json()["ids"]
    return ids


async def _outage(api: httpx.AsyncClient) -> dict[str, typing.Any] | None:
    (view,) = (await api.get("/v1/targets")).json()["targets"]
    return typing.cast("dict[str, typing.Any] | None", view["outage"])


async def _until_probe(
    api: httpx.AsyncClient, clock: FakeClock, outage: dict[str, typing.Any]
) -> None:
    """Move the clock to when the next probe goes: the target's rest over, a message due."""
    (view,) = (await api.get("/v1/targets")).json()["targets"]
    when = max(outage["next_probe_at"], view["oldest_due"] or 0.0)
    clock.advance(max(when - clock.time(), 0.0) + 0.001)


async def _ride_out(api: httpx.AsyncClient, relay: Relay, clock: FakeClock, seconds: float) -> int:
    """Let ``seconds`` of fake time pass in an outage, one probe after each rest; the probes."""

    async def down() -> bool:
        return await _outage(api) is not None

    async def backlog() -> int:
        figures = (await relay.store.stats()).targets.get("ops")
        return 0 if figures is None else figures.backlog

    await eventually(down, what="the target to be seen failing")
    start = clock.time()
    probes = 0
    while await backlog():  # a message that gave up leaves nothing to probe with
        outage = await _outage(api)
        assert outage is not None and not outage["probing"]
        if outage["next_probe_at"] > start + seconds:
            return probes
        await _until_probe(api, clock, outage)
        relay.dispatcher.kick("ops")
        failures = outage["failures"]

        async def probed(failures: int = failures) -> bool:
            current = await _outage(api)
            if current is None or current["probing"]:
                return False
            return current["failures"] > failures or not await backlog()

        await eventually(probed, what="the next probe")
        probes += 1
    return probes


async def _heal(
    api: httpx.AsyncClient, relay: Relay, clock: FakeClock, emulator: EmulatorServer
) -> None:
    emulator.emulator.clear_faults()
    outage = await _outage(api)
    assert outage is not None
    await _until_probe(api, clock, outage)
    relay.dispatcher.kick("ops")

    async def up() -> bool:
        return await _outage(api) is None

    await eventually(up, what="the probe to get through")


async def _drained(store: OutboxStore) -> None:
    async def done() -> bool:
        stats = await store.stats()
        figures = stats.targets.get("ops")
        return figures is not None and figures.backlog == 0

    await eventually(done, timeout=60, what="the backlog to drain")


async def _all(store: OutboxStore) -> list[OutboxMessage]:
    found: list[OutboxMessage] = []
    cursor: str | None = None
    while True:
        page = await store.list_messages(limit=500, cursor=cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_a_short_outage_costs_queued_messages_no_attempts(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # Before: every queued message burnt its own attempts while DingTalk was down (a 15 s
    # outage left 1,687 messages with 6-7 attempts each). Now the target rests and probes.
    clock = FakeClock()
    relay = _relay(dingtalk_emulator, clock, concurrency=2)
    emulator = dingtalk_emulator.emulator
    emulator.inject_fault("http500", count=None)
    async with serving(relay) as api:
        ids = await _enqueue(api, 1000)
        probes = await _ride_out(api, relay, clock, 15.0)
        await _heal(api, relay, clock, dingtalk_emulator)
        await _drained(relay.store)
        messages = await _all(relay.store)
    assert len(messages) == 1000 and {m.status for m in messages} == {Status.DELIVERED}
    failed_attempts = [m.attempts - 1 for m in messages]  # the last attempt delivered it
    assert max(failed_attempts) <= 1  # 0-1 attempts spent in the outage, not 6-7
    refused = emulator.stats().robots["ops"].rejected.get("fault", 0)
    assert refused == sum(failed_attempts) <= probes + 2  # the probes (and what was in flight)
    assert probes <= 5  # 1 s, 2 s, 4 s, 8 s of rest fill 15 s
    assert sorted(m.msg_uuid or "" for m in emulator.messages()) == sorted(ids)


async def test_an_outage_longer_than_the_old_horizon_makes_no_dead_letter(
    dingtalk_emulator: EmulatorServer,
) -> None:
    # The old policy gave up after 12 attempts, ~29 minutes of back-off; now 24 h is the horizon.
    clock = FakeClock()
    relay = _relay(dingtalk_emulator, clock)
    emulator = dingtalk_emulator.emulator
    emulator.inject_fault("errcode", errcode=-1, count=None)  # DingTalk "busy" for three hours
    async with serving(relay) as api:
        ids = await _enqueue(api, 50)
        probes = await _ride_out(api, relay, clock, 3 * 3600.0)
        assert 20 <= probes <= 30  # ten doublings to 10 minutes, then one every 10 minutes
        assert (await api.get("/v1/messages?status=failed")).json()["items"] == []
        await _heal(api, relay, clock, dingtalk_emulator)
        await _drained(relay.store)
        messages = await _all(relay.store)
    assert {m.status for m in messages} == {Status.DELIVERED}
    assert sorted(m.msg_uuid or "" for m in emulator.messages()) == sorted(ids)
    assert max(m.attempts for m in messages) <= 2


async def test_past_give_up_after_a_failing_message_becomes_a_dead_letter(
    dingtalk_emulator: EmulatorServer,
) -> None:
    clock = FakeClock()
    relay = _relay(dingtalk_emulator, clock, give_up_after=600.0)
    dingtalk_emulator.emulator.inject_fault("http500", count=None)
    async with serving(relay) as api:
        (message_id,) = await _enqueue(api, 1)
        await _ride_out(api, relay, clock, 900.0)
        detail = (await api.get(f"/v1/messages/{message_id}")).json()
    assert detail["status"] == "failed"
    assert "give_up_after = 10 min" in detail["last_error"]
    assert "ProtocolError" in detail["last_error"]
    assert all(a["outcome"] == "retry" for a in detail["attempt_history"][:-1])
    finished = [a["finished_at"] for a in detail["attempt_history"]]
    assert finished[-1] - finished[0] <= 600  # the last try came within the horizon


async def test_after_the_outage_the_backlog_drains_through_digests(
    dingtalk_emulator: EmulatorServer,
) -> None:
    clock = FakeClock()
    relay = _relay(dingtalk_emulator, clock, rate="20/60s", coalesce=True, coalesce_after=60.0)
    emulator = dingtalk_emulator.emulator
    emulator.inject_fault("http500", count=None)
    async with serving(relay) as api:
        await _enqueue(api, 300)
        await _ride_out(api, relay, clock, 60.0)
        await _heal(api, relay, clock, dingtalk_emulator)
        await _drained(relay.store)
        messages = await _all(relay.store)
    digests = [m for m in messages if m.kind == "digest"]
    assert digests and sum(d.carries for d in digests) >= 250
    assert {m.status for m in messages} <= {Status.DELIVERED, Status.DIGESTED}
    assert len(emulator.messages()) <= 20  # within one window of the robot's rate


async def test_each_delivery_outcome_is_one_log_line_with_secrets_masked(
    dingtalk_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = "0123456789abcdef" * 4
    clock = FakeClock()
    dingtalk_emulator.add_robot("ops", token=token)
    emulator = dingtalk_emulator.emulator
    target = RobotTarget("ops", dingtalk_emulator.webhook_url("ops"), rate="1000/1s")
    settings = RelaySettings(idle_poll=0.05, allowed_hosts=("relay",))
    relay = Relay([target], settings=settings, clock=clock)
    caplog.set_level(logging.INFO, logger="dingpush.relay.delivery")
    async with serving(relay) as api:
        emulator.inject_fault("errcode", errcode=-1, errmsg=f"busy ({token})", count=1)
        (first,) = await _enqueue(api, 1)

        async def retried() -> bool:
            return "outcome=retry" in caplog.text

        await eventually(retried, what="the retry line")
        clock.advance(2.0)
        relay.dispatcher.kick("ops")

        async def delivered() -> bool:
            return "outcome=delivered" in caplog.text

        await eventually(delivered, what="the delivery line")
    lines = [r for r in caplog.records if r.name == "dingpush.relay.delivery"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    retry, done = (r.getMessage() for r in lines)
    assert retry.startswith(f"delivery outcome=retry target=ops id={first} attempts=1 latency=")
    assert "errcode=-1" in retry and "next_in=" in retry and token not in retry
    assert done.startswith(f"delivery outcome=delivered target=ops id={first} attempts=2 ")
    assert "latency=2.0" in done  # accepted, then two fake seconds of rest
