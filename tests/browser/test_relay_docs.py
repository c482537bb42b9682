"""The relay's /docs page in Chromium: it renders every operation from /openapi.json, offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from dingpush.relay import Relay, RelayServer, RelaySettings, RobotTarget
from dingpush.testing import EmulatorServer

from .conftest import Screenshot, assert_accessible


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    with EmulatorServer() as emulator:
        emulator.add_robot("ops")
        target = RobotTarget("ops", emulator.webhook_url("ops"))
        with RelayServer(Relay([target], settings=RelaySettings(port=0))) as server:
            yield server.url


def test_the_docs_page_lists_every_operation(
    page: Page, relay_url: str, screenshot: Screenshot
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(relay_url + "/docs")
    for operation in ("sendMessage", "sendBatch", "getMessage", "retryMessage", "robotSend"):
        expect(page.locator(f"section#{operation}")).to_be_visible()
    expect(page.locator("section#sendMessage")).to_contain_text("Idempotency-Key")
    expect(page.locator("section#sendMessage")).to_contain_text("503")
    page.locator("details#schema-SendRequest summary").click()
    expect(page.locator("details#schema-SendRequest pre")).to_contain_text('"target"')
    screenshot("docs")
    assert all(url.startswith(relay_url) for url in requests)  # nothing from the internet
    assert_accessible(page)
