"""``dingpush preview``: the page it writes, the findings it prints, its exit status, ``--open``.

Each command line runs in-process (click's CliRunner) and as a real ``python -m dingpush``.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import sys

import pytest

from .conftest import Invoke, run_process

REPORT = """### Disk usage
| host | used |
|---|---|
| web-01 | 97% |

Run `df -h` on web-01
"""


@pytest.fixture
def report(home: pathlib.Path) -> pathlib.Path:
    path = home / "report.md"
    path.write_text(REPORT, encoding="utf-8")
    return path


def test_a_markdown_file_is_drawn_next_to_it_and_its_flaws_listed(
    dingpush: Invoke, report: pathlib.Path
) -> None:
    result = dingpush("preview", "report.md")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("report.md:2:1: table (lines 2-4): DingTalk has no tables")
    assert lines[1].startswith("report.md:6:5: `code` is shown with its backticks")
    assert "(fix: drop the backticks" in lines[1]
    assert lines[2:] == [
        "2 findings: DingTalk will not render these.",
        "preview: report.preview.html",
    ]
    page = (report.parent / "report.preview.html").read_text(encoding="utf-8")
    assert "<title>Disk usage · dingpush preview</title>" in page
    assert '<p class="md-h md-h3">Disk usage</p>' in page
    assert page.count('<span class="findings__kind">') == 2
    assert "<style>" in page and 'rel="stylesheet"' not in page  # stands alone, from disk


def test_exit_status_is_zero_with_findings_unless_strict(
    dingpush: Invoke, report: pathlib.Path
) -> None:
    assert dingpush("preview", "report.md").exit_code == 0
    assert dingpush("preview", "--strict", "report.md").exit_code == 1
    clean = report.parent / "clean.md"
    clean.write_text("### Disk usage\n- web-01: **97%**\n", encoding="utf-8")
    result = dingpush("preview", "--strict", "clean.md")
    assert result.exit_code == 0
    assert "Nothing to fix: DingTalk draws this message as written." in result.stdout


def test_json_names_the_page_and_each_finding(dingpush: Invoke, report: pathlib.Path) -> None:
    result = dingpush("preview", "--json", "-o", "out/page.html", "report.md")
    assert result.exit_code == 2  # the folder does not exist: a usage error, nothing written
    (report.parent / "out").mkdir()
    result = dingpush("preview", "--json", "-o", "out/page.html", "report.md")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["output"] == "out/page.html"
    assert [(f["line"], f["column"], f["kind"]) for f in data["findings"]] == [
        (2, 1, "table"),
        (6, 5, "inline-code"),
    ]
    assert (report.parent / "out" / "page.html").exists()


def test_stdin_goes_to_a_temporary_file(dingpush: Invoke, home: pathlib.Path) -> None:
    result = dingpush("preview", "--text", input=b"<b>hi</b> @13800000000\n")
    assert result.exit_code == 0, result.output
    path = pathlib.Path(result.stdout.splitlines()[-1].removeprefix("preview: "))
    try:
        assert path.name.startswith("dingpush-preview-") and path.parent != home
        page = path.read_text(encoding="utf-8")
        assert "&lt;b&gt;hi&lt;/b&gt;" in page and "bubble--text" in page
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0  # only its owner reads it
    finally:
        path.unlink()
    result = dingpush("preview", "-m", "-", "-o", "piped.html", input=b"# Title\n~~old~~")
    assert "<stdin>:2:1: " in result.stdout
    assert (home / "piped.html").exists()


def test_the_message_options_are_sends(dingpush: Invoke, report: pathlib.Path) -> None:
    card = dingpush(
        "preview",
        "--card",
        "--horizontal",
        "--button",
        "Yes=https://example.com/y",
        "--button",
        "No=https://example.com/n",
        "-o",
        "card.html",
        "report.md",
    )
    assert card.exit_code == 0, card.output
    page = (report.parent / "card.html").read_text(encoding="utf-8")
    assert "card__buttons--horizontal" in page and 'href="https://example.com/y"' in page
    feed = dingpush(
        "preview", "--feed", "--item", "News|https://example.com/1|https://example.com/1.png"
    )
    path = pathlib.Path(feed.stdout.splitlines()[-1].removeprefix("preview: "))
    try:
        assert "card--feed" in path.read_text(encoding="utf-8")
    finally:
        path.unlink()
    text = dingpush("preview", "--text", "-o", "text.html", "report.md")
    assert "Nothing to fix" in text.stdout  # a text message: markdown is not checked
    assert "bubble--text" in (report.parent / "text.html").read_text(encoding="utf-8")


def test_a_too_long_title_is_reported_on_the_title(dingpush: Invoke, report: pathlib.Path) -> None:
    result = dingpush("preview", "--title", "T" * 80, "report.md")
    assert result.stdout.startswith("report.md: title: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "-m", "report.md"], "--text and --markdown conflict"),
        (["--button", "A=https://example.com", "report.md"], "--button goes with --card"),
        (["missing.md"], "does not exist"),
    ],
)
def test_usage_errors_exit_2(
    dingpush: Invoke, report: pathlib.Path, args: list[str], message: str
) -> None:
    result = dingpush("preview", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_an_empty_file_is_an_invalid_message(dingpush: Invoke, home: pathlib.Path) -> None:
    (home / "empty.md").write_text("\n", encoding="utf-8")
    result = dingpush("preview", "empty.md")
    assert result.exit_code == 2 and "empty" in result.stderr


def test_open_hands_the_page_to_the_browser(report: pathlib.Path) -> None:
    # webbrowser honours $BROWSER: a script that records the URL it was given.
    record = report.parent / "opened.txt"
    browser = report.parent / "browser.py"
    browser.write_text(
        f"import sys, pathlib\npathlib.Path({str(record)!r}).write_text(sys.argv[1])\n",
        encoding="utf-8",
    )
    command = f"{sys.executable} {browser} %s"
    result = run_process(["preview", "--open", "report.md"], env={"BROWSER": command})
    assert result.exit_code == 0, result.output
    assert record.read_text() == (report.parent / "report.preview.html").resolve().as_uri()
    broken = run_process(
        ["preview", "--open", "report.md"],
        env={"BROWSER": os.devnull + "/no-such-browser %s"},
    )
    assert broken.exit_code == 0
    assert "no web browser could be started" in broken.stderr
