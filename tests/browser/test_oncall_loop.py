"""The on-call loop end to end in Chromium, with a real Alertmanager and the relay over HTTP.

An alert fires in Alertmanager → the relay's receiver posts it in the group (an app robot) and
opens its incident → nobody acknowledges it within the policy's delay → a phone DING to the
on-call person (alice, by the schedule) → "alice" types ``ack`` in the emulator's chat view →
the escalation stops and the group shows "acknowledged by alice"; ``silence 1h`` →
Alertmanager's API shows a silence with the alert's matchers and alice as its creator; the
alert resolves → the timeline is complete.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import pathlib
import time
import typing
import urllib.request

from bench._alertmanager import Alertmanager, alert, free_port
from playwright.sync_api import Page, expect

from dingpush import AsyncApp
from dingpush.alerts import AlertSettings, Person, Route
from dingpush.relay import (
    AlertReceivers,
    AppTarget,
    ChatReceivers,
    OnCall,
    Policy,
    ReceivingApp,
    Relay,
    RelayServer,
    RelaySettings,
    Schedule,
    Step,
)
from dingpush.relay._incidents import EventKind, Incident, IncidentState, IncidentStore
from dingpush.testing import EmulatorServer

from .conftest import Screenshot

APP_KEY = "dingbrowseroncall01"
APP_SECRET = "browser-oncall-secret-0123456789abcdef"
T = typing.TypeVar("T")
LABELS = {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"}


def _wait(check: typing.Callable[[], object], what: str, timeout: float = 60.0) -> typing.Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)
    return found


def _texts(server: EmulatorServer, cid: str) -> list[str]:
    """What the group shows, each message as its JSON (app templates, text, markdown)."""
    return [
        json.dumps(m.payload, ensure_ascii=False)
        for m in server.emulator.messages(conversation=cid)
    ]


def test_alert_ack_silence_resolve_from_the_chat_view(
    page: Page,
    dingtalk_emulator: EmulatorServer,
    screenshot: Screenshot,
    tmp_path: pathlib.Path,
) -> None:
    server = dingtalk_emulator
    server.add_app("ops", APP_KEY, APP_SECRET, users=("alice", "bob"), groups=["Ops"])
    cid = next(iter(server.emulator.app("ops").groups))
    port = free_port()
    people = {"alice": Person(user_id="alice"), "bob": Person(user_id="bob")}
    oncall = OnCall(
        policies={
            "page": Policy(
                name="page",
                steps=(
                    Step(after=1.0, ding="oncall", remind="call"),  # 1 s: a test's "5m"
                    Step(after=3600.0, ding="bob", remind="call"),  # never: alice takes it
                ),
            )
        },
        schedules={
            "oncall": Schedule(
                name="oncall",
                people=("alice", "bob"),
                start=datetime.datetime.now(datetime.UTC),  # alice's turn
                every=7 * 86400.0,
            )
        },
        people=people,
    )
    with Alertmanager(tmp_path / "am", f"http://127.0.0.1:{port}/alertmanager/ops") as am:
        relay = Relay(
            [
                AppTarget(
                    "oncall",
                    AsyncApp(APP_KEY, APP_SECRET, api_base=server.url, token_cache=None),
                    "app-group",
                    open_conversation_id=cid,
                    owns_app=True,
                )
            ],
            settings=RelaySettings(
                port=port,
                idle_poll=0.2,
                alertmanager_url=am.url,
                silence_check=0.5,
                escalation_poll=0.2,
            ),
            alerts=AlertReceivers(
                AlertSettings(routes={"ops": Route(targets=["oncall"])}, people=people),
                oncall=oncall,
                policies={"ops": "page"},
            ),
            chat=ChatReceivers([ReceivingApp("ops", APP_KEY, APP_SECRET, server.url)]),
        )
        with RelayServer(relay) as relay_server:
            server.emulator.update_app("ops", callback_url=f"{relay_server.url}/callbacks/ops")

            # An alert fires: Alertmanager → the relay's receiver → the group.
            am.fire([alert("DiskFull", {"instance": "db-1", "severity": "critical"})])
            _wait(lambda: any("DiskFull" in t for t in _texts(server, cid)), "the group message")
            store = relay.incidents
            (incident,) = _run(store.list_incidents())
            assert incident.policy == "page" and dict(incident.labels) == LABELS

            # Nobody takes it: after the policy's delay, a phone DING to the on-call person.
            (ding,) = _wait(server.emulator.dings, "the DING")
            assert (ding.receivers, ding.remind_type) == (("alice",), 3)

            # alice takes it in the chat view.
            page.goto(f"{server.url}/_emulator/chat/{cid}")
            expect(page.locator("body")).to_have_attribute("data-live", "on")
            _say(page, "ack")
            expect(page.locator("#messages .msg").last).to_contain_text(
                f"#{incident.number} acknowledged by alice"
            )
            after = _get(store, incident.number)
            assert after.state is IncidentState.ACKNOWLEDGED and after.acknowledged_by == "alice"
            assert after.due_at is None and after.step == 1  # the escalation stopped
            screenshot("acknowledged")

            # alice silences it for an hour: a silence in Alertmanager, alice its creator.
            _say(page, "silence 1h")
            expect(page.locator("#messages .msg").last).to_contain_text(
                f"#{incident.number} silenced for 1h by alice (silence "
            )
            silences = _silences(am)
            (silence,) = [s for s in silences if s["status"]["state"] == "active"]
            assert silence["createdBy"] == "alice"
            assert {
                (m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in silence["matchers"]
            } == {(name, value, True, False) for name, value in LABELS.items()}
            screenshot("silenced")

            # The alert resolves; the incident closes with its whole timeline.
            am.fire(
                [
                    alert(
                        "DiskFull",
                        {"instance": "db-1", "severity": "critical"},
                        ends=time.time() - 1,
                    )
                ]
            )
            # Alertmanager mutes a silenced alert's resolution too: the relay's silence watch
            # asks it, sees the alert gone, and closes the incident.
            closed = _wait(lambda: _closed(store, incident.number), "the incident resolved")
            expect(page.locator("#messages .msg").last).to_contain_text(
                f"#{incident.number} resolved (while silenced)"
            )
            screenshot("resolved")
            kinds = [e.kind for e in closed.timeline]
            assert kinds[0] is EventKind.OPENED and kinds[-2:] == [
                EventKind.NOTE,
                EventKind.RESOLVED,
            ]
            order = [EventKind.DING, EventKind.ACKNOWLEDGED, EventKind.SILENCED]
            assert [k for k in kinds if k in order] == order
            assert EventKind.SENT in kinds
            assert len(server.emulator.dings()) == 1  # the second step never ran
            (acked,) = [e for e in closed.timeline if e.kind is EventKind.ACKNOWLEDGED]
            (silenced,) = [e for e in closed.timeline if e.kind is EventKind.SILENCED]
            assert (acked.who, acked.detail) == ("alice", "chat")
            assert silenced.who == "alice" and silenced.detail.startswith(
                f"silence {silence['id']} "
            )
            assert 0 < acked.at <= silenced.at


def _run(work: typing.Coroutine[typing.Any, typing.Any, T]) -> T:
    """Run a store call: Playwright's sync API holds this thread's event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def _say(page: Page, text: str) -> None:
    page.locator("#post-user").select_option("alice")
    page.locator("#post-text").fill(text)
    page.get_by_role("button", name="Send").click()


def _get(store: IncidentStore, number: int) -> Incident:
    found = _run(store.get(number))
    assert found is not None
    return found


def _silences(am: Alertmanager) -> list[dict[str, typing.Any]]:
    with urllib.request.urlopen(f"{am.url}/api/v2/silences", timeout=10) as answer:
        return list(json.loads(answer.read()))


def _closed(store: IncidentStore, number: int) -> Incident | None:
    incident = _get(store, number)
    return incident if incident.state is IncidentState.RESOLVED else None
