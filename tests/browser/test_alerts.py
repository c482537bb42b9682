"""The dashboard's on-call pages in Chromium: acknowledge an incident and watch its timeline, and
recall a message from its page (the emulator's chat view then shows it recalled)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect

from dingpush import AsyncApp
from dingpush.relay import AppTarget, Relay, RelayServer, RelaySettings
from dingpush.relay._incidents import EventKind, TimelineEvent
from dingpush.relay.stores import MemoryIncidentStore
from dingpush.testing import EmulatorServer

from .conftest import Screenshot, assert_accessible

LIVE = 10_000  # ms: a bound for what the page shows by itself, not a timing
TITLE = "<script>alert(1)</script> DiskFull on db-1"

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a store call on a loop of its own: Playwright holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=30)


@pytest.fixture
def served(dingtalk_emulator: EmulatorServer) -> Iterator[tuple[RelayServer, MemoryIncidentStore]]:
    config = dingtalk_emulator.add_app("ops-app", groups=["Ops"], users=("alice",))
    (cid,) = config.groups
    app = AsyncApp(
        config.app_key, config.app_secret, api_base=dingtalk_emulator.url, token_cache=False
    )
    target = AppTarget("group", app, "app-group", open_conversation_id=cid, owns_app=True)
    store = MemoryIncidentStore()
    relay = Relay([target], settings=RelaySettings(port=0, idle_poll=0.2), incidents=store)
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(RelayServer(relay)), store


def test_acknowledge_an_incident_and_watch_its_timeline(
    page: Page,
    served: tuple[RelayServer, MemoryIncidentStore],
    screenshot: Screenshot,
) -> None:
    server, store = served
    incident = run(
        store.open_incident(
            route="ops",
            group_key="disk",
            title=TITLE,
            labels={"alertname": "DiskFull", "instance": "db-1"},
            policy="page",
            targets=["group"],
            due_at=None,
            now=1_800_000_000.0,
        )
    )
    run(
        store.record(
            incident.number, TimelineEvent(1_800_000_030.0, EventKind.DING, "bob", "phone DING")
        )
    )

    page.goto(server.url + "/ui/alerts")
    row = page.locator(f'#incidents-body tr[data-incident="{incident.number}"]')
    expect(row).to_contain_text(TITLE)  # shown as text, never run
    expect(row).to_have_attribute("data-state", "open")
    assert_accessible(page)
    row.get_by_role("link", name=f"#{incident.number}").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    timeline = page.locator("#incident-timeline")
    expect(timeline.locator("li")).to_have_count(2)
    expect(timeline).to_contain_text("DING'd")
    assert_accessible(page)
    screenshot("open")

    # Someone reads the message elsewhere: the page shows it without a reload.
    run(store.record(incident.number, TimelineEvent(1_800_000_040.0, EventKind.READ, "carol")))
    expect(timeline.locator('li[data-kind="read"]')).to_contain_text("carol", timeout=LIVE)

    page.get_by_label("Your name").fill("alice")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status").filter(has_text="Acknowledged")).to_be_visible()
    acked = timeline.locator('li[data-kind="acknowledged"]')
    expect(acked).to_contain_text("alice")
    expect(acked).to_contain_text("dashboard")
    expect(page.locator('[data-field="state"]')).to_contain_text("acknowledged")
    expect(page.locator('[data-field="acknowledged-by"]')).to_have_text("alice")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    screenshot("acknowledged")

    # Resolved elsewhere (the sender said so): the timeline closes by itself.
    run(store.resolve(route="ops", group_key="disk", now=1_800_000_100.0))
    expect(timeline.locator('li[data-kind="resolved"]')).to_have_count(1, timeout=LIVE)
    expect(page.locator('[data-field="state"]')).to_contain_text("resolved", timeout=LIVE)
    expect(page.locator("script", has_text="alert(1)")).to_have_count(0)  # text, not markup


def test_recall_a_message_from_its_page_and_see_it_recalled_in_the_chat(
    page: Page,
    served: tuple[RelayServer, MemoryIncidentStore],
    dingtalk_emulator: EmulatorServer,
    screenshot: Screenshot,
) -> None:
    server, _ = served
    message = {"msgtype": "text", "text": {"content": "deploying 1.4.2 to prod"}}
    reply = httpx.post(
        f"{server.url}/v1/messages", json={"target": "group", "message": message}, timeout=10
    )
    message_id = reply.json()["id"]
    page.goto(f"{server.url}/ui/messages/{message_id}")
    expect(page.locator('[data-field="status"]')).to_contain_text("delivered", timeout=LIVE)
    recall = page.get_by_role("link", name="Recall…")  # comes with the delivery, live
    expect(recall).to_be_visible(timeout=LIVE)
    recall.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Recall message")
    assert_accessible(page)
    page.get_by_label("Recalled by").fill("alice")
    page.get_by_role("button", name="Recall").click()
    expect(page.get_by_role("status").filter(has_text="Recalled")).to_be_visible()
    expect(page.locator('[data-field="recalled"]')).to_contain_text("by alice via dashboard")
    expect(page.get_by_role("link", name="Recall…")).to_have_count(0)
    screenshot("recalled")

    cid = next(iter(dingtalk_emulator.emulator.app("ops-app").groups))
    page.goto(f"{dingtalk_emulator.url}/_emulator/chat/{cid}")
    expect(page.locator(".msg-state__recalled")).to_have_count(1, timeout=LIVE)
