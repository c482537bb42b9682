"""[relay] receive, alertmanager_url, silence_check, silence_max, ack_secret, ack_link_ttl:
read strictly, each problem with its line and fix; the relay's apps receive chat commands."""

from __future__ import annotations

import pathlib

import pytest

from dingpush import ConfigError
from dingpush.relay import ChatReceivers, Relay, RelaySettings
from dingpush.relay._config import load_relay

APP_SECRET = "app-secret-0123456789-abcdefghijklmnop"
APPS = f"""
[apps.corp]
app_key = "dingappkey0123456789"
app_secret = "{APP_SECRET}"
token_cache = false

[targets.ops]
kind = "app-group"
app = "corp"
open_conversation_id = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="
"""


def _load(tmp_path: pathlib.Path, relay: str) -> Relay:
    path = tmp_path / "dingpush.toml"
    path.write_text(APPS + '\n[relay]\nstore = "memory"\n' + relay, encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    return loaded[0]


def test_the_on_call_settings_are_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACK_SECRET", "ack-secret-from-the-environment-0123")
    relay = _load(
        tmp_path,
        """receive = "stream"
alertmanager_url = "http://relay:am-pass-0123@127.0.0.1:9093"
silence_check = "30s"
silence_max = "2d"
public_url = "https://relay.example.com"
ack_secret = "${ACK_SECRET}"
ack_link_ttl = "2h"
""",
    )
    settings = relay.settings
    assert (settings.receive, settings.silence_check, settings.ack_link_ttl) == (
        "stream",
        30.0,
        7200.0,
    )
    chat = relay.chat
    assert isinstance(chat, ChatReceivers) and chat.mode == "stream" and set(chat.apps) == {"corp"}
    assert chat.commands is not None and chat.commands.silence_max == 2 * 86400.0
    assert relay.silences is not None and relay.ack_links is not None
    assert relay.silences.url == "http://127.0.0.1:9093"
    assert relay.ack_links.link(7).startswith("https://relay.example.com/ack/7/")
    shown = repr(relay) + repr(settings) + repr(chat) + repr(relay.silences)
    for secret in ("am-pass-0123", "ack-secret-from-the-environment-0123", APP_SECRET):
        assert secret not in shown
        assert secret not in relay.redact(f"logged: {secret}.")


def test_without_app_targets_nothing_receives(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dingpush.toml"
    path.write_text(
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send?access_token=abc0123456789"'
        '\n[relay]\nstore = "memory"\n',
        encoding="utf-8",
    )
    loaded = load_relay(str(path))
    assert loaded is not None
    relay = loaded[0]
    assert relay.chat is None and relay.silences is None and relay.ack_links is None


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('receive = "pigeon"', "relay.receive", "'pigeon' is not a receiving mode. Fix: write"),
        ('alertmanager_url = "am:9093"', "relay.alertmanager_url", "not an http(s) URL. Fix"),
        ('public_url = "relay.example.com"', "relay.public_url", "not an http(s) URL. Fix"),
        ('silence_check = "0s"', "relay.silence_check", "longer than zero"),
        ('silence_max = "0s"', "relay.silence_max", "longer than zero"),
        ('ack_secret = "short"', "relay.ack_secret", "at least 16 characters. Fix: generate"),
        ('ack_secret = "long-enough-ack-secret-0123"', "relay.ack_secret", "Fix: set public_url"),
        (  # public_url's own problem, not a second one about ack_secret
            'public_url = "x"\nack_secret = "long-enough-ack-secret-0123"',
            "relay.public_url",
            "not an http(s) URL",
        ),
        ('ack_link_ttl = "soon"', "relay.ack_link_ttl", "is not a duration"),
        # An expiry beyond what a link's token holds made every link 404: refused at load.
        ('ack_link_ttl = "999999999d"', "relay.ack_link_ttl", "is longer than 100 years"),
        ("ack_link_ttl = 1e300", "relay.ack_link_ttl", "is longer than 100 years"),
        ('ack_link_ttl = "36500d"', "relay.ack_link_ttl", "at most 30 days: a link in an alert"),
        ("ack_link_ttl = 99999999", "relay.ack_link_ttl", 'Fix: write e.g. "24h" (at most'),
        ("ack_link_ttl = inf", "relay.ack_link_ttl", "inf is not a duration"),
        # An integer beyond any float crashed the reader (OverflowError); it is named, cut short.
        ("ack_link_ttl = 1" + "0" * 400, "relay.ack_link_ttl", "0" * 20 + "… is not a duration"),
        ('ack_link_ttl = "31d"', "relay.ack_link_ttl", "long settled after that"),
        ('ack_link_ttl = "1ms"', "relay.ack_link_ttl", "at least a minute"),
        ('ack_link_ttl = "30s"', "relay.ack_link_ttl", "at least a minute"),
        ("recieve = 1", "relay.recieve", "did you mean 'receive'?"),
    ],
)
def test_a_bad_setting_names_its_line_and_fix(
    tmp_path: pathlib.Path, line: str, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, line + "\n")
    text = str(caught.value)
    assert f"dingpush.toml:{_line(tmp_path, key)}: {key}: " in text and message in text, text
    assert "problems" not in text  # one problem each
    assert "long-enough-ack-secret" not in text


def test_the_longest_ack_link_ttl_still_makes_links_that_acknowledge(
    tmp_path: pathlib.Path,
) -> None:
    relay = _load(
        tmp_path,
        'public_url = "https://relay.example.com"\nack_secret = "long-enough-ack-secret-0123"\n'
        'ack_link_ttl = "30d"\n',
    )
    assert relay.ack_links is not None
    token = relay.ack_links.link(7, now=1_800_000_000.0).rsplit("/", 1)[1]
    checked = relay.ack_links.check(7, token, now=1_800_000_000.0 + 29 * 86400)
    assert checked.expires_at == 1_800_000_000 + 30 * 86400
    with pytest.raises(ConfigError, match="at most 30 days"):
        RelaySettings(ack_link_ttl=1e15)


def _line(tmp_path: pathlib.Path, key: str) -> int:
    """The line of ``key`` (``relay.NAME``) in the file ``_load`` wrote."""
    lines = (tmp_path / "dingpush.toml").read_text(encoding="utf-8").splitlines()
    name = key.removeprefix("relay.")
    return next(n for n, line in enumerate(lines, 1) if line.startswith(f"{name} ="))
