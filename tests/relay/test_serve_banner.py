"""``dingpush serve``'s banner: the Alerts page, escalation, ack links and each receiving app's
callback URL, on or off; never a secret."""

from __future__ import annotations

import pathlib

import pytest

from dingpush.relay._cli import banner
from dingpush.relay._config import load_relay

from .test_chat_config import APP_SECRET, APPS
from .test_oncall_config import APP, GOOD

URL = "http://127.0.0.1:8080"
ACK_SECRET = "ack-secret-from-the-environment-0123"
AM_PASSWORD = "am-pass-0123"


def _banner(tmp_path: pathlib.Path, text: str) -> list[str]:
    path = tmp_path / "dingpush.toml"
    path.write_text(text, encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    relay, origin = loaded
    return banner(relay, URL, origin)


def test_the_on_call_loop_is_announced_without_secrets(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACK_SECRET", ACK_SECRET)
    relay = f"""
[relay]
store = "memory"
receive = "stream"
alertmanager_url = "http://relay:{AM_PASSWORD}@127.0.0.1:9093"
public_url = "https://relay.example.com"
ack_secret = "${{ACK_SECRET}}"
ack_link_ttl = "2h"
"""
    lines = _banner(tmp_path, APP + GOOD + relay)
    text = "\n".join(lines)
    assert f"  alerts: {URL}/ui/alerts  (incidents: acknowledge, recall, timeline)" in lines
    assert "  escalation: on  (policies page, watch on 3 routes)" in lines
    assert "  ack links: on  (https://relay.example.com/ack/N/…, signed, valid 2h)" in lines
    assert (
        "  chat corp: Stream mode (no public URL needed); callback URL "
        "https://relay.example.com/callbacks/corp too"
    ) in lines
    assert "  silences: Alertmanager at http://127.0.0.1:9093" in lines
    assert not [line for line in lines if "loopback address" in line]  # Stream mode, public_url
    assert lines[-1].startswith("  outbox: ")
    for secret in (ACK_SECRET, AM_PASSWORD, "app-secret-0123456789abcdef0123456789"):
        assert secret not in text


def test_what_is_off_says_how_to_switch_it_on(tmp_path: pathlib.Path) -> None:
    routes = '\n[routes.ops]\ntargets = ["ops"]\n\n[relay]\nstore = "memory"\n'
    lines = _banner(tmp_path, APPS + routes)
    assert f"  alerts: {URL}/ui/alerts  (incidents: acknowledge, recall, timeline)" in lines
    assert "  escalation: off  (no route names a policy; see docs/oncall.md)" in lines
    assert "  ack links: off  (set ack_secret and public_url under [relay])" in lines
    assert (
        f"  chat corp: callback URL {URL}/callbacks/corp  (the robot's message receiving URL)"
    ) in lines
    assert "  silences: off  (set alertmanager_url under [relay])" in lines
    assert APP_SECRET not in "\n".join(lines)
    # The callback URL printed is the relay's loopback address: DingTalk can never call it.
    assert (
        "  chat: DingTalk cannot call a loopback address: set public_url under [relay] (an "
        'HTTPS name DingTalk reaches), or receive = "stream"'
    ) in lines


def test_a_relay_without_alerts_or_chat_says_nothing_of_them(tmp_path: pathlib.Path) -> None:
    webhook = "https://oapi.dingtalk.com/robot/send?access_token=abc0123456789"
    lines = _banner(tmp_path, f'[targets.ops]\nwebhook = "{webhook}"\n[relay]\nstore = "memory"\n')
    assert not [line for line in lines if line.startswith(("  alerts", "  chat", "  escal"))]
    assert lines[0].startswith(f"dingpush relay listening on {URL}  (API docs {URL}/docs;")
    assert "abc0123456789" not in "\n".join(lines)  # the webhook's token is masked
