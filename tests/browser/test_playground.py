"""The dashboard's template playground in Chromium: a sample rendered in the chat renderer with
its bytes and mentions, live as samples, templates and the pasted body change."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from dingpush.alerts import AlertSettings, Person, Route, TemplateSpec, sample
from dingpush.relay import AlertReceivers, Relay, RelayServer, RelaySettings, RobotTarget

from .conftest import Screenshot, assert_accessible

WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=browserplayground0123456789"
LIVE = 10_000  # ms: a bound for what the page shows by itself, not a timing


@pytest.fixture
def server() -> Iterator[RelayServer]:
    alerts = AlertSettings(
        routes={"ops": Route(targets=["ops"], mention=["alice"])},
        templates={
            "short": TemplateSpec(source="### {{ headline }}: {{ alerts | length }} alert(s)")
        },
        people={"alice": Person(user_id="manager4220")},
    )
    relay = Relay(
        [RobotTarget("ops", WEBHOOK)],
        settings=RelaySettings(port=0),
        alerts=AlertReceivers(alerts),
    )
    with RelayServer(relay) as running:
        yield running


def test_the_playground_renders_live_as_you_choose_and_type(
    page: Page, server: RelayServer, screenshot: Screenshot
) -> None:
    page.goto(server.url + "/")
    page.get_by_role("link", name="Template playground").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Template playground")
    output = page.locator("#pg-output")
    summary = page.locator("#pg-summary")
    expect(output.locator(".msg")).to_have_count(1, timeout=LIVE)
    expect(output).to_contain_text("HighCPU")
    expect(summary).to_contain_text("bytes, mentions @manager4220")
    screenshot("firing")

    page.get_by_label("Sample").select_option("alertmanager-storm")
    expect(output).to_contain_text("web-50", timeout=LIVE)
    page.get_by_label("Sample").select_option("grafana-firing")
    expect(output).to_contain_text("DiskFull", timeout=LIVE)
    expect(page.get_by_label("Receiver")).to_have_value("grafana")

    page.get_by_label("Template").select_option("short")
    expect(output).to_contain_text("DiskFull: 1 alert(s)", timeout=LIVE)

    kind, body = sample("alertmanager-firing")
    body["alerts"][0]["labels"]["alertname"] = "TypedByHand"
    body["groupLabels"] = {"alertname": "TypedByHand"}
    page.get_by_label("Receiver").select_option(kind)
    page.get_by_label("Body (JSON)").fill(json.dumps(body))
    expect(output).to_contain_text("TypedByHand: 1 alert(s)", timeout=LIVE)
    expect(page.get_by_label("Sample")).to_have_value("")

    page.get_by_label("Body (JSON)").fill('{"version": "4"}')
    expect(summary).to_contain_text("Not rendered", timeout=LIVE)
    expect(output.locator(".msg")).to_have_count(0)
    screenshot("error")
    assert_accessible(page)
