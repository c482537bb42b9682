"""Browser fixtures shared by every browser test: Debian's Chromium driven by Playwright.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it when
missing). Playwright never downloads a browser. Each test gets a fresh browser context and page;
when it ends, a screenshot of the page is saved as ``test-output/<test name>/final.png`` (more
with the ``screenshot`` fixture), and any script error or console error on the page fails it.
"""

from __future__ import annotations

import pathlib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    sync_playwright,
)

CHROMIUM = pathlib.Path("/usr/bin/chromium")
#: This machine's closed network refuses Chromium's background connections; these flags keep
#: Chromium from trying (and from waiting on them).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = pathlib.Path(__file__).resolve().parents[2] / "test-output"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

Screenshot = Callable[[str], pathlib.Path]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module.

    While it runs, Playwright's sync API holds an asyncio loop open in the main thread, which
    keeps ``anyio`` tests from starting theirs: so the browser lives for one module only, and
    browser test modules hold browser tests only.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests need Debian's Chromium. "
            "Install it with `apt-get install -y chromium` (.ci/run does this)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> pathlib.Path:
    """``test-output/<test name>/``, emptied, for this test's screenshots."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    folder = OUTPUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@dataclass
class _PageRecord:
    page: Page
    output_dir: pathlib.Path
    problems: list[str] = field(default_factory=list)


_PAGE = pytest.StashKey[_PageRecord]()


@pytest.fixture
def page(
    browser: Browser, output_dir: pathlib.Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh page; a full-page screenshot when the test ends, and page errors fail it."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    page = context.new_page()
    record = _PageRecord(page, output_dir)
    request.node.stash[_PAGE] = record

    def on_console(message: ConsoleMessage) -> None:
        # Failed image loads are expected: robots link pictures on hosts this machine cannot
        # reach. Script errors and refused scripts (CSP) are not.
        if message.type == "error" and "Failed to load resource" not in message.text:
            record.problems.append(f"console error: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: record.problems.append(f"page error: {error}"))
    try:
        yield page
    finally:
        context.close()
    assert not record.problems, "\n".join(record.problems)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Screenshot the page right after the test body, before any fixture is torn down.

    Later, other fixtures' teardown (an emulator reset) may already be changing the page.
    A failed screenshot is reported by the ``page`` fixture, never over the test's own failure.
    """
    try:
        return (yield)
    finally:
        record = item.stash.get(_PAGE, None)
        if record is not None and not record.page.is_closed():
            try:
                record.page.screenshot(path=record.output_dir / "final.png", full_page=True)
            except Error as exc:
                record.problems.append(f"final screenshot failed: {exc}")


@pytest.fixture
def screenshot(page: Page, output_dir: pathlib.Path) -> Screenshot:
    """``screenshot("name")`` saves ``test-output/<test name>/name.png`` and returns its path."""

    def take(name: str) -> pathlib.Path:
        path = output_dir / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


def _describe(page: Page, cdp: Any, node: dict[str, Any]) -> str:
    try:
        resolved = cdp.send("DOM.resolveNode", {"backendNodeId": node["backendDOMNodeId"]})
        html = cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": resolved["object"]["objectId"],
                "functionDeclaration": "function () { return this.outerHTML.slice(0, 200); }",
                "returnByValue": True,
            },
        )
        return str(html["result"]["value"])
    except (Error, KeyError):
        return f"{node['role']['value']} node {node.get('nodeId')}"


def assert_accessible(page: Page) -> None:
    """Check the basics in Chromium's accessibility tree.

    The page has a title and exactly one ``main`` landmark; every link and button has an
    accessible name.
    """
    assert page.title().strip(), "the page has no <title>"
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        shown = [n for n in nodes if not n.get("ignored") and "role" in n]
        roles = [n["role"]["value"] for n in shown]
        assert roles.count("main") == 1, f"expected one main landmark, found {roles.count('main')}"
        unnamed = [
            _describe(page, cdp, n)
            for n in shown
            if n["role"]["value"] in ("link", "button")
            and not str(n.get("name", {}).get("value", "")).strip()
        ]
        assert not unnamed, "links or buttons without an accessible name:\n" + "\n".join(unnamed)
    finally:
        cdp.detach()
