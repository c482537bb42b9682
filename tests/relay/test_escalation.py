"""The escalation engine against the emulator over real HTTP, on a fake clock.

An alert opens an incident; once its policy's step is due (the clock is advanced past it and
the engine looks: ``Escalation.tick``), the on-call person gets a DING at the emulator, or
nothing happens because someone read or acknowledged the alert, or it resolved.
"""

from __future__ import annotations

import copy
import typing

import pytest

from _appsupport import APP_KEY, APP_SECRET
from dingpush import AsyncApp
from dingpush.alerts import AlertSettings, Person, Route, sample
from dingpush.relay import AlertReceivers, Relay, RobotTarget
from dingpush.relay._escalation import Escalation, step_key
from dingpush.relay._incidents import EventKind, Incident, IncidentState
from dingpush.relay._oncall import OnCall, Policy, Schedule, Step, parse_instant
from dingpush.relay._targets import AppTarget, RelayTarget
from dingpush.relay.stores import MemoryStore
from dingpush.testing import EmulatorServer, FakeClock

from ._support import eventually, fast_settings, serving

pytestmark = pytest.mark.anyio

#: 2024-05-01T12:12:00Z, as the alert receivers' tests.
NOW = 1714565520.0
PEOPLE = {
    "alice": Person(user_id="alice"),
    "bob": Person(user_id="bob"),
    "lead": Person(user_id="manager4220"),
}
ROTATION = Schedule(
    name="oncall",
    people=("alice", "bob"),
    start=parse_instant("2024-04-29T09:00+08:00"),  # alice's week holds NOW
    every=7 * 86400.0,
)


def policy(*steps: Step, **options: typing.Any) -> Policy:
    return Policy(
        name="page", steps=steps or (Step(after=300, ding="oncall", remind="phone"),), **options
    )


def build(
    server: EmulatorServer,
    clock: FakeClock,
    page: Policy,
    *,
    store: MemoryStore | None = None,
    paid_ding: bool = True,
    permissions: tuple[str, ...] | None = None,
    robot: str | None = None,
    **settings: typing.Any,
) -> Relay:
    server.emulator.clock = clock
    server.add_app(
        "ops",
        APP_KEY,
        APP_SECRET,
        users=("alice", "bob", "manager4220"),
        groups=["Ops", "Leads"],
        paid_ding=paid_ding,
        permissions=permissions,
    )
    groups = list(server.emulator.app("ops").groups)

    def target(name: str, cid: str) -> AppTarget:
        app = AsyncApp(APP_KEY, APP_SECRET, api_base=server.url, oapi_base=server.url, clock=clock)
        return AppTarget(name, app, "app-group", open_conversation_id=cid, owns_app=True)

    oncall = OnCall(policies={"page": page}, schedules={"oncall": ROTATION}, people=PEOPLE)
    receivers = AlertReceivers(
        AlertSettings(
            routes={"ops": Route(targets=["ops-group"]), "plain": Route(targets=["ops-group"])},
            people=PEOPLE,
        ),
        oncall=oncall,
        policies={"ops": "page"},
    )
    targets: list[RelayTarget] = [target("ops-group", groups[0]), target("leads", groups[1])]
    if robot is not None:  # a webhook robot's group, which cannot receive "@robot ack"
        server.add_robot(robot, f"{robot}-token-0123456789")
        targets.append(RobotTarget(robot, server.webhook_url(robot)))
    return Relay(
        targets,
        store=store if store is not None else MemoryStore(clock=clock),
        settings=fast_settings(escalation_poll=3600.0, **settings),
        clock=clock,
        alerts=receivers,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def engine(relay: Relay) -> Escalation:
    assert relay.escalation is not None
    return relay.escalation


async def fire(http: typing.Any, status: str = "firing") -> None:
    _, body = sample("alertmanager-firing")
    if status == "resolved":
        _, body = sample("alertmanager-resolved")
    reply = await http.post("/alertmanager/ops", json=body)
    assert reply.status_code == 200, reply.text


async def the_incident(relay: Relay) -> Incident:
    (incident,) = await relay.incidents.list_incidents()
    return incident


async def delivered(relay: Relay, incident: Incident) -> None:
    async def done() -> bool:
        current = await relay.incidents.get(incident.number)
        return current is not None and any(e.kind is EventKind.SENT for e in current.timeline)

    await eventually(done, what="the alert's delivery")


def dings(server: EmulatorServer) -> list[typing.Any]:
    return server.emulator.dings()


def kinds(incident: Incident | None) -> list[EventKind]:
    assert incident is not None
    return [e.kind for e in incident.timeline]


async def test_nobody_acknowledges_so_the_on_call_gets_a_phone_ding(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        assert (incident.policy, incident.due_at, incident.route) == ("page", NOW + 300, "ops")
        assert incident.title == "HighCPU" and incident.labels["severity"] == "critical"
        await delivered(relay, incident)
        clock.advance(299)
        assert await engine(relay).tick() == 0
        clock.advance(1)
        assert await engine(relay).tick() == 1
        await eventually(lambda: len(dings(dingtalk_emulator)) == 1, what="the DING")
        (ding,) = dings(dingtalk_emulator)
        assert (ding.remind_type, ding.receivers) == (3, ("alice",))
        assert f"#{incident.number}" in ding.content
        after = await relay.incidents.get(incident.number)
        assert kinds(after) == [EventKind.OPENED, EventKind.SENT, EventKind.DING]
        assert after is not None and after.timeline[-1].who == "alice"
        assert "phone DING to alice" in after.timeline[-1].detail
        assert (after.step, after.due_at) == (1, None)
        clock.advance(3600)
        assert await engine(relay).tick() == 0
        assert len(dings(dingtalk_emulator)) == 1
        metrics = relay.metrics
        assert metrics.labelled_value("incidents_opened", "ops") == 1
        assert metrics.labelled_value("escalation_steps", "page", "ding") == 1
        await eventually(lambda: metrics.value("dings", "ops-group") == 1, what="the DING count")
        assert metrics.value("ding_fallbacks", "ops-group") == 0
        scraped = (await http.get("/metrics")).text
        assert 'dingpush_relay_incidents_opened_total{route="ops"} 1' in scraped
        assert 'dingpush_relay_escalation_steps_total{policy="page",action="ding"} 1' in scraped
        assert 'dingpush_relay_dings_total{target="ops-group"} 1' in scraped


async def test_read_within_the_delay_means_no_ding_when_the_policy_waits_for_read(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy(wait_for="read"))
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        await delivered(relay, incident)
        message = await relay.store.get(incident.message_ids[0])
        assert message.reply is not None
        dingtalk_emulator.emulator.read_app_message(message.reply["process_query_key"], ["bob"])
        clock.advance(300)
        assert await engine(relay).tick() == 1
        after = await relay.incidents.get(incident.number)
        assert after is not None and after.timeline[-1].kind is EventKind.READ
        assert after.timeline[-1].who == "bob" and after.due_at is None
        assert after.timeline[-1].detail == "read by bob: escalation stopped"
        assert dings(dingtalk_emulator) == []


async def test_unread_with_wait_for_read_still_dings(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy(wait_for="read"))
    async with serving(relay) as http:
        await fire(http)
        await delivered(relay, await the_incident(relay))
        clock.advance(300)
        await engine(relay).tick()
        await eventually(lambda: len(dings(dingtalk_emulator)) == 1, what="the DING")


async def test_an_acknowledged_incident_stops_escalating(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        await relay.incidents.acknowledge(incident.number, who="alice", via="chat", now=NOW + 60)
        await relay.incidents.acknowledge(incident.number, who="bob", via="link", now=NOW + 61)
        clock.advance(3600)
        assert await engine(relay).tick() == 0
        assert dings(dingtalk_emulator) == []
        metrics = relay.metrics
        assert metrics.labelled_value("incidents_acknowledged", "ops", "chat") == 1
        assert metrics.labelled_value("incidents_acknowledged", "ops", "link") == 0  # kept alice's
        assert metrics.labelled_value("escalation_steps", "page", "ding") == 0


async def test_a_resolved_alert_stops_escalating(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        await fire(http)
        clock.advance(60)
        await fire(http, "resolved")
        incident = await the_incident(relay)
        assert incident.state is IncidentState.RESOLVED
        assert incident.closed_at == NOW + 60
        assert relay.metrics.labelled_value("incidents_opened", "ops") == 1
        assert relay.metrics.labelled_value("incidents_resolved", "ops") == 1
        clock.advance(3600)
        assert await engine(relay).tick() == 0
        assert dings(dingtalk_emulator) == []


async def test_steps_run_in_order_and_a_notify_step_reaches_its_target(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    steps = (Step(after=300, ding="oncall", remind="sms"), Step(after=900, notify="leads"))
    relay = build(dingtalk_emulator, clock, policy(*steps))
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        clock.advance(300)
        await engine(relay).tick()
        await eventually(lambda: len(dings(dingtalk_emulator)) == 1, what="the DING")
        assert dings(dingtalk_emulator)[0].remind_type == 2
        clock.advance(599)
        assert await engine(relay).tick() == 0
        clock.advance(1)
        assert await engine(relay).tick() == 1

        def escalated() -> bool:
            return any("Escalated" in str(m.payload) for m in dingtalk_emulator.emulator.messages())

        await eventually(escalated, what="the lead group's message")
        after = await relay.incidents.get(incident.number)
        assert EventKind.NOTIFIED in kinds(after)
        assert after is not None
        assert [e.detail for e in after.timeline if e.kind is EventKind.NOTIFIED] == [
            "sent to leads"
        ]
        assert (after.step, after.due_at) == (2, None)
        assert relay.metrics.labelled_value("escalation_steps", "page", "notify") == 1
        assert relay.metrics.labelled_value("escalation_steps", "page", "ding") == 1


async def test_an_alert_that_fires_again_after_resolving_is_a_new_message_and_incident(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    # Firing, resolved, firing again within dedup_window: the same notification twice. The
    # second firing was taken for a retry of the first (duplicate), so the group never saw it
    # and the new incident pointed at the old incident's messages.
    relay = build(dingtalk_emulator, clock, policy())
    _, firing = sample("alertmanager-firing")
    _, resolved = sample("alertmanager-resolved")
    async with serving(relay) as http:
        answers = []
        for body in (firing, resolved, firing):
            reply = await http.post("/alertmanager/ops", json=body)
            assert reply.status_code == 200, reply.text
            answers.append(reply.json()["messages"])
            clock.advance(5)
        assert [m["duplicate"] for m in answers[2]] == [False]
        second, first = await relay.incidents.list_incidents()
        assert (first.state, second.state) == (IncidentState.RESOLVED, IncidentState.OPEN)
        assert not set(first.message_ids) & set(second.message_ids)
        assert answers[2][0]["id"] in second.message_ids
        again = await http.post("/alertmanager/ops", json=firing)  # the sender's retry
        assert [m["duplicate"] for m in again.json()["messages"]] == [True]


@pytest.mark.parametrize("linked", [True, False])
async def test_a_notify_step_to_a_webhook_robot_carries_the_ack_link_not_the_chat_command(
    dingtalk_emulator: EmulatorServer, clock: FakeClock, linked: bool
) -> None:
    links: dict[str, typing.Any] = {
        "public_url": "http://relay",
        "ack_secret": "ack-secret-0123456789-abcdef",
    }
    relay = build(
        dingtalk_emulator,
        clock,
        policy(Step(after=90, notify="team")),
        robot="team",
        **(links if linked else {}),
    )
    async with serving(relay) as http:
        _, body = sample("alertmanager-firing")
        body = copy.deepcopy(body)
        body["commonLabels"]["alertname"] = "[click](http://evil.example)"  # the sender's text
        assert (await http.post("/alertmanager/ops", json=body)).status_code == 200
        incident = await the_incident(relay)
        clock.advance(90)
        assert await engine(relay).tick() == 1

        def escalation() -> str:
            sent = dingtalk_emulator.emulator.messages(robot="team")
            return sent[0].payload["markdown"]["text"] if sent else ""

        await eventually(lambda: bool(escalation()), what="the team's message")
        text = escalation()
        assert "Not acknowledged after 1m30s" in text  # not "after 2 min"
        assert "@robot" not in text  # a webhook robot hears nothing
        assert "](http://evil.example)" not in text  # a label is text, not a link
        if linked:
            assert f"[Acknowledge #{incident.number}](http://relay/ack/{incident.number}/" in text
        else:
            assert "Acknowledge it in the relay's dashboard" in text


async def test_without_the_paid_quota_an_in_app_ding_goes_and_the_timeline_says_so(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy(), paid_ding=False)
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        clock.advance(300)
        await engine(relay).tick()
        await eventually(lambda: len(dings(dingtalk_emulator)) == 1, what="the DING")
        assert dings(dingtalk_emulator)[0].remind_type == 1

        async def noted() -> bool:
            current = await relay.incidents.get(incident.number)
            return current is not None and any(
                e.kind is EventKind.NOTE and "quota" in e.detail for e in current.timeline
            )

        await eventually(noted, what="the fallback's note")
        assert relay.metrics.value("ding_fallbacks", "ops-group") == 1
        assert relay.metrics.value("dings", "ops-group") == 1


async def test_a_repeating_policy_runs_its_steps_again(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy(repeat=True))
    async with serving(relay) as http:
        await fire(http)
        for round_ in range(1, 4):
            clock.advance(300)
            assert await engine(relay).tick() == 1
            await eventually(
                lambda n=round_: len(dings(dingtalk_emulator)) == n, what=f"DING {round_}"
            )
        incident = await the_incident(relay)
        assert (incident.step, incident.due_at) == (3, NOW + 1200)


async def test_a_step_interrupted_before_it_advanced_fires_once(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    """An instance claimed the step and enqueued its DING, then died before advancing."""
    store = MemoryStore(clock=clock)
    relay = build(dingtalk_emulator, clock, policy(), store=store)
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        clock.advance(300)
        (claimed,) = await relay.incidents.claim_due(now=clock.time(), holder="dead", lease=60)
        dead = copy.copy(engine(relay))
        dead.holder = "dead"
        await dead._ding(
            claimed,
            engine(relay).oncall.policies["page"],
            Step(300, "oncall", "phone"),
            clock.time(),
        )
        # The dead instance never advanced: the claim holds until its lease ends.
        assert await engine(relay).tick() == 0
        clock.advance(60)
        assert await engine(relay).tick() == 1
        await eventually(lambda: len(dings(dingtalk_emulator)) >= 1, what="the DING")
        after = await relay.incidents.get(incident.number)
        assert after is not None and after.step == 1
        ding_ids = [m for m in after.message_ids if (await store.get(m)).kind == "ding"]
        assert len(ding_ids) == 1
        assert (await store.get(ding_ids[0])).idempotency_key == step_key(incident.number, 0)
    assert len(dings(dingtalk_emulator)) == 1


async def test_a_route_without_policy_opens_incidents_that_never_escalate(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        _, body = sample("alertmanager-firing")
        assert (await http.post("/alertmanager/plain", json=body)).status_code == 200
        reply = await http.post("/hooks/plain", json={"title": "deploy finished"})
        assert reply.status_code == 200, reply.text
        (incident,) = await relay.incidents.list_incidents()  # none for the generic hook
        assert (incident.route, incident.policy, incident.due_at) == ("plain", None, None)
        clock.advance(86400)
        assert await engine(relay).tick() == 0
        _, resolved = sample("alertmanager-resolved")
        assert (await http.post("/alertmanager/plain", json=resolved)).status_code == 200
        assert (await the_incident(relay)).state is IncidentState.RESOLVED
    assert dings(dingtalk_emulator) == []


async def test_a_ding_the_app_may_not_send_is_noted_on_the_timeline(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy(), permissions=("qyapi_robot_sendmsg",))
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        clock.advance(300)
        assert await engine(relay).tick() == 1

        async def noted() -> list[str]:
            current = await relay.incidents.get(incident.number)
            assert current is not None
            return [e.detail for e in current.timeline if e.kind is EventKind.NOTE]

        async def any_note() -> bool:
            return bool(await noted())

        await eventually(any_note, what="the failed DING's note")
        (note,) = await noted()
        assert note.startswith("the DING to alice failed") and "Premium.Ding.Write" in note
    assert dings(dingtalk_emulator) == []


async def test_an_incident_acknowledged_after_its_claim_gets_no_ding(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        await fire(http)
        clock.advance(300)
        (claimed,) = await relay.incidents.claim_due(now=clock.time(), holder="h", lease=60)
        await relay.incidents.acknowledge(claimed.number, who="bob", via="chat", now=clock.time())
        assert await engine(relay).escalate(claimed) is None
        after = await relay.incidents.get(claimed.number)
        assert after is not None and after.state is IncidentState.ACKNOWLEDGED
        assert EventKind.DING not in kinds(after) and len(after.message_ids) == 1
    assert dings(dingtalk_emulator) == []


async def test_a_delivered_ding_is_recalled_by_its_open_ding_id(
    dingtalk_emulator: EmulatorServer, clock: FakeClock
) -> None:
    """Recall on an escalation step's DING (its page, or the incident's Recall all): §14.2."""
    relay = build(dingtalk_emulator, clock, policy())
    async with serving(relay) as http:
        await fire(http)
        incident = await the_incident(relay)
        clock.advance(300)
        await engine(relay).tick()
        await eventually(lambda: len(dings(dingtalk_emulator)) == 1, what="the DING")
        current = await relay.incidents.get(incident.number)
        assert current is not None
        ding_id = current.message_ids[-1]

        async def sent() -> bool:
            status = (await http.get(f"/v1/messages/{ding_id}")).json()["status"]
            return bool(status == "delivered")

        await eventually(sent, what="the DING's delivery")
        answer = await http.post(f"/v1/messages/{ding_id}/recall", json={"by": "bob"})
        assert answer.status_code == 200, answer.text
        (ding,) = dings(dingtalk_emulator)
        assert answer.json()["outcome"] == "recalled"
        assert answer.json()["recalled"] == [ding.open_ding_id]
        assert ding.recalled_at is not None
        again = await http.post(f"/v1/messages/{ding_id}/recall")
        assert again.status_code == 200 and again.json()["already"] is True
        after = await relay.incidents.get(incident.number)
        assert after is not None and after.timeline[-1].kind is EventKind.RECALLED
        assert "the DING" in after.timeline[-1].detail
        assert relay.metrics.value("recalled", "ops-group") == 1
