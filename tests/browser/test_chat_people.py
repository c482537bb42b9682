"""The chat view plays the people (§11–§14) in Chromium: read, post to the robot, confirm a DING."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from dingpush import App
from dingpush.testing import EmulatorServer

from .conftest import Screenshot, assert_accessible

APP_KEY = "dingbrowserapp0001"
APP_SECRET = "browser-app-secret-0123456789abcdef"


def _app(server: EmulatorServer) -> App:
    server.add_app("ops", APP_KEY, APP_SECRET, users=("alice", "bob"), groups=["Ops"])
    return server.app_client("ops")


def _cid(server: EmulatorServer) -> str:
    return next(iter(server.emulator.app("ops").groups))


def _open(page: Page, server: EmulatorServer) -> None:
    page.goto(f"{server.url}/_emulator/chat/{_cid(server)}")
    expect(page.locator("body")).to_have_attribute("data-live", "on")


def test_people_read_a_message_and_it_shows_recalled(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    with _app(dingtalk_emulator) as app:
        sent = app.group(_cid(dingtalk_emulator)).send("disk full on db-1")
        _open(page, dingtalk_emulator)
        state = page.locator(".msg-state").first
        expect(state.locator(".msg-state__read")).to_have_text("read by 0")
        state.get_by_role("button", name="alice reads").click()
        expect(page.locator(".msg-state__read").first).to_have_text("read by 1: alice")
        assert app.read_status(sent).read_user_ids == ("alice",)
        screenshot("read")
        app.recall(sent)
        expect(page.locator(".msg-state__recalled")).to_have_count(1, timeout=5000)
    assert_accessible(page)


def test_a_person_writes_to_the_robot(page: Page, dingtalk_emulator: EmulatorServer) -> None:
    with _app(dingtalk_emulator) as app:
        app.group(_cid(dingtalk_emulator)).send("an alert")
    _open(page, dingtalk_emulator)
    page.locator("#post-user").select_option("bob")
    page.locator("#post-text").fill("ack")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages .msg")).to_have_count(2)
    expect(page.locator("#messages .msg").last).to_contain_text("@ops ack")
    # No Stream client is connected: the gateway keeps the frame for the next one (§13).
    assert dingtalk_emulator.emulator.stream.pending("ops") == 1


def test_a_ding_shows_its_reminder_type_and_who_confirmed(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    with _app(dingtalk_emulator) as app:
        app.group(_cid(dingtalk_emulator)).send("db-1 is down")
        ding = app.ding(["alice", "bob"], "db-1 is down: take it", remind_type="call")
        _open(page, dingtalk_emulator)
        entry = page.locator(f".ding[data-ding='{ding.open_ding_id}']")
        expect(entry.locator(".ding__type")).to_have_text("phone DING")
        entry.locator("li[data-user=alice]").get_by_role("button", name="confirm").click()
        expect(
            page.locator(f".ding[data-ding='{ding.open_ding_id}'] li[data-user=alice]")
        ).to_have_attribute("data-status", "confirmed")
        screenshot("confirmed")
        # DingTalk's API reports read, not confirmed (§14.4).
        assert app.ding_read_status(ding).read_user_ids == ("alice",)
    assert dingtalk_emulator.emulator.dings()[0].confirmed.keys() == {"alice"}
