"""docs/oncall.md's policies and schedules example loads and runs against the emulator.

The block marked ``<!-- test: oncall-config -->`` is loaded by the relay's own loader, with
the app pointed at the emulator; an Alertmanager notification through its route opens an
incident, and the policy's first step, run at once, DINGs whoever the schedule has on call
now, by phone.
"""

from __future__ import annotations

import pathlib
import re
import typing

import httpx
import pytest

from _docblocks import ROOT
from dingpush.alerts import sample
from dingpush.relay import create_app
from dingpush.relay._config import load_relay
from dingpush.relay._oncall import parse_instant
from dingpush.testing import EmulatorServer

from ._support import eventually

pytestmark = pytest.mark.anyio

GUIDE = ROOT / "docs" / "oncall.md"
_BLOCK = re.compile(r"<!-- test: oncall-config -->\s*\n```toml\n(?P<body>.*?)\n```", re.DOTALL)
APP_KEY = "dingoncalldocs012345"
APP_SECRET = "oncall-docs-app-secret-0123456789abcdefghijklmnop"


def example() -> str:
    (body,) = [m["body"] for m in _BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]
    return body


def test_the_example_reads_as_the_guide_says(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORP_APP_KEY", APP_KEY)
    monkeypatch.setenv("CORP_APP_SECRET", APP_SECRET)
    path = tmp_path / "dingpush.toml"
    path.write_text(example(), encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    alerts = loaded[0].alerts
    assert alerts is not None and alerts.oncall is not None
    assert alerts.policies == {"ops": "page"}
    schedule = alerts.oncall.schedules["oncall"]

    def on_call(text: str) -> str:
        return schedule.on_call(parse_instant(text).timestamp())

    assert on_call("2026-12-01T12:00+08:00") == "alice"
    assert on_call("2026-12-08T12:00+08:00") == "bob"
    assert on_call("2026-12-25T12:00+08:00") == "carol"
    assert loaded[0].settings.escalation_poll == 1.0


async def test_the_example_dings_the_on_call_person_by_phone(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, dingtalk_emulator: EmulatorServer
) -> None:
    body = example()
    groups = re.findall(r'open_conversation_id = "([^"]+)"', body)
    dingtalk_emulator.add_app(
        "corp",
        APP_KEY,
        APP_SECRET,
        users=("alice", "manager4220", "user123"),
        groups={cid: f"group {n}" for n, cid in enumerate(groups)},
    )
    monkeypatch.setenv("CORP_APP_KEY", APP_KEY)
    monkeypatch.setenv("CORP_APP_SECRET", APP_SECRET)
    at_emulator = (
        f'[apps.corp]\napi_base = "{dingtalk_emulator.url}"\n'
        f'oapi_base = "{dingtalk_emulator.url}"\ntoken_cache = false\n'
    )
    path = tmp_path / "dingpush.toml"
    path.write_text(body.replace("[apps.corp]\n", at_emulator, 1), encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    relay = loaded[0]
    assert relay.escalation is not None and relay.alerts is not None
    app = create_app(relay)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            _, firing = sample("alertmanager-firing")
            reply = await http.post("/alertmanager/ops", json=firing)
            assert reply.status_code == 200, reply.text
            (incident,) = await relay.incidents.list_incidents()
            assert incident.policy == "page" and incident.due_at == incident.opened_at + 300
            await relay.escalation.escalate(incident)  # its deadline, without the wait
            await eventually(lambda: len(dingtalk_emulator.emulator.dings()) == 1, what="DING")
    (ding,) = dingtalk_emulator.emulator.dings()
    person = relay.alerts.oncall.schedules["oncall"].on_call(incident.opened_at)  # type: ignore[union-attr]
    user_id = relay.alerts.people.get(person)
    assert user_id is not None
    assert (ding.remind_type, ding.receivers) == (3, (typing.cast(str, user_id.user_id),))
