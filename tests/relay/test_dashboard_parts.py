"""The dashboard's parts on their own: sessions on a fake clock, and previews per channel."""

from __future__ import annotations

import pytest
from starlette.requests import Request  # noqa: TID251

from dingpush import AsyncApp
from dingpush.relay import AppTarget, Relay, RobotTarget
from dingpush.relay._dashboard_auth import (
    COOKIE,
    MAX_SESSIONS,
    DashboardAuth,
    safe_next,
)
from dingpush.relay._dashboard_views import channel_payload, target_rows
from dingpush.relay._http import RelayHosts
from dingpush.testing import EmulatorServer, FakeClock
from dingpush.web import ActionCardView, view_for

TOKEN = "dashboard-unit-token-0123456789"


def _request(
    cookie: str | None = None, headers: dict[str, str] | None = None, scheme: str = "http"
) -> Request:
    raw = [(b"host", b"relay.example:8080")]
    if cookie is not None:
        raw.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "path": "/",
        "query_string": b"",
        "headers": raw,
        "server": ("relay.example", 8080),
    }
    return Request(scope)


def test_a_session_lasts_its_lifetime_and_no_longer() -> None:
    clock = FakeClock()
    auth = DashboardAuth([TOKEN], clock=clock, lifetime=3600)
    assert auth.required and auth.session(_request()) is None
    assert auth.sign_in("wrong-token-0123456789") is None
    session_id = auth.sign_in(TOKEN)
    assert session_id is not None and TOKEN not in session_id
    session = auth.session(_request(session_id))
    assert session is not None and len(session.csrf) >= 40
    clock.advance(3599)
    assert auth.session(_request(session_id)) == session
    clock.advance(1)
    assert auth.session(_request(session_id)) is None
    assert "0 sessions" in repr(auth)


def test_sessions_are_capped_and_each_has_its_own_csrf_token() -> None:
    auth = DashboardAuth([TOKEN], clock=FakeClock())
    first = auth.sign_in(TOKEN)
    ids = [auth.sign_in(TOKEN) for _ in range(MAX_SESSIONS)]
    assert auth.session(_request(first)) is None  # the oldest made room
    sessions = [auth.session(_request(i)) for i in ids[-3:]]
    assert len({s.csrf for s in sessions if s is not None}) == 3


def test_an_open_dashboard_has_one_session_and_no_sign_in() -> None:
    auth = DashboardAuth([])
    assert not auth.required
    assert auth.sign_in(TOKEN) is None
    assert auth.session(_request()) is auth.session(_request("anything"))


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),  # not a browser: the CSRF token decides
        ({"Origin": "http://relay.example:8080"}, True),
        ({"Origin": "http://relay.example:8081"}, False),
        ({"Origin": "https://relay.example:8080"}, False),
        ({"Origin": "null"}, False),
        ({"Referer": "http://relay.example:8080/ui/messages/1"}, True),
        ({"Referer": "http://evil.example/"}, False),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://relay.example:8080"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
    ],
)
def test_same_site(headers: dict[str, str], allowed: bool) -> None:
    auth = DashboardAuth([], hosts=RelayHosts(frozenset({"relay.example"})))
    assert auth.same_site(_request(headers=headers)) is allowed


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/ui/messages/1?x=2", "/ui/messages/1?x=2"),
        (None, "/relay/"),
        ("", "/relay/"),
        ("https://evil.example/", "/relay/"),
        ("//evil.example/", "/relay/"),
        ("/\\evil.example", "/relay/"),
    ],
)
def test_safe_next(given: str | None, expected: str) -> None:
    assert safe_next(given, "/relay") == expected


async def _app_relay(emulator: EmulatorServer) -> Relay:
    config = emulator.add_app("ops-app", groups=["Ops"], users=("alice",))
    (cid,) = config.groups
    app = AsyncApp(config.app_key, config.app_secret, api_base=emulator.url, token_cache=False)
    return Relay(
        [
            AppTarget("group", app, "app-group", open_conversation_id=cid),
            AppTarget(
                "notice",
                app,
                "work-notice",
                agent_id=config.agent_id,
                users=["alice"],
                owns_app=True,
            ),
            RobotTarget("robot", "https://oapi.dingtalk.com/robot/send?access_token=abc"),
        ]
    )


@pytest.mark.anyio
async def test_previews_follow_the_target_channel(dingtalk_emulator: EmulatorServer) -> None:
    async with await _app_relay(dingtalk_emulator) as relay:
        card = {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "Vote",
                "text": "Ship?",
                "btnOrientation": "1",
                "btns": [
                    {"title": "Yes", "actionURL": "https://e.x/y"},
                    {"title": "No", "actionURL": "https://e.x/n"},
                ],
            },
        }
        group, channel = channel_payload(relay, "group", card)
        assert channel == "app-robot" and group["msgKey"] == "sampleActionCard6"
        notice, channel = channel_payload(relay, "notice", card)
        assert channel == "work-notice" and notice["msg"]["msgtype"] == "action_card"
        robot, channel = channel_payload(relay, "robot", card)
        assert channel is None and robot is card
        for payload, where in ((group, "app-robot"), (notice, "work-notice"), (robot, None)):
            view = view_for(payload, where)
            assert isinstance(view, ActionCardView)
            assert [b.title for b in view.buttons] == ["Yes", "No"]
        feed = {"msgtype": "feedCard", "feedCard": {"links": []}}
        assert channel_payload(relay, "group", feed) == (feed, None)  # not for app robots
        rows = target_rows(await relay.target_views())
        assert [r.name for r in rows] == ["group", "notice", "robot"]
        assert rows[1].destination.startswith("app ") and rows[2].next_slot == "now"
