"""The relay's dashboard in Chromium: a queued message delivered, retry, sign-in, accessibility."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from dingpush import RetryPolicy
from dingpush.demo import sample_messages
from dingpush.relay import Relay, RelayServer, RelaySettings, RobotTarget
from dingpush.testing import EmulatorServer

from .conftest import Screenshot, assert_accessible

API_TOKEN = "browser-dashboard-token-0123456789"
ROBOT_TOKEN = "browser-dashboard-robot-token-0123456789"
ROBOT_SECRET = "SEC-browser-dashboard-secret-0123"
#: Every retry 0.3 s later: a message held by a fault stays "queued" between its attempts.
STEADY_RETRY = RetryPolicy(
    max_attempts=10_000, base_delay=0.3, max_delay=0.3, jitter=0.0, max_elapsed=math.inf
)
LIVE = 10_000  # ms: a bound for what the page shows by itself, not a timing

Serve = Callable[..., RelayServer]


@pytest.fixture
def serve_relay(dingtalk_emulator: EmulatorServer) -> Iterator[Serve]:
    """``serve_relay(api_tokens=…)``: a relay (with its dashboard) for the emulator's ``ops``."""
    dingtalk_emulator.add_robot("ops", ROBOT_TOKEN, secret=ROBOT_SECRET, group="Ops")
    with contextlib.ExitStack() as stack:

        def serve(**settings: object) -> RelayServer:
            target = RobotTarget("ops", dingtalk_emulator.webhook_url("ops"), secret=ROBOT_SECRET)
            options: dict[str, object] = {"port": 0, "retry": STEADY_RETRY, "idle_poll": 0.2}
            options.update(settings)
            relay = Relay([target], settings=RelaySettings(**options))  # type: ignore[arg-type]
            return stack.enter_context(RelayServer(relay))

        yield serve


def send(server: RelayServer, message: object, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(
        f"{server.url}/v1/messages",
        json={"target": "ops", "message": message},
        headers=headers,
        timeout=10,
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def text(content: str) -> dict[str, object]:
    return {"msgtype": "text", "text": {"content": content}}


def open_live(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-live", "on")


def sign_in(page: Page, token: str = API_TOKEN) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_the_dashboard_lists_a_queued_message_and_shows_it_delivered(
    page: Page,
    serve_relay: Serve,
    dingtalk_emulator: EmulatorServer,
    screenshot: Screenshot,
) -> None:
    server = serve_relay()
    open_live(page, server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Relay dashboard")
    expect(page.locator("#messages-body")).to_contain_text("No messages yet")

    # DingTalk answers "busy" (-1, transient) until the fault is cleared: the message waits.
    dingtalk_emulator.emulator.inject_fault("errcode", errcode=-1, count=None, robot="ops")
    message_id = send(server, text("disk full on web-01"))
    row = page.locator(f'#messages-body tr[data-id="{message_id}"]')
    expect(row).to_have_attribute("data-status", "queued", timeout=LIVE)
    expect(row.locator(".status")).to_contain_text("queued")
    expect(row).to_contain_text("disk full on web-01")
    expect(row.locator(".dash-errcode")).to_have_text("-1", timeout=LIVE)
    expect(page.locator('#targets-body tr[data-target="ops"] [data-field="backlog"]')).to_have_text(
        "1", timeout=LIVE
    )
    screenshot("queued")

    dingtalk_emulator.emulator.clear_faults()
    expect(row).to_have_attribute("data-status", "delivered", timeout=LIVE)
    expect(row.locator(".status")).to_contain_text("delivered")
    expect(page.locator('#targets-body tr[data-target="ops"]')).to_contain_text(
        "1 of 20 in 60 s", timeout=LIVE
    )
    (delivered,) = dingtalk_emulator.emulator.messages(robot="ops")
    assert delivered.msg_uuid == message_id
    assert ROBOT_TOKEN not in page.content() and ROBOT_SECRET not in page.content()
    screenshot("delivered")


def test_the_retry_button_requeues_a_failed_message(
    page: Page,
    serve_relay: Serve,
    dingtalk_emulator: EmulatorServer,
    screenshot: Screenshot,
) -> None:
    server = serve_relay(api_tokens=(API_TOKEN,))
    # A wrong signature (310000) is permanent: the message becomes a dead letter.
    dingtalk_emulator.emulator.inject_fault(
        "errcode", errcode=310000, errmsg="sign not match", count=None, robot="ops"
    )
    message_id = send(server, text("nightly backup failed"), token=API_TOKEN)
    page.goto(server.url + "/")
    sign_in(page)
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    page.get_by_label("Status").select_option("failed")  # the filter applies at once
    expect(page).to_have_url(server.url + "/?status=failed")
    row = page.locator(f'#messages-body tr[data-id="{message_id}"]')
    expect(row).to_have_attribute("data-status", "failed", timeout=LIVE)
    row.get_by_role("link", name="nightly backup failed").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(message_id)
    expect(page.locator('[data-field="status"]')).to_contain_text("failed")
    expect(page.locator("#detail-attempts")).to_contain_text("310000")
    screenshot("failed")

    dingtalk_emulator.emulator.clear_faults()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").filter(has_text="Queued again")).to_be_visible()
    expect(page.locator('[data-field="status"]')).to_contain_text("delivered", timeout=LIVE)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.locator("#detail-attempts tbody tr")).to_have_count(2, timeout=LIVE)
    assert [m.msg_uuid for m in dingtalk_emulator.emulator.messages(robot="ops")] == [message_id]
    screenshot("delivered")


def test_without_a_token_the_dashboard_asks_for_one(
    page: Page, serve_relay: Serve, screenshot: Screenshot
) -> None:
    server = serve_relay(api_tokens=(API_TOKEN,))
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the relay")
    expect(page.get_by_role("heading", name="Relay dashboard")).to_have_count(0)
    assert_accessible(page)
    screenshot("sign-in")

    sign_in(page, "not-the-token-0123456789")
    expect(page.get_by_role("alert")).to_contain_text("not one of this relay")
    sign_in(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Relay dashboard")
    expect(page).to_have_url(server.url + "/")
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["value"] != API_TOKEN and API_TOKEN not in page.content()
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session
    screenshot("dashboard")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the relay")
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the relay")


def test_dashboard_pages_are_accessible(
    page: Page,
    serve_relay: Serve,
    dingtalk_emulator: EmulatorServer,
    screenshot: Screenshot,
) -> None:
    server = serve_relay()
    ids = [send(server, message.to_payload()) for message in sample_messages()]
    open_live(page, server.url + "/")
    rows = page.locator("#messages-body tr[data-status=delivered]")
    expect(rows).to_have_count(len(ids), timeout=LIVE)
    assert_accessible(page)
    for status in ("queued", "delivered"):  # status is told in words, not colour alone
        assert status in page.locator("#filter-status").inner_text()
    screenshot("home")

    card = ids[4]  # the two-button action card
    page.goto(f"{server.url}/ui/messages/{card}")
    expect(page.locator(".card--action")).to_be_visible()
    expect(page.get_by_role("link", name="Yes")).to_have_attribute("href", "https://example.com/y")
    expect(page.locator("pre[aria-labelledby=payload-title]")).to_contain_text(
        '"msgtype": "actionCard"'
    )
    assert_accessible(page)
    screenshot("detail")

    response = page.goto(f"{server.url}/ui/messages/no-such-message")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("No such message")
    assert_accessible(page)
