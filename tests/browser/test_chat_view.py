"""The emulator's chat view in Chromium: live messages, buttons, rejections, accessibility."""

from __future__ import annotations

import pathlib

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from dingpush import (
    ActionCard,
    At,
    Button,
    Markdown,
    Robot,
    SecurityRejected,
    Text,
)
from dingpush.demo import sample_messages
from dingpush.testing import EmulatorServer

from .conftest import Screenshot, assert_accessible

SECRET = "SEC-browser-test-secret-0123456789"
TOKEN = "b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2d3d4d5d6d7d8d9e0e1"


def open_chat(page: Page, server: EmulatorServer) -> None:
    """Open the chat view and wait until its live connection is up."""
    page.goto(server.url + "/")
    expect(page.locator("body")).to_have_attribute("data-live", "on")


def test_a_sent_message_appears_within_two_seconds(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    dingtalk_emulator.add_robot("deploy-bot", TOKEN, secret=SECRET, group="Release train")
    open_chat(page, dingtalk_emulator)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Release train")
    screenshot("before")

    with Robot(dingtalk_emulator.webhook_url("deploy-bot"), secret=SECRET) as robot:
        robot.send(
            Markdown(
                "Deploy finished",
                "### Deploy v2.3 finished\n> web-01, web-02: **ok**\n\n- 12 migrations\n"
                "- 0 errors\n\n@ops-lead please check",
                at=At(user_ids=["ops-lead"]),
            )
        )

    message = page.locator("#messages .msg")
    expect(message).to_have_count(1, timeout=2000)
    expect(message.locator(".msg__sender")).to_have_text("deploy-bot")
    expect(message.locator("time")).to_have_count(1)
    expect(message.locator(".md-h3")).to_have_text("Deploy v2.3 finished")
    expect(message.locator("strong")).to_have_text("ok")
    expect(message.locator("li")).to_have_count(2)
    expect(message.locator(".mention")).to_have_text("@ops-lead")
    expect(page.locator(".conversation-link[aria-current=page]")).to_contain_text("Deploy finished")
    html = page.content()
    assert TOKEN not in html and SECRET not in html


def test_action_card_buttons_are_links_to_their_urls(
    page: Page, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.add_robot("ci")
    with Robot(dingtalk_emulator.webhook_url("ci")) as robot:
        robot.send(
            ActionCard(
                "Vote",
                "### Ship it today?",
                buttons=[
                    Button("Yes", "https://example.com/yes"),
                    Button("No", "https://example.com/no"),
                ],
                orientation="horizontal",
            )
        )
        robot.send(
            ActionCard(
                "Approve deploy?",
                "### Deploy v2.3\nProduction, 14:00",
                button=Button("Open the pipeline", "https://example.com/deploy"),
            )
        )
    open_chat(page, dingtalk_emulator)

    cards = page.locator(".card--action")
    expect(cards).to_have_count(2)
    expect(page.get_by_role("link", name="Yes")).to_have_attribute(
        "href", "https://example.com/yes"
    )
    expect(page.get_by_role("link", name="No")).to_have_attribute("href", "https://example.com/no")
    expect(cards.nth(0).locator(".card__buttons")).to_have_class(
        "card__buttons card__buttons--horizontal"
    )
    yes, no = (page.get_by_role("link", name=n).bounding_box() for n in ("Yes", "No"))
    assert yes is not None and no is not None
    assert yes["y"] == no["y"] and yes["x"] < no["x"], "horizontal buttons sit side by side"
    single = page.get_by_role("link", name="Open the pipeline")
    expect(single).to_have_attribute("href", "https://example.com/deploy")
    expect(cards.nth(1).locator(".card__buttons")).to_have_class(
        "card__buttons card__buttons--single"
    )


def test_vertical_buttons_stack(page: Page, dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("ci")
    buttons = [Button(f"Option {n}", f"https://example.com/{n}") for n in (1, 2, 3)]
    with Robot(dingtalk_emulator.webhook_url("ci")) as robot:
        robot.send(ActionCard("Pick", "Pick one", buttons=buttons, orientation="vertical"))
    open_chat(page, dingtalk_emulator)

    boxes = [page.get_by_role("link", name=f"Option {n}").bounding_box() for n in (1, 2, 3)]
    assert all(box is not None for box in boxes)
    tops = [box["y"] for box in boxes if box is not None]
    assert tops == sorted(tops) and len(set(tops)) == 3, "vertical buttons are stacked"


def test_a_rejected_request_shows_its_reason(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    dingtalk_emulator.add_robot("alerts", secret=SECRET, keywords=("ALERT",), group="On-call")
    open_chat(page, dingtalk_emulator)
    expect(page.locator("#rejections")).to_contain_text("None")

    with (
        Robot(dingtalk_emulator.webhook_url("alerts"), secret=SECRET) as robot,
        pytest.raises(SecurityRejected),
    ):
        robot.send("disk almost full on web-01")  # no keyword
    with (
        Robot(dingtalk_emulator.webhook_url("alerts"), secret="SEC-wrong-secret") as robot,
        pytest.raises(SecurityRejected),
    ):
        robot.send("ALERT: disk almost full")

    rejections = page.locator("#rejections .rejection")
    expect(rejections).to_have_count(2, timeout=2000)
    signature, keyword = rejections.nth(0), rejections.nth(1)  # newest first
    expect(keyword.locator(".rejection__errcode")).to_have_text("310000")
    expect(keyword.locator(".rejection__title")).to_have_text("Keyword missing")
    expect(keyword).to_contain_text("keywords (ALERT)")
    expect(keyword).to_contain_text("keywords not in content")
    expect(signature.locator(".rejection__title")).to_have_text("Signature mismatch")
    expect(signature).to_contain_text("sign not match")
    expect(page.locator("#messages .msg")).to_have_count(0)
    assert SECRET not in page.content()
    screenshot("rejections")


def test_unknown_token_is_listed_with_its_token_masked(
    page: Page, dingtalk_emulator: EmulatorServer
) -> None:
    dingtalk_emulator.add_robot("ops")
    wrong = dingtalk_emulator.url + "/robot/send?access_token=" + "f" * 64
    with Robot(wrong) as robot, pytest.raises(Exception, match="300001"):
        robot.send("hello")
    open_chat(page, dingtalk_emulator)

    rejection = page.locator("#rejections .rejection")
    expect(rejection).to_have_count(1)
    expect(rejection.locator(".rejection__title")).to_have_text("Unknown token")
    expect(rejection).to_contain_text("ffff…ffff")
    assert "f" * 64 not in page.content()


def test_every_message_type_is_drawn_and_the_page_is_accessible(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    dingtalk_emulator.add_robot("sandbox", group="Demo group")
    dingtalk_emulator.add_robot("quiet", group="Quiet group")
    with Robot(dingtalk_emulator.webhook_url("sandbox")) as robot:
        for message in sample_messages():
            robot.send(message)
    open_chat(page, dingtalk_emulator)

    kinds = page.locator("#messages .msg").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["text", "markdown", "link", "action_card", "action_card", "feed_card"]
    expect(page.locator(".mention")).to_have_count(2)
    expect(
        page.get_by_role("link", name="Release 2.3 Changelog and rollout plan")
    ).to_have_attribute("href", "https://example.com/r/2.3")
    expect(page.get_by_role("link", name="Incident review", exact=True)).to_have_attribute(
        "href", "https://example.com/1"
    )
    assert_accessible(page)
    screenshot("chat")

    page.get_by_role("link", name="Quiet group").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Quiet group")
    expect(page.locator("#no-messages")).to_be_visible()
    assert_accessible(page)


def test_empty_emulator_and_unknown_conversation_pages_are_accessible(
    page: Page, dingtalk_emulator: EmulatorServer, screenshot: Screenshot
) -> None:
    page.goto(dingtalk_emulator.url + "/")
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    assert_accessible(page)
    screenshot("empty")

    response = page.goto(dingtalk_emulator.url + "/_emulator/chat/cidNOPE")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="No such conversation")).to_be_visible()
    assert_accessible(page)


def test_message_text_cannot_run_script(page: Page, dingtalk_emulator: EmulatorServer) -> None:
    dingtalk_emulator.add_robot("mallory")
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    open_chat(page, dingtalk_emulator)
    with Robot(dingtalk_emulator.webhook_url("mallory")) as robot:
        robot.send(Text('<img src=x onerror="alert(1)"><script>alert(2)</script>'))
        robot.send(
            Markdown(
                "<b>x</b>",
                '[click](javascript:alert(3)) ![](javascript:alert(4)) <svg onload="alert(5)">',
            )
        )

    messages = page.locator("#messages .msg")
    expect(messages).to_have_count(2, timeout=2000)
    expect(messages.nth(0)).to_contain_text("<script>alert(2)</script>")
    expect(messages.nth(1)).to_contain_text('<svg onload="alert(5)">')
    assert page.locator("#messages script, #messages svg, #messages img[src=x]").count() == 0
    assert page.locator("#messages a[href^=javascript]").count() == 0
    assert dialogs == []


def test_preview_page_is_accessible(page: Page, screenshot: Screenshot) -> None:
    from dingpush.web import MessageRenderer

    markdown = Markdown(
        "Weekly report",
        "### Weekly report\n- uptime **99.9%**\n\n| host | cpu |\n|---|---|\n| web-01 | 97% |\n\n"
        "```\ntail -f app.log\n```",
    )
    page.set_content(MessageRenderer().page(markdown.to_payload(), title="Weekly report"))
    expect(page.locator(".findings li")).to_have_count(2)
    assert_accessible(page)
    screenshot("preview")


def test_the_demo_cards_pictures_load(page: Page, dingtalk_emulator: EmulatorServer) -> None:
    # The demo's cards used example.com pictures, which do not exist: broken images.
    dingtalk_emulator.add_robot("sandbox", group="Demo group")
    with Robot(dingtalk_emulator.webhook_url("sandbox")) as robot:
        for message in sample_messages(dingtalk_emulator.url + "/_emulator/samples"):
            robot.send(message)
    open_chat(page, dingtalk_emulator)
    pictures = page.locator(".card__thumb, .feed__image")
    expect(pictures).to_have_count(3)
    pictures.last.scroll_into_view_if_needed()
    for index in range(3):
        picture = pictures.nth(index)
        picture.scroll_into_view_if_needed()
        expect(picture).to_have_js_property("complete", True)
        assert picture.evaluate("img => img.naturalWidth") == 320


def test_a_preview_page_runs_no_script_even_if_one_slipped_into_it(
    browser: Browser, tmp_path: pathlib.Path
) -> None:
    from dingpush.web import MessageRenderer

    html = MessageRenderer().page(Text("hello").to_payload(), title="Preview")
    # As if the renderer had let markup through: the page's policy must still stop it.
    slipped = (
        '<script>document.title = "ran"</script>'
        '<img src="data:," onload="document.title = \'ran\'">'
        '<iframe src="https://example.com/"></iframe>'
    )
    path = tmp_path / "preview.html"
    path.write_text(html.replace("<main", slipped + "<main", 1), encoding="utf-8")
    context = browser.new_context()
    try:
        page = context.new_page()
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert page.title() == "Preview · dingpush preview"
        assert any("Content Security Policy" in text for text in refused)
        # The inlined stylesheet still applies: the page looks as designed.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background != "rgba(0, 0, 0, 0)"
    finally:
        context.close()
