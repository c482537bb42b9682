"""Acknowledge and silence from the chat, over real HTTP: the emulator's people write to the
app robot, the emulator calls the relay back (signed, §12) or hands the message to the relay's
Stream client (§13), and the relay acts on its incident store and Alertmanager."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import secrets
import time
import typing
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from bench._alertmanager import Alertmanager, free_port

from _appsupport import APP_KEY, APP_SECRET, GROUP, USERS
from dingpush import AsyncApp, Backoff, IncomingMessage, callback_sign, parse_incoming
from dingpush.alerts import AlertSettings, Person, Route
from dingpush.relay import AlertReceivers, AppTarget, Relay, RelayServer, RelaySettings
from dingpush.relay._chat import ChatCommands
from dingpush.relay._incidents import EventKind, Incident, IncidentState, IncidentStore
from dingpush.relay._receivers import (
    BEING_HANDLED,
    UNREMEMBERED,
    ChatReceivers,
    ReceivingApp,
)
from dingpush.relay._silences import Silences
from dingpush.relay.stores import MemoryIncidentStore
from dingpush.testing import EmulatorServer

LABELS = {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    directory: pathlib.Path = tmp_path_factory.mktemp("am")
    with Alertmanager(directory, f"http://127.0.0.1:{free_port()}/nowhere") as am:
        yield am


class Loop:
    """An emulator app in group ``Ops``, a relay with an app-group target there, an incident."""

    def __init__(self, emulator: EmulatorServer, relay: RelayServer, store: MemoryIncidentStore):
        self.emulator, self.relay, self.store = emulator, relay, store
        self.cid = next(iter(emulator.emulator.app("ops").groups))

    def open(self, title: str = "DiskFull on db-1", group_key: str = "g1") -> Incident:
        return asyncio.run(
            self.store.open_incident(
                route="ops",
                group_key=group_key,
                title=title,
                labels=LABELS,
                policy=None,
                targets=["oncall"],
                due_at=None,
                now=time.time(),
            )
        )

    def incident(self, number: int) -> Incident:
        found = asyncio.run(self.store.get(number))
        assert found is not None
        return found

    def say(self, text: str, user: str = "alice") -> None:
        self.emulator.emulator.post_as_user("ops", user, text, group=GROUP)

    def chat(self) -> list[tuple[str, str]]:
        """The group's text messages: people's, replies, and the relay's sampleText sends."""
        shown = []
        for m in self.emulator.emulator.messages(conversation=self.cid):
            if m.msgtype == "text" and "text" in m.payload:
                shown.append((m.sender, m.payload["text"]["content"]))
            elif m.payload.get("msgKey") == "sampleText":
                shown.append((m.sender, m.payload["msgParam"]["content"]))
        return shown

    def last_reply(self) -> str:
        replies = [text for sender, text in self.chat() if sender == "ops"]
        assert replies, self.chat()
        return replies[-1]


def _relay(
    emulator: EmulatorServer, *, mode: str = "callback", am: Alertmanager | None = None
) -> tuple[Relay, MemoryIncidentStore]:
    cid = next(iter(emulator.emulator.app("ops").groups))
    store = MemoryIncidentStore()
    people = {"Alice": Person(user_id="alice"), "Bob": Person(user_id="bob")}
    settings = AlertSettings(routes={"ops": Route(targets=["oncall"])}, people=people)
    app = AsyncApp(APP_KEY, APP_SECRET, api_base=emulator.url, token_cache=None)
    chat = ChatReceivers(
        [ReceivingApp("ops", APP_KEY, APP_SECRET, emulator.url)],
        mode=mode,
        stream_options={"backoff": Backoff(initial=0.05, maximum=0.2)},
    )
    relay = Relay(
        [AppTarget("oncall", app, "app-group", open_conversation_id=cid, owns_app=True)],
        settings=RelaySettings(
            port=free_port(), idle_poll=0.2, alertmanager_url=am.url if am else None
        ),
        alerts=AlertReceivers(settings),
        incidents=store,
        chat=chat,
    )
    return relay, store


@pytest.fixture
def loop(dingtalk_emulator: EmulatorServer) -> Iterator[Loop]:
    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    relay, store = _relay(dingtalk_emulator)
    with RelayServer(relay) as server:
        dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
        yield Loop(dingtalk_emulator, server, store)


def test_ack_in_the_group_acknowledges_its_newest_open_incident(loop: Loop) -> None:
    loop.open("older", group_key="g0")
    incident = loop.open()
    loop.say("ack")
    assert loop.chat()[-2:] == [
        ("alice", "@ops ack"),
        ("ops", f"#{incident.number} acknowledged by Alice"),
    ]
    after = loop.incident(incident.number)
    assert after.state is IncidentState.ACKNOWLEDGED and after.acknowledged_by == "Alice"
    (event,) = [e for e in after.timeline if e.kind is EventKind.ACKNOWLEDGED]
    assert (event.who, event.detail) == ("Alice", "chat") and event.at > 0
    assert loop.incident(incident.number - 1).state is IncidentState.OPEN
    (callback,) = loop.emulator.emulator.callbacks()
    assert callback.status == 200 and callback.replied


def test_ack_by_number_and_a_second_ack_keeps_the_first(loop: Loop) -> None:
    first, second = loop.open(group_key="a"), loop.open(group_key="b")
    loop.say(f"ack {first.number}", user="bob")
    assert loop.last_reply() == f"#{first.number} acknowledged by Bob"
    loop.say(f"ack #{first.number}")
    assert loop.last_reply() == f"#{first.number} was already acknowledged by Bob"
    assert loop.incident(second.number).state is IncidentState.OPEN
    loop.say("ack 999")
    assert loop.last_reply() == "There is no incident #999."


def test_a_second_bare_ack_says_who_took_it(loop: Loop) -> None:
    # Two people type "ack" at once (docs/oncall.md's example): the second learns who was first.
    incident = loop.open()
    loop.say("ack", user="bob")
    loop.say("ack")
    assert loop.last_reply() == f"#{incident.number} was already acknowledged by Bob"
    assert loop.incident(incident.number).acknowledged_by == "Bob"


def test_a_person_not_in_the_directory_is_named_by_user_id(loop: Loop) -> None:
    incident = loop.open()
    loop.say("ack", user="user123")
    assert loop.last_reply() == f"#{incident.number} acknowledged by user123"


def test_a_sender_without_a_user_id_is_not_taken_for_a_person_of_the_directory() -> None:
    # An external guest (no senderStaffId) who calls themselves Alice is not the directory's.
    commands = ChatCommands(
        MemoryIncidentStore(), targets={}, people=[Person(name="Alice", user_id="alice")]
    )
    body = {"msgtype": "text", "text": {"content": "ack 1"}, "conversationType": "2"}
    guest = parse_incoming(json.dumps({**body, "senderNick": "Alice"}))
    assert commands.person(guest) == "Alice (no userId)"
    member = parse_incoming(json.dumps({**body, "senderNick": "Mallory", "senderStaffId": "alice"}))
    assert commands.person(member) == "Alice"


def test_status_lists_the_newest_twenty_with_short_titles(loop: Loop) -> None:
    # 30 incidents with 2,000-character titles made a 60 KB answer, over what DingTalk takes.
    opened = [loop.open("x" * 2000, group_key=f"g{n}") for n in range(30)]
    loop.say("status")
    lines = loop.last_reply().splitlines()
    assert lines[0] == "Open incidents (30):" and len(lines) == 22
    assert lines[1].startswith(f"- #{opened[10].number} {'x' * 119}…: open, ")
    assert lines[-1] == "… and 10 older (the relay's dashboard lists them all)"
    assert len(loop.last_reply().encode()) < 5000


def test_status_help_and_what_is_not_understood(loop: Loop) -> None:
    loop.say("status")
    assert loop.last_reply() == "No open incidents in this chat."
    one, two = loop.open("disk", group_key="a"), loop.open("cpu", group_key="b")
    loop.say(f"ack {one.number}")
    loop.say("status")
    status = loop.last_reply().splitlines()
    assert status[0] == "Open incidents (2):"
    assert status[1].startswith(f"- #{one.number} disk: acknowledged by Alice, ")
    assert status[2].startswith(f"- #{two.number} cpu: open, ")
    loop.say("help")
    assert "silence [N] DURATION" in loop.last_reply()
    loop.say("reboot db-1")
    reply = loop.last_reply()
    assert reply.startswith("Not understood: 'reboot' is not a command.") and "ack [N]" in reply
    loop.say("silence 2h")
    assert "Silences are not set up" in loop.last_reply()


def test_a_forged_or_stale_callback_is_refused_and_changes_nothing(loop: Loop) -> None:
    incident = loop.open()
    body = json.dumps(
        {
            "msgtype": "text",
            "text": {"content": " ack"},
            "conversationType": "2",
            "conversationId": loop.cid,
            "senderStaffId": "alice",
            "msgId": "msg0123456789",
        }
    ).encode()
    url = f"{loop.relay.url}/callbacks/ops"
    now = int(time.time() * 1000)
    stale = now - 3_700_000
    for headers, reason in (
        ({"timestamp": str(now), "sign": callback_sign("not-the-secret", now)}, "sign"),
        ({"timestamp": str(stale), "sign": callback_sign(APP_SECRET, stale)}, "timestamp"),
        ({}, "no timestamp/sign"),
    ):
        answer = httpx.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert answer.status_code == 403, answer.text
        assert reason in answer.json()["detail"]
        assert APP_SECRET not in answer.text
    huge = httpx.post(url, content=b"x" * (300 * 1024), headers={"timestamp": str(now)})
    assert huge.status_code == 413 and "did not come from DingTalk" in huge.json()["detail"]
    assert "max_body" not in huge.text  # a setting for senders, not the callback's limit
    # A sign that is not ASCII and a timestamp no float holds are refused too, not a 500.
    for raw in ((str(now).encode(), b"\xe9"), (b"9" * 400, b"x")):
        answer = httpx.post(url, content=body, headers=[(b"timestamp", raw[0]), (b"sign", raw[1])])
        assert answer.status_code == 403, answer.text
    assert loop.incident(incident.number).state is IncidentState.OPEN
    good = httpx.post(
        url,
        content=body,
        headers={
            "timestamp": str(now),
            "sign": callback_sign(APP_SECRET, now),
            "Content-Type": "application/json",
        },
    )
    assert good.status_code == 200
    assert good.json() == {
        "msgtype": "text",
        "text": {"content": f"#{incident.number} acknowledged by Alice"},
    }
    # The same callback again (DingTalk's retry, or a replay within the hour): one action.
    again = httpx.post(
        url,
        content=body,
        headers={
            "timestamp": str(now),
            "sign": callback_sign(APP_SECRET, now),
            "Content-Type": "application/json",
        },
    )
    assert again.json() == good.json()
    unknown = httpx.post(f"{loop.relay.url}/callbacks/nope", content=body)
    assert unknown.status_code == 404 and "the apps are: ops" in unknown.json()["detail"]


def test_silence_makes_an_alertmanager_silence_with_the_person_as_creator(
    dingtalk_emulator: EmulatorServer, alertmanager: Alertmanager
) -> None:
    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    relay, store = _relay(dingtalk_emulator, am=alertmanager)
    with RelayServer(relay) as server:
        dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
        loop = Loop(dingtalk_emulator, server, store)
        incident = loop.open()
        loop.say("silence 2h")
        reply = loop.last_reply()
        prefix = f"#{incident.number} silenced for 2h by Alice (silence "
        assert reply.startswith(prefix), reply
        silence_id = reply.removeprefix(prefix).rstrip(")")
        with urllib.request.urlopen(f"{alertmanager.url}/api/v2/silences", timeout=10) as answer:
            silences = {s["id"]: s for s in json.loads(answer.read())}
        made = silences[silence_id]
        assert made["createdBy"] == "Alice"
        assert f"incident #{incident.number}" in made["comment"]
        assert {(m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in made["matchers"]} == {
            (k, v, True, False) for k, v in LABELS.items()
        }
        after = loop.incident(incident.number)
        assert after.state is IncidentState.SILENCED
        (event,) = [e for e in after.timeline if e.kind is EventKind.SILENCED]
        assert event.who == "Alice" and event.detail.startswith(f"silence {silence_id} until ")
        loop.say(f"silence {incident.number} 30m", user="bob")
        assert loop.last_reply().startswith(f"#{incident.number} silenced for 30m by Bob")


def test_alertmanager_down_is_answered_and_noted(dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    cid = next(iter(dingtalk_emulator.emulator.app("ops").groups))
    store = MemoryIncidentStore()
    port = free_port()
    relay = Relay(
        [
            AppTarget(
                "oncall",
                AsyncApp(APP_KEY, APP_SECRET, api_base=dingtalk_emulator.url, token_cache=None),
                "app-group",
                open_conversation_id=cid,
                owns_app=True,
            )
        ],
        settings=RelaySettings(
            port=free_port(), alertmanager_url=f"http://am:pa55word-x@127.0.0.1:{port}"
        ),
        incidents=store,
        chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET, dingtalk_emulator.url)]),
    )
    with RelayServer(relay) as server:
        dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
        loop = Loop(dingtalk_emulator, server, store)
        incident = loop.open()
        # Longer than silence_max (7d): answered before Alertmanager is asked, and a duration
        # past year 9999 (it crashed the callback with a 500) is no different.
        for typo in ("silence 99999h", "silence 99999999999999d"):
            loop.say(typo)
            assert loop.last_reply() == (
                f"#{incident.number} was not silenced: a silence from the chat lasts at most "
                "7d. Ask for 7d or less, or make a longer one in Alertmanager's page (the "
                "relay's admin sets [relay] silence_max)"
            )
        assert loop.incident(incident.number).timeline[-1].kind is EventKind.OPENED
        loop.say("silence 1h")
        reply = loop.last_reply()
        assert reply.startswith(
            f"#{incident.number} was not silenced: Alertmanager at "
            f"http://127.0.0.1:{port} cannot be reached"
        )
        assert "pa55word" not in reply
        after = loop.incident(incident.number)
        assert after.state is IncidentState.OPEN
        assert [e.kind for e in after.timeline][-1] is EventKind.NOTE


def test_stream_mode_receives_and_answers_through_the_session(
    dingtalk_emulator: EmulatorServer,
) -> None:
    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    relay, store = _relay(dingtalk_emulator, mode="stream")
    with RelayServer(relay) as server:
        loop = Loop(dingtalk_emulator, server, store)
        incident = loop.open()
        deadline = time.monotonic() + 30
        while dingtalk_emulator.emulator.stream.connections("ops") == 0:
            assert time.monotonic() < deadline, "the relay's Stream client did not connect"
            time.sleep(0.02)
        loop.say("ack")
        while loop.incident(incident.number).state is IncidentState.OPEN or not any(
            sender == "ops" for sender, _ in loop.chat()
        ):
            assert time.monotonic() < deadline, loop.chat()
            time.sleep(0.02)
        assert loop.last_reply() == f"#{incident.number} acknowledged by Alice"
        shown = dingtalk_emulator.emulator.messages(conversation=loop.cid)
        assert shown[-1].channel == "session-webhook"
    assert dingtalk_emulator.emulator.callbacks() == []


def test_the_silence_watch_closes_an_incident_whose_alerts_resolved_while_silenced(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    from bench._alertmanager import alert

    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    with Alertmanager(tmp_path / "am", f"http://127.0.0.1:{free_port()}/nowhere") as am:
        relay, store = _relay(dingtalk_emulator, am=am)
        relay.silence_watch.interval = 0.2  # type: ignore[union-attr]
        with RelayServer(relay) as server:
            dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
            loop = Loop(dingtalk_emulator, server, store)
            am.fire([alert("DiskFull", {"instance": "db-1", "severity": "critical"})])
            silenced, open_ = loop.open(), loop.open("still open", group_key="g2")
            loop.say(f"silence {silenced.number} 1h")
            assert "silenced for 1h" in loop.last_reply()
            time.sleep(0.6)  # a few sweeps: the alert is still firing (silenced)
            assert loop.incident(silenced.number).state is IncidentState.SILENCED
            am.fire(
                [
                    alert(
                        "DiskFull",
                        {"instance": "db-1", "severity": "critical"},
                        ends=time.time() - 1,
                    )
                ]
            )
            deadline = time.monotonic() + 30
            while loop.incident(silenced.number).state is not IncidentState.RESOLVED:
                assert time.monotonic() < deadline, "the watch did not resolve it"
                time.sleep(0.05)
            timeline = loop.incident(silenced.number).timeline
            assert [e.kind for e in timeline][-2:] == [EventKind.NOTE, EventKind.RESOLVED]
            assert "resolved while silenced" in timeline[-2].detail
            assert loop.incident(open_.number).state is IncidentState.OPEN
            while f"#{silenced.number} resolved (while silenced)" not in loop.last_reply():
                assert time.monotonic() < deadline, loop.chat()
                time.sleep(0.05)


def test_without_policies_alerts_still_open_incidents_people_can_ack(loop: Loop) -> None:
    from dingpush.alerts import sample

    _, firing = sample("alertmanager-firing")
    answer = httpx.post(f"{loop.relay.url}/alertmanager/ops", json=firing)
    assert answer.status_code == 200, answer.text
    (incident,) = asyncio.run(loop.store.list_incidents())
    assert incident.policy is None and incident.due_at is None
    loop.say("ack")
    assert loop.last_reply() == f"#{incident.number} acknowledged by Alice"
    _, resolved = sample("alertmanager-resolved")
    assert httpx.post(f"{loop.relay.url}/alertmanager/ops", json=resolved).status_code == 200
    assert loop.incident(incident.number).state is IncidentState.RESOLVED


def test_a_slow_alertmanager_is_answered_later_through_the_session(
    dingtalk_emulator: EmulatorServer,
) -> None:
    from dingpush.relay._silences import Silences

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.5)
        return httpx.Response(200, json={"silenceID": "slow-silence-1"})

    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    relay, store = _relay(dingtalk_emulator)
    assert relay.chat is not None and relay.chat.commands is not None
    relay.chat.callback_deadline = 0.1
    relay.chat.commands.silences = Silences(
        "http://am.example", transport=httpx.MockTransport(slow)
    )
    with RelayServer(relay) as server:
        dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
        loop = Loop(dingtalk_emulator, server, store)
        incident = loop.open()
        loop.say("silence 2h")
        (callback,) = dingtalk_emulator.emulator.callbacks()
        assert callback.status == 200 and not callback.replied  # {"msgtype": "empty"} at once
        deadline = time.monotonic() + 30
        while not any("silenced for 2h" in text for _, text in loop.chat()):
            assert time.monotonic() < deadline, loop.chat()
            time.sleep(0.02)
        assert loop.last_reply() == (
            f"#{incident.number} silenced for 2h by Alice (silence slow-silence-1)"
        )
        shown = dingtalk_emulator.emulator.messages(conversation=loop.cid)
        assert shown[-1].channel == "session-webhook"


def test_the_other_groups_of_an_incident_learn_who_took_it(
    dingtalk_emulator: EmulatorServer,
) -> None:
    from dingpush.relay import RobotTarget

    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    dingtalk_emulator.add_robot("team", "team-robot-token-0123456789")
    cid = next(iter(dingtalk_emulator.emulator.app("ops").groups))
    store = MemoryIncidentStore()
    app = AsyncApp(APP_KEY, APP_SECRET, api_base=dingtalk_emulator.url, token_cache=None)
    relay = Relay(
        [
            AppTarget("oncall", app, "app-group", open_conversation_id=cid, owns_app=True),
            RobotTarget("team", dingtalk_emulator.webhook_url("team")),
        ],
        settings=RelaySettings(port=free_port(), idle_poll=0.2),
        incidents=store,
        chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET, dingtalk_emulator.url)]),
    )
    with RelayServer(relay) as server:
        dingtalk_emulator.emulator.update_app("ops", callback_url=f"{server.url}/callbacks/ops")
        loop = Loop(dingtalk_emulator, server, store)
        incident = asyncio.run(
            store.open_incident(
                route="ops",
                group_key="g",
                title="DiskFull",
                labels=LABELS,
                policy=None,
                targets=["oncall", "team"],
                due_at=None,
                now=time.time(),
            )
        )
        loop.say("ack", user="bob")
        assert loop.last_reply() == f"#{incident.number} acknowledged by bob"
        deadline = time.monotonic() + 30
        expected = f"#{incident.number} acknowledged by bob"
        while not any(
            m.payload.get("text", {}).get("content") == expected
            for m in dingtalk_emulator.emulator.messages(robot="team")
        ):
            assert time.monotonic() < deadline, "the team group was not told"
            time.sleep(0.02)
        assert [t for _, t in loop.chat()].count(expected) == 1  # the reply, not a second one


# -- a message delivered twice acts once ---------------------------------------------------------


class CountingAlertmanager:
    """Alertmanager's silences API behind a mock transport: counts the silences made.

    With ``hold``, a silence is held until a second one is asked for (or about a second): two
    deliveries of one message acting at once would both get here.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.made: list[dict[str, object]] = []
        self.hold = hold

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.made.append(json.loads(request.content))
        number = len(self.made)
        for _ in range(50 if self.hold else 0):
            if len(self.made) > 1:
                break
            await asyncio.sleep(0.02)
        return httpx.Response(200, json={"silenceID": f"silence-{number}"})

    def client(self) -> Silences:
        return Silences("http://am.example", transport=httpx.MockTransport(self))


def signed_callback(cid: str, text: str) -> tuple[bytes, dict[str, str]]:
    """A callback as DingTalk sends it (§12.2): the body, and headers signed now."""
    body = {
        "msgtype": "text",
        "text": {"content": f" {text}"},
        "conversationType": "2",
        "conversationId": cid,
        "senderStaffId": "alice",
        "msgId": "msgA1b2C3d4/+=",
    }
    now = int(time.time() * 1000)
    headers = {
        "timestamp": str(now),
        "sign": callback_sign(APP_SECRET, now),
        "Content-Type": "application/json",
    }
    return json.dumps(body).encode(), headers


def test_the_same_callback_twice_at_once_acts_once_and_both_get_its_answer(
    dingtalk_emulator: EmulatorServer,
) -> None:
    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    relay, store = _relay(dingtalk_emulator)
    assert relay.chat is not None and relay.chat.commands is not None
    alertmanager = CountingAlertmanager(hold=True)
    relay.chat.commands.silences = alertmanager.client()
    with RelayServer(relay) as server:
        loop = Loop(dingtalk_emulator, server, store)
        incident = loop.open()
        body, headers = signed_callback(loop.cid, "silence 2h")
        url = f"{server.url}/callbacks/ops"

        async def twice() -> list[httpx.Response]:
            async with httpx.AsyncClient() as client:
                posts = (client.post(url, content=body, headers=headers) for _ in "ab")
                return list(await asyncio.gather(*posts))

        answers = asyncio.run(twice())
        assert len(alertmanager.made) == 1
        expected = f"#{incident.number} silenced for 2h by Alice (silence silence-1)"
        for answer in answers:
            assert answer.status_code == 200
            assert answer.json() == {"msgtype": "text", "text": {"content": expected}}
        after = loop.incident(incident.number)
        assert [e.kind for e in after.timeline].count(EventKind.SILENCED) == 1
        # DingTalk's retry later gets the same answer, and acts no more.
        again = httpx.post(url, content=body, headers=headers)
        assert again.json()["text"]["content"] == expected
        assert len(alertmanager.made) == 1


def test_two_relays_on_one_postgresql_schema_act_once_on_a_callback_sent_to_both(
    dingtalk_emulator: EmulatorServer, schema: str
) -> None:
    from _pgsupport import DSN
    from dingpush.relay import RobotTarget
    from dingpush.relay.stores import PostgresStore

    dingtalk_emulator.add_app("ops", APP_KEY, APP_SECRET, users=USERS, groups=[GROUP])
    dingtalk_emulator.add_robot("team", "team-robot-token-0123456789")
    alertmanager = CountingAlertmanager()
    cid = next(iter(dingtalk_emulator.emulator.app("ops").groups))

    def instance() -> Relay:
        app = AsyncApp(APP_KEY, APP_SECRET, api_base=dingtalk_emulator.url, token_cache=None)
        relay = Relay(
            [
                AppTarget("oncall", app, "app-group", open_conversation_id=cid, owns_app=True),
                RobotTarget("team", dingtalk_emulator.webhook_url("team")),
            ],
            store=PostgresStore(DSN, schema=schema, pool_size=2),
            settings=RelaySettings(port=free_port(), idle_poll=0.05),
            chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET, dingtalk_emulator.url)]),
        )
        assert relay.chat is not None and relay.chat.commands is not None
        relay.chat.commands.silences = alertmanager.client()
        return relay

    async def in_the_store(number: int | None = None) -> tuple[Incident, int]:
        """Open the incident (``number`` None), or read it back; the team's messages."""
        async with PostgresStore(DSN, schema=schema, pool_size=1) as store:
            if number is None:
                found: Incident | None = await store.incidents.open_incident(
                    route="ops",
                    group_key="g",
                    title="DiskFull",
                    labels=LABELS,
                    policy=None,
                    targets=["oncall", "team"],
                    due_at=None,
                    now=time.time(),
                )
            else:
                found = await store.incidents.get(number)
            team = (await store.stats()).targets.get("team")
        assert found is not None
        sent = 0 if team is None else team.backlog + team.failed + team.delivered_recent
        return found, sent

    with RelayServer(instance()) as one, RelayServer(instance()) as two:
        incident, _ = asyncio.run(in_the_store())
        body, headers = signed_callback(cid, "silence 2h")
        first = httpx.post(f"{one.url}/callbacks/ops", content=body, headers=headers)
        expected = f"#{incident.number} silenced for 2h by alice (silence silence-1)"
        assert first.json() == {"msgtype": "text", "text": {"content": expected}}
        # DingTalk's retry (or a replay) reaches the other instance: A's answer, no action.
        second = httpx.post(f"{two.url}/callbacks/ops", content=body, headers=headers)
        assert second.json() == first.json()
        assert len(alertmanager.made) == 1
        after, told_team = asyncio.run(in_the_store(incident.number))
        assert [e.kind for e in after.timeline].count(EventKind.SILENCED) == 1
        assert told_team == 1  # the team group is told once, by the instance that acted


class Instances:
    """Two relays sharing one incident store, as a fleet's instances share PostgreSQL's."""

    def __init__(self, am: httpx.MockTransport, store: IncidentStore | None = None) -> None:
        self.store: IncidentStore = store or MemoryIncidentStore()
        self.relays = [self._relay(am) for _ in "ab"]
        self.cid = "cidOps0123456789"

    def _relay(self, am: httpx.MockTransport) -> Relay:
        app = AsyncApp(APP_KEY, APP_SECRET, api_base="http://dingtalk.invalid", token_cache=None)
        relay = Relay(
            [AppTarget("oncall", app, "app-group", open_conversation_id="cidOps0123456789")],
            incidents=self.store,
            chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET)]),
        )
        assert relay.chat is not None and relay.chat.commands is not None
        relay.chat.commands.silences = Silences("http://am.example", transport=am)
        return relay

    def chat(self, index: int) -> ChatReceivers:
        chat = self.relays[index].chat
        assert chat is not None
        return chat

    async def incident(self) -> Incident:
        return await self.store.open_incident(
            route="ops",
            group_key="g",
            title="DiskFull",
            labels=LABELS,
            policy=None,
            targets=["oncall"],
            due_at=None,
            now=time.time(),
        )

    def message(self, text: str = "silence 2h") -> IncomingMessage:
        return parse_incoming(
            {
                "msgtype": "text",
                "text": {"content": f" {text}"},
                "conversationType": "2",
                "conversationId": self.cid,
                "senderStaffId": "alice",
                "msgId": "msgTwice01",
            }
        )


class HeldAlertmanager:
    """Makes each silence asked for, and answers it only once ``release`` is set."""

    def __init__(self) -> None:
        self.made = 0
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.made += 1
        number = self.made
        await self.release.wait()
        return httpx.Response(200, json={"silenceID": f"silence-{number}"})


async def _until(condition: typing.Callable[[], bool]) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


def test_another_instance_waits_for_the_answer_of_the_one_acting() -> None:
    async def scenario() -> None:
        am = HeldAlertmanager()
        fleet = Instances(httpx.MockTransport(am))
        incident = await fleet.incident()
        acting = asyncio.create_task(fleet.chat(0).handle("ops", fleet.message()))
        await _until(lambda: am.made == 1)  # instance A is making the silence
        waiting = asyncio.create_task(fleet.chat(1).handle("ops", fleet.message()))
        await asyncio.sleep(0.2)  # B has looked in the store (more than once) meanwhile
        assert not waiting.done()
        am.release.set()
        first, second = await acting, await waiting
        assert first.text == f"#{incident.number} silenced for 2h by alice (silence silence-1)"
        assert second.text == first.text and am.made == 1

    asyncio.run(scenario())


def test_an_instance_that_waited_long_enough_says_the_command_is_being_handled() -> None:
    async def scenario() -> None:
        am = HeldAlertmanager()
        fleet = Instances(httpx.MockTransport(am))
        await fleet.incident()
        fleet.chat(1).pending_polls = 1
        acting = asyncio.create_task(fleet.chat(0).handle("ops", fleet.message()))
        await _until(lambda: am.made == 1)
        busy = await fleet.chat(1).handle("ops", fleet.message())
        assert busy.text == BEING_HANDLED and am.made == 1
        am.release.set()
        done = await acting
        # Not remembered as B's answer: a later delivery to B gets A's.
        assert (await fleet.chat(1).handle("ops", fleet.message())).text == done.text
        assert am.made == 1

    asyncio.run(scenario())


def test_a_command_that_raised_may_be_tried_again_by_the_next_delivery() -> None:
    calls: list[int] = []

    def broken_then_fine(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug on the way to Alertmanager")
        return httpx.Response(200, json={"silenceID": "silence-2"})

    async def scenario() -> None:
        fleet = Instances(httpx.MockTransport(broken_then_fine))
        incident = await fleet.incident()
        with pytest.raises(RuntimeError, match="a bug"):
            await fleet.chat(0).handle("ops", fleet.message())
        answer = await fleet.chat(1).handle("ops", fleet.message())
        assert answer.text == f"#{incident.number} silenced for 2h by alice (silence silence-2)"
        assert len(calls) == 2

    asyncio.run(scenario())


def test_without_its_store_the_relay_does_not_act_on_a_message_it_cannot_remember() -> None:
    am = HeldAlertmanager()

    async def scenario() -> None:
        store = MemoryIncidentStore()
        fleet = Instances(httpx.MockTransport(am), store)
        await fleet.incident()
        await store.aclose()  # the store is unreachable
        answer = await fleet.chat(0).handle("ops", fleet.message())
        assert answer.text == UNREMEMBERED and am.made == 0
        await store.open()
        am.release.set()
        assert "silenced for 2h" in (await fleet.chat(0).handle("ops", fleet.message())).text

    asyncio.run(scenario())


def test_a_message_id_of_any_length_or_text_is_remembered_in_postgresql(schema: str) -> None:
    from _pgsupport import DSN
    from dingpush.relay.stores import PostgresStore

    calls: list[int] = []

    def am(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json={"silenceID": f"silence-{len(calls)}"})

    async def scenario() -> None:
        async with PostgresStore(DSN, schema=schema, pool_size=2) as store:
            fleet = Instances(httpx.MockTransport(am), store.incidents)
            await fleet.incident()
            # 30 KB that do not compress (an index entry holds about 2.7 KB), and a NUL
            for msg_id in (secrets.token_hex(15_000), "\x00\u00e9\U0001f600"):
                message = dataclasses.replace(fleet.message(), msg_id=msg_id)
                first = await fleet.chat(0).handle("ops", message)
                assert (await fleet.chat(1).handle("ops", message)).text == first.text
            assert len(calls) == 2

    asyncio.run(scenario())


def test_an_incident_store_without_a_chat_memory_remembers_in_the_process() -> None:
    class Older:
        """An incident store written before the contract remembered chat messages."""

        def __init__(self) -> None:
            self.inner = MemoryIncidentStore()

        def __getattr__(self, name: str) -> typing.Any:
            if name in ("claim_chat_message", "answer_chat_message"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    calls: list[int] = []

    def am(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json={"silenceID": f"silence-{len(calls)}"})

    async def scenario() -> None:
        fleet = Instances(httpx.MockTransport(am))
        older = Older()
        app = AsyncApp(APP_KEY, APP_SECRET, api_base="http://dingtalk.invalid", token_cache=None)
        relay = Relay(
            [AppTarget("oncall", app, "app-group", open_conversation_id=fleet.cid)],
            incidents=typing.cast("IncidentStore", older),
            chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET)]),
        )
        assert relay.chat is not None and relay.chat.commands is not None
        relay.chat.commands.silences = Silences(
            "http://am.example", transport=httpx.MockTransport(am)
        )
        assert relay.chat.memory is not older
        await older.inner.open_incident(
            route="ops",
            group_key="g",
            title="DiskFull",
            labels=LABELS,
            policy=None,
            targets=["oncall"],
            due_at=None,
            now=time.time(),
        )
        answers = await asyncio.gather(
            *(relay.chat.handle("ops", fleet.message()) for _ in range(3))
        )
        assert len({a.text for a in answers}) == 1 and len(calls) == 1

    asyncio.run(scenario())
