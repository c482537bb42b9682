"""check_markdown: what DingTalk's markdown subset (protocol §1.4) will not draw, line by line.

It shares the parser of :mod:`dingpush._markdown._parse` with the renderer, so what it reports
is what the chat view shows as typed. Pure Python and fast: the CLI runs it on every
``send --dry-run``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from ._parse import (
    _BULLET_RE,
    _HEADING_RE,
    _NBSP_RE,
    _ORDERED_RE,
    _QUOTE_RE,
    Block,
    Break,
    ListBlock,
    Quote,
    _lines,
    parse_markdown,
)

__all__ = ["DEFAULT_MAX_TITLE_LENGTH", "FindingKind", "MarkdownFinding", "check_markdown"]

#: The longest title a DingTalk API documents (legacy group messages, protocol §3.5: title ≤ 64).
#: Robot markdown titles are the notification and conversation-list preview, cut off when long.
DEFAULT_MAX_TITLE_LENGTH = 64

FindingKind = Literal[
    "autolink",
    "code-fence",
    "heading-level",
    "heading-space",
    "html",
    "html-entity",
    "inline-code",
    "link-url",
    "list-marker",
    "nested-list",
    "reference-link",
    "setext-heading",
    "soft-break",
    "strikethrough",
    "table",
    "task-list",
    "thematic-break",
    "title-markdown",
    "title-missing",
    "title-newline",
    "title-too-long",
    "underscore-emphasis",
]


@dataclass(frozen=True, slots=True)
class MarkdownFinding:
    """Something DingTalk will not render as written: where, what, and how to fix it.

    ``line`` and ``column`` count from 1 in ``field`` (``"text"`` or ``"title"``).
    """

    line: int
    column: int
    kind: FindingKind
    message: str
    hint: str
    field: Literal["text", "title"] = "text"

    def __str__(self) -> str:
        where = "title" if self.field == "title" else f"line {self.line}"
        return f"{where}: {self.message} ({self.hint})"


_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")
_TABLE_DELIMITER_RE = re.compile(
    r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$|\s*\|\s*:?-+:?\s*\|\s*$"
)
_HEADING_LEVEL_RE = re.compile(r" {0,3}#{7,}(\s|$)")
_HEADING_SPACE_RE = re.compile(r" {0,3}#{1,6}[^\s#]")
_SETEXT_RE = re.compile(r" {0,3}(=+|-{2,})\s*$")
_THEMATIC_RE = re.compile(r" {0,3}([-*_])(\s*\1){2,}\s*$")
_NESTED_RE = re.compile(r"( {2,}|\t)(-|\d{1,9}\.)[ \t]+\S")
_OTHER_BULLET_RE = re.compile(r" {0,3}([*+])[ \t]+\S")
_PAREN_ORDERED_RE = re.compile(r" {0,3}\d{1,9}\)[ \t]+\S")
_TASK_RE = re.compile(r"\s*(-|\d{1,9}\.)[ \t]+\[[ xX]\][ \t]")
_REFERENCE_DEF_RE = re.compile(r" {0,3}\[[^\]]+\]:\s*\S")
_REFERENCE_USE_RE = re.compile(r"\[[^\]\n]+\]\[[^\]\n]*\]")
_INLINE_CODE_RE = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_AUTOLINK_RE = re.compile(r"<(?:https?|mailto|dingtalk):[^\s<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_ENTITY_RE = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_UNDERSCORE_RE = re.compile(r"(?<![\w\\])(__?)(?=[^\s_])(.+?)(?<=[^\s_])\1(?!\w)")
_TARGET_RE = re.compile(r"(!?)\[[^\]\n]*\]\(\s*([^\s)]*)")
_GOOD_URL_RE = re.compile(r"(https?|dingtalk|mailto|tel):\S+|[@$]\S+", re.IGNORECASE)


def _fence_ranges(lines: Sequence[str]) -> list[tuple[int, int]]:
    """Return ``(first, last)`` line numbers (1-based, inclusive) of each code fence."""
    ranges: list[tuple[int, int]] = []
    index = 0
    while index < len(lines):
        opening = _FENCE_RE.match(lines[index])
        if opening is None:
            index += 1
            continue
        marker = opening.group(1)
        close = next(
            (
                j
                for j in range(index + 1, len(lines))
                if (m := _FENCE_RE.match(lines[j]))
                and m.group(1)[0] == marker[0]
                and len(m.group(1)) >= len(marker)
                and not lines[j].strip().strip(marker[0])
            ),
            len(lines) - 1,
        )
        ranges.append((index + 1, close + 1))
        index = close + 1
    return ranges


def _table_ranges(lines: Sequence[str], skip: set[int]) -> list[tuple[int, int]]:
    """Return the line ranges of pipe tables: a header row, a ``|---|`` row, and more rows."""
    ranges: list[tuple[int, int]] = []
    index = 1
    while index < len(lines):
        header, delimiter = lines[index - 1], lines[index]
        if (
            index not in skip
            and index + 1 not in skip
            and "|" in header
            and "-" in delimiter
            and _TABLE_DELIMITER_RE.match(delimiter)
        ):
            last = index
            while last + 1 < len(lines) and "|" in lines[last + 1] and lines[last + 1].strip():
                last += 1
            ranges.append((index, last + 1))
            index = last + 2
        else:
            index += 1
    return ranges


def _finding(line: int, column: int, kind: FindingKind, message: str, hint: str) -> MarkdownFinding:
    return MarkdownFinding(line, column, kind, message, hint)


def _block_findings(number: int, line: str, previous: str) -> Iterator[MarkdownFinding]:
    """Findings about how one line starts (headings, lists, rules)."""
    indent = len(line) - len(line.lstrip()) + 1
    if _HEADING_LEVEL_RE.match(line):
        yield _finding(
            number,
            indent,
            "heading-level",
            "DingTalk draws headings # to ###### only; this line is shown with its #s",
            "use at most six #",
        )
    elif _HEADING_SPACE_RE.match(line):
        yield _finding(
            number,
            indent,
            "heading-space",
            "a # without a space after it is not a heading; the line is shown as typed",
            "write '# Title' (a space after the #s) if you meant a heading",
        )
    if previous.strip() and not _block_start(previous) and _SETEXT_RE.match(line):
        yield _finding(
            number,
            indent,
            "setext-heading",
            "underlined headings (=== or --- under a line) are not drawn; both lines show as text",
            "write '# Title' instead",
        )
    elif _THEMATIC_RE.match(line):
        yield _finding(
            number,
            indent,
            "thematic-break",
            "DingTalk has no horizontal rules; the characters are shown as typed",
            "leave a blank line, or use a heading to separate sections",
        )
    yield from _list_findings(number, line, indent)
    if _REFERENCE_DEF_RE.match(line):
        yield _finding(
            number,
            indent,
            "reference-link",
            "link reference definitions are shown as text",
            "write links inline: [text](https://…)",
        )


def _list_findings(number: int, line: str, indent: int) -> Iterator[MarkdownFinding]:
    if _NESTED_RE.match(line):
        yield _finding(
            number,
            indent,
            "nested-list",
            "nested (indented) list items are not documented; they are drawn in one flat list",
            "use one flat list, or a new list under a heading",
        )
    if _OTHER_BULLET_RE.match(line):
        yield _finding(
            number,
            indent,
            "list-marker",
            "only '- ' starts a bullet item; '* ' and '+ ' are shown as typed",
            "start the item with '- '",
        )
    if _PAREN_ORDERED_RE.match(line):
        yield _finding(
            number,
            indent,
            "list-marker",
            "only '1. ' starts a numbered item; '1) ' is shown as typed",
            "write '1. item'",
        )
    if _TASK_RE.match(line):
        yield _finding(
            number,
            line.index("[") + 1,
            "task-list",
            "task checkboxes are shown as the characters '[ ]' / '[x]'",
            "drop the box, or write ✅ / ⬜ as text",
        )


def _block_start(line: str) -> bool:
    return bool(
        _HEADING_RE.match(line)
        or _QUOTE_RE.match(line)
        or _BULLET_RE.match(line)
        or _ORDERED_RE.match(line)
    )


def _inline_findings(number: int, line: str) -> Iterator[MarkdownFinding]:
    """Findings inside one line: code, strikethrough, HTML, entities, odd emphasis and links."""
    code_spans = [m.span() for m in _INLINE_CODE_RE.finditer(line)]
    for start, _ in code_spans:
        yield _finding(
            number,
            start + 1,
            "inline-code",
            "`code` is shown with its backticks, in the normal font",
            "drop the backticks, or use **bold** to make it stand out",
        )
    for match in _STRIKE_RE.finditer(line):
        yield _finding(
            number,
            match.start() + 1,
            "strikethrough",
            "~~strikethrough~~ is shown with its tildes",
            "remove the ~~, or say 'obsolete:' in words",
        )
    autolinks = [m.span() for m in _AUTOLINK_RE.finditer(line)]
    for start, _ in autolinks:
        yield _finding(
            number,
            start + 1,
            "autolink",
            "<https://…> is shown with its angle brackets",
            "write the bare URL, or [text](https://…)",
        )
    for match in _TAG_RE.finditer(line):
        if any(a <= match.start() < b for a, b in autolinks + code_spans):
            continue
        yield _html_finding(number, match)
    for match in _ENTITY_RE.finditer(line):
        if not _NBSP_RE.fullmatch(match.group(0)):
            yield _finding(
                number,
                match.start() + 1,
                "html-entity",
                f"{match.group(0)} is shown as typed; only &nbsp; (&#160;, &#xA0;) is decoded",
                "write the character itself",
            )
    yield from _emphasis_and_link_findings(number, line, code_spans)


def _html_finding(number: int, match: re.Match[str]) -> MarkdownFinding:
    tag = match.group(0)
    name = re.match(r"</?([A-Za-z][A-Za-z0-9-]*)", tag)
    lowered = name.group(1).lower() if name else ""
    if lowered == "br":
        hint = "end the line with two spaces, or leave a blank line, to break it"
    elif lowered == "font":
        hint = "<font color> works only in interactive cards; use **bold** in robot markdown"
    else:
        hint = "remove the tag; use the markdown subset (**bold**, [link](url), lists)"
    return _finding(
        number, match.start() + 1, "html", f"HTML tag {tag} is shown as text, not applied", hint
    )


def _emphasis_and_link_findings(
    number: int, line: str, code_spans: Sequence[tuple[int, int]]
) -> Iterator[MarkdownFinding]:
    for match in _UNDERSCORE_RE.finditer(line):
        if any(a <= match.start() < b for a, b in code_spans):
            continue
        strong = len(match.group(1)) == 2
        yield _finding(
            number,
            match.start() + 1,
            "underscore-emphasis",
            f"{'__bold__' if strong else '_italic_'} with underscores is shown as typed",
            "use **bold** or *italic* with asterisks",
        )
    for match in _REFERENCE_USE_RE.finditer(line):
        yield _finding(
            number,
            match.start() + 1,
            "reference-link",
            "reference-style links [text][ref] are shown as text",
            "write links inline: [text](https://…)",
        )
    for match in _TARGET_RE.finditer(line):
        url = match.group(2)
        if url and not _GOOD_URL_RE.fullmatch(url):
            what = "image" if match.group(1) else "link"
            yield _finding(
                number,
                match.start(2) + 1,
                "link-url",
                f"the {what} target {url!r} is not an absolute URL; DingTalk cannot open it",
                "use a full https:// URL (or, for app robots, a media id from media/upload)",
            )


def _soft_breaks(blocks: Sequence[Block]) -> Iterator[int]:
    """Yield the line numbers that a single newline joins to the line before."""
    for block in blocks:
        if isinstance(block, Quote):
            yield from _soft_breaks(block.children)
            continue
        groups = block.items if isinstance(block, ListBlock) else (block.children,)
        for children in groups:
            yield from (n.line for n in children if isinstance(n, Break) and not n.hard)


def _title_findings(title: str, max_length: int) -> Iterator[MarkdownFinding]:
    def finding(kind: FindingKind, message: str, hint: str) -> MarkdownFinding:
        return MarkdownFinding(1, 1, kind, message, hint, field="title")

    if not title.strip():
        yield finding(
            "title-missing",
            "the title is empty, but DingTalk requires one for markdown and action cards",
            "give a short title: it is the notification and conversation-list preview",
        )
        return
    if "\n" in title or "\r" in title:
        yield finding(
            "title-newline",
            "the title has a line break; previews show one line",
            "keep the title on one line",
        )
    if len(title) > max_length:
        yield finding(
            "title-too-long",
            f"the title has {len(title)} characters; previews cut it after about {max_length}",
            f"shorten it to {max_length} characters or fewer",
        )
    if re.search(r"^\s*#|\*\*|\[[^\]]*\]\(|`", title):
        yield finding(
            "title-markdown",
            "the title is plain text: markdown in it is shown as typed",
            "remove the markdown from the title",
        )


def check_markdown(
    text: str, *, title: str | None = None, max_title_length: int = DEFAULT_MAX_TITLE_LENGTH
) -> list[MarkdownFinding]:
    """List what DingTalk will not render in a markdown message, in order, with line numbers.

    Args:
        text: The markdown text (``markdown.text``, or an action card's ``text``).
        title: The message title, checked too when given.
        max_title_length: Titles longer than this are reported (``title-too-long``).

    Returns:
        One :class:`MarkdownFinding` per problem, title first, then by line and column;
        an empty list when DingTalk draws the text as written.
    """
    findings = list(_title_findings(title, max_title_length)) if title is not None else []
    lines = _lines(text)
    fences = _fence_ranges(lines)
    covered = {n for first, last in fences for n in range(first, last + 1)}
    tables = _table_ranges(lines, covered)
    for first, last in fences:
        findings.append(
            _finding(
                first,
                lines[first - 1].index(lines[first - 1].lstrip()[0]) + 1,
                "code-fence",
                f"code fence (lines {first}-{last}): DingTalk shows the fence and the code as "
                "ordinary text, joins the lines, and applies markdown inside the code",
                "drop the fence and end each code line with two spaces, or send the code as text",
            )
        )
    for first, last in tables:
        covered.update(range(first, last + 1))
        findings.append(
            _finding(
                first,
                1,
                "table",
                f"table (lines {first}-{last}): DingTalk has no tables; the rows are shown as "
                "text with their | characters, joined into one paragraph",
                "write one list item per row, e.g. '- web-01: 97% CPU'",
            )
        )
    previous = ""
    for number, line in enumerate(lines, start=1):
        if number not in covered:
            findings.extend(_block_findings(number, line, previous))
            findings.extend(_inline_findings(number, line))
        previous = line
    # An underlined heading's finding already says its two lines are drawn as one.
    setext = {f.line for f in findings if f.kind == "setext-heading"}
    for number in _soft_breaks(parse_markdown(text)):
        if number not in covered and (number - 1) not in covered and number not in setext:
            findings.append(
                _finding(
                    number,
                    1,
                    "soft-break",
                    f"a single newline joins line {number} to line {number - 1}: DingTalk draws "
                    "them as one line",
                    f"end line {number - 1} with two spaces, or leave a blank line between them",
                )
            )
    body = [f for f in findings if f.field == "text"]
    body.sort(key=lambda f: (f.line, f.column))
    return [f for f in findings if f.field == "title"] + body
