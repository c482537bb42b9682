"""check_markdown and the parser of DingTalk's markdown subset (protocol §1.4)."""

from __future__ import annotations

import pytest

from dingpush import MarkdownFinding, check_markdown
from dingpush._markdown._parse import (
    Break,
    Emphasis,
    Heading,
    Image,
    LinkSpan,
    ListBlock,
    Mention,
    Paragraph,
    Quote,
    Strong,
    TextSpan,
    parse_markdown,
    parse_text,
)


def kinds(text: str) -> list[tuple[str, int, int]]:
    return [(f.kind, f.line, f.column) for f in check_markdown(text)]


# -- what DingTalk draws --------------------------------------------------------------------


def test_the_documented_subset_has_no_findings() -> None:
    text = (
        "# One\n## Two\n### Three\n#### Four\n##### Five\n###### Six\n\n"
        "> quoted **bold** and *italic*\n\n"
        "- item with [a link](https://example.com)\n- ![chart](https://example.com/c.png)\n\n"
        "1. first\n2. second\n\n"
        "line one  \nline two&nbsp;with a non-breaking space @13800000000"
    )
    assert check_markdown(text, title="Daily report") == []


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5, 6])
def test_headings_one_to_six(level: int) -> None:
    (block,) = parse_markdown("#" * level + " Title")
    assert block == Heading(level, (TextSpan("Title"),), 1)


def test_seven_hashes_are_text() -> None:
    (block,) = parse_markdown("####### Title")
    assert block == Paragraph((TextSpan("####### Title"),), 1)
    assert kinds("####### Title") == [("heading-level", 1, 1)]


def test_bold_italic_links_and_images() -> None:
    (block,) = parse_markdown("**b** *i* [t](https://e.com/x) ![alt](https://e.com/p.png)")
    assert isinstance(block, Paragraph)
    assert block.children == (
        Strong((TextSpan("b"),)),
        TextSpan(" "),
        Emphasis((TextSpan("i"),)),
        TextSpan(" "),
        LinkSpan((TextSpan("t"),), "https://e.com/x"),
        TextSpan(" "),
        Image("alt", "https://e.com/p.png"),
    )


def test_bold_around_italic() -> None:
    (block,) = parse_markdown("**b *i***")
    assert isinstance(block, Paragraph)
    assert block.children == (Strong((TextSpan("b "), Emphasis((TextSpan("i"),)))),)


def test_quote_holds_blocks() -> None:
    (block,) = parse_markdown("> ### heading\n> text")
    assert block == Quote(
        (Heading(3, (TextSpan("heading"),), 1), Paragraph((TextSpan("text"),), 2)), 1
    )


def test_lists() -> None:
    bullets, numbers = parse_markdown("- a\n- b\n\n3. c\n4. d")
    assert bullets == ListBlock(False, 1, ((TextSpan("a"),), (TextSpan("b"),)), 1)
    assert numbers == ListBlock(True, 3, ((TextSpan("c"),), (TextSpan("d"),)), 4)


def test_line_break_rule() -> None:
    (soft,) = parse_markdown("one\ntwo")
    (hard,) = parse_markdown("one  \ntwo")
    assert isinstance(soft, Paragraph) and isinstance(hard, Paragraph)
    assert soft.children[1] == Break(hard=False, line=2)
    assert hard.children[1] == Break(hard=True, line=2)
    assert len(parse_markdown("one\n\ntwo")) == 2


def test_nbsp_entities_and_escapes() -> None:
    (block,) = parse_markdown(r"a&nbsp;b&#160;c&#xA0;d \*not italic\*")
    assert block == Paragraph((TextSpan("a\u00a0b\u00a0c\u00a0d *not italic*"),), 1)


def test_mentions_only_for_named_targets() -> None:
    (block,) = parse_markdown("@u1 @u12 @bob @all", mentions=["u1"], at_all=True)
    assert isinstance(block, Paragraph)
    assert block.children == (
        Mention("u1"),
        TextSpan(" @u12 @bob "),
        Mention("all"),
    )


def test_bare_urls_become_links_without_trailing_punctuation() -> None:
    (block,) = parse_markdown("see https://e.com/a_b?x=1.")
    assert isinstance(block, Paragraph)
    assert block.children[1] == LinkSpan(
        (TextSpan("https://e.com/a_b?x=1"),), "https://e.com/a_b?x=1"
    )
    assert block.children[2] == TextSpan(".")


def test_text_messages_keep_every_line_and_ignore_markdown() -> None:
    nodes = parse_text("**a**\nb @138", mentions=["138"])
    assert nodes == (TextSpan("**a**"), Break(hard=True, line=2), TextSpan("b "), Mention("138"))


# -- what DingTalk does not draw, with line numbers -----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("intro\n\n```python\nx = 1\n```", [("code-fence", 3, 1)]),
        ("~~~\ncode\n~~~", [("code-fence", 1, 1)]),
        ("run `make check` now", [("inline-code", 1, 5)]),
        ("| a | b |\n|---|---|\n| 1 | 2 |", [("table", 1, 1)]),
        ("a\n\n<font color=red>x</font>", [("html", 3, 1), ("html", 3, 18)]),
        ("line<br>break", [("html", 1, 5)]),
        ("~~old~~ new", [("strikethrough", 1, 1)]),
        ("a &amp; b", [("html-entity", 1, 3)]),
        ("see <https://e.com>", [("autolink", 1, 5)]),
        ("__bold__ and _it_", [("underscore-emphasis", 1, 1), ("underscore-emphasis", 1, 14)]),
        ("#Title", [("heading-space", 1, 1)]),
        ("Title\n===", [("setext-heading", 2, 1)]),
        ("a\n\n---\n\nb", [("thematic-break", 3, 1)]),
        ("* one", [("list-marker", 1, 1)]),
        ("1) one", [("list-marker", 1, 1)]),
        ("- a\n  - b", [("nested-list", 2, 3)]),
        ("- [ ] todo", [("task-list", 1, 3)]),
        ("[t][ref]\n\n[ref]: https://e.com", [("reference-link", 1, 1), ("reference-link", 3, 1)]),
        ("[t](/relative)", [("link-url", 1, 5)]),
        ("![](picture.png)", [("link-url", 1, 5)]),
        ("first\nsecond", [("soft-break", 2, 1)]),
        ("> first\n> second", [("soft-break", 2, 1)]),
    ],
)
def test_findings(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert kinds(text) == expected


def test_unsupported_syntax_is_drawn_as_typed() -> None:
    text = "| a |\n|---|\n`x` ~~y~~ <b>z</b> &amp;"
    (block,) = parse_markdown(text)
    assert isinstance(block, Paragraph)
    drawn = "".join(n.text if isinstance(n, TextSpan) else " " for n in block.children)
    assert drawn == "| a | |---| `x` ~~y~~ <b>z</b> &amp;"


def test_inside_a_code_fence_only_the_fence_is_reported() -> None:
    text = "```\n<b>x</b> `y` ~~z~~\nplain\n```\nafter"
    assert kinds(text) == [("code-fence", 1, 1)]


def test_media_ids_are_valid_image_targets() -> None:
    assert check_markdown("![chart](@lADPDgQ9qUQ) ![x]($iAEKAqNwbmcDBgTNAk)") == []


def test_findings_are_ordered_by_line_and_column() -> None:
    text = "ok\n\nuse `a` and `b`\n\n<i>x</i>"
    lines = [(f.line, f.column) for f in check_markdown(text)]
    assert lines == sorted(lines) == [(3, 5), (3, 13), (5, 1), (5, 5)]


def test_title_findings_come_first() -> None:
    found = check_markdown("`x`", title="**" + "t" * 70 + "**\nmore")
    assert [f.kind for f in found] == [
        "title-newline",
        "title-too-long",
        "title-markdown",
        "inline-code",
    ]
    assert all(f.field == "title" for f in found[:3])
    assert str(found[0]).startswith("title: ")


def test_empty_title() -> None:
    assert [f.kind for f in check_markdown("x", title="  ")] == ["title-missing"]


def test_title_length_is_configurable() -> None:
    assert check_markdown("x", title="t" * 64) == []
    assert [f.kind for f in check_markdown("x", title="t" * 11, max_title_length=10)] == [
        "title-too-long"
    ]


def test_a_finding_reads_as_a_sentence_with_its_fix() -> None:
    (finding,) = check_markdown("a\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert finding == MarkdownFinding(3, 1, "table", finding.message, finding.hint)
    assert str(finding) == f"line 3: {finding.message} ({finding.hint})"
    assert "lines 3-5" in finding.message
    assert "- web-01" in finding.hint


def test_checker_is_fast_on_a_large_message() -> None:
    # 20,000 bytes is DingTalk's body limit; the check must stay cheap at that size.
    text = "\n".join(f"- item {n} with **bold** and `code`" for n in range(600))
    found = check_markdown(text)
    assert len(found) == 600
    assert {f.kind for f in found} == {"inline-code"}
