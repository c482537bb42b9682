"""docs/oncall.md's chat-commands configuration loads, and runs against the emulator.

The block marked ``<!-- test: chat-config -->`` is loaded by the relay's own loader with the
app pointed at the emulator (Stream mode, as written); an Alertmanager notification through
its route opens an incident, and "alice" (userId manager4220) acknowledges it from the group.
"""

from __future__ import annotations

import pathlib
import re
import time

import httpx
import pytest

from _docblocks import ROOT
from dingpush.alerts import sample
from dingpush.relay import ChatReceivers, RelayServer
from dingpush.relay._config import load_relay
from dingpush.testing import EmulatorServer

GUIDE = ROOT / "docs" / "oncall.md"
_BLOCK = re.compile(r"<!-- test: chat-config -->\s*\n```toml\n(?P<body>.*?)\n```", re.DOTALL)
APP_KEY = "dingchatdocs01234567"
APP_SECRET = "chat-docs-app-secret-0123456789abcdefghijklmnop"


def example() -> str:
    (body,) = [m["body"] for m in _BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]
    return body


def test_the_example_acknowledges_from_the_group_over_stream_mode(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, dingtalk_emulator: EmulatorServer
) -> None:
    body = example()
    (cid,) = re.findall(r'open_conversation_id = "([^"]+)"', body)
    dingtalk_emulator.add_app(
        "corp", APP_KEY, APP_SECRET, users=("manager4220",), groups={cid: "Ops"}
    )
    monkeypatch.setenv("DINGTALK_APP_KEY", APP_KEY)
    monkeypatch.setenv("DINGTALK_APP_SECRET", APP_SECRET)
    at_emulator = (
        f'[apps.corp]\napi_base = "{dingtalk_emulator.url}"\n'
        f'oapi_base = "{dingtalk_emulator.url}"\ntoken_cache = false\n'
    )
    path = tmp_path / "dingpush.toml"
    path.write_text(body.replace("[apps.corp]\n", at_emulator, 1), encoding="utf-8")
    loaded = load_relay(str(path), port=0, store="memory")
    assert loaded is not None
    relay = loaded[0]
    assert isinstance(relay.chat, ChatReceivers) and relay.chat.mode == "stream"
    assert relay.silences is not None and relay.silences.url == "http://127.0.0.1:9093"
    with RelayServer(relay) as server:
        deadline = time.monotonic() + 30
        while dingtalk_emulator.emulator.stream.connections("corp") == 0:
            assert time.monotonic() < deadline, "the relay's Stream client did not connect"
            time.sleep(0.02)
        _, firing = sample("alertmanager-firing")
        assert httpx.post(f"{server.url}/alertmanager/ops", json=firing).status_code == 200
        dingtalk_emulator.emulator.post_as_user("corp", "manager4220", "ack", group="Ops")
        expected = "#1 acknowledged by alice"
        while not any(
            m.payload.get("text", {}).get("content") == expected
            for m in dingtalk_emulator.emulator.messages(conversation=cid)
        ):
            assert time.monotonic() < deadline, "no acknowledgement in the group"
            time.sleep(0.02)
