"""DingTalk's markdown (protocol §1.4): a parser for what it renders, a checker for the rest.

DingTalk documents a small subset for robot markdown: headings ``#``–``######``, block quotes,
``**bold**`` and ``*italic*``, links, images, ``-`` and ``1.`` lists, and a line-break rule (a
single newline joins lines; end a line with two spaces, or leave a blank line, to break it).
Everything else — tables, code, HTML tags, strikethrough — is shown as the characters typed.

:func:`parse_markdown` turns a text into the blocks DingTalk draws (the chat view, the relay's
dashboard and ``dingpush preview`` render them), and :func:`check_markdown` lists, with line
numbers, what will not render as the writer meant. Both are pure Python and fast, so the CLI can
run the check on every ``send --dry-run``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEFAULT_MAX_TITLE_LENGTH",
    "Block",
    "Break",
    "Emphasis",
    "Heading",
    "Image",
    "Inline",
    "LinkSpan",
    "ListBlock",
    "MarkdownFinding",
    "Mention",
    "Paragraph",
    "Quote",
    "Strong",
    "TextSpan",
    "check_markdown",
    "parse_markdown",
    "parse_text",
]

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


# -- the document model -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextSpan:
    """Characters shown as they are."""

    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    """``**bold**``."""

    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Emphasis:
    """``*italic*``."""

    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class LinkSpan:
    """``[text](url)``, or a bare ``http(s)://`` URL (``children`` is then the URL itself)."""

    children: tuple[Inline, ...]
    url: str


@dataclass(frozen=True, slots=True)
class Image:
    """``![alt](url)``; ``url`` may also be a media id (``@…`` or ``$…``) of an app's upload."""

    alt: str
    url: str


@dataclass(frozen=True, slots=True)
class Mention:
    """``@target`` of a person the message's ``at`` names, or ``@all`` when it mentions all."""

    target: str


@dataclass(frozen=True, slots=True)
class Break:
    """A line end: ``hard`` breaks the line, a soft one is drawn as a space."""

    hard: bool
    line: int


Inline = TextSpan | Strong | Emphasis | LinkSpan | Image | Mention | Break


@dataclass(frozen=True, slots=True)
class Heading:
    """``#`` to ``######``."""

    level: int
    children: tuple[Inline, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Consecutive text lines; single newlines inside are soft breaks."""

    children: tuple[Inline, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Quote:
    """``>`` lines; their content is parsed again as blocks."""

    children: tuple[Block, ...]
    line: int


@dataclass(frozen=True, slots=True)
class ListBlock:
    """``- item`` or ``1. item`` lines; ``start`` is the first number of an ordered list."""

    ordered: bool
    start: int
    items: tuple[tuple[Inline, ...], ...]
    line: int


Block = Heading | Paragraph | Quote | ListBlock


# -- inline parsing ---------------------------------------------------------------------------

_URL_PART = r"[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*"
_TITLE_PART = r'(?:\s+"[^"]*")?'
_IMAGE_RE = re.compile(rf"!\[([^\]\n]*)\]\(\s*({_URL_PART}){_TITLE_PART}\s*\)")
_LINK_RE = re.compile(rf"\[([^\]\n]+)\]\(\s*({_URL_PART}){_TITLE_PART}\s*\)")
# The closing ** may not be followed by another *, so ``**b *i***`` is bold around an italic.
_STRONG_RE = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*(?!\*)")
_EMPHASIS_RE = re.compile(r"\*(?=[^\s*])(.+?)(?<=[^\s*])\*")
_NBSP_RE = re.compile(r"&(?:nbsp|#160|#[xX][aA]0);")
_BARE_URL_RE = re.compile(r"https?://[^\s<>\"'\[\]()]*[^\s<>\"'\[\]().,;:!?，。；：！？]")
_ESCAPABLE = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_MENTION_END = re.compile(r"[0-9A-Za-z_\-]")
_AT_ALL: tuple[str, ...] = ("all", "所有人")


@dataclass(frozen=True, slots=True)
class _Context:
    mentions: tuple[str, ...]
    at_all: bool
    markdown: bool


def _mention_at(text: str, pos: int, ctx: _Context) -> str | None:
    """Return the mention target written at ``text[pos] == "@"``, if the message names it."""
    candidates: tuple[str, ...] = (*ctx.mentions, *(_AT_ALL if ctx.at_all else ()))
    for target in sorted(candidates, key=len, reverse=True):
        end = pos + 1 + len(target)
        if text.startswith(target, pos + 1) and not (
            end < len(text) and _MENTION_END.match(text[end])
        ):
            return target
    return None


def _parse_inline(text: str, ctx: _Context, *, links: bool = True) -> list[Inline]:
    """Split one line into spans; anything outside the subset stays as literal text."""
    out: list[Inline] = []
    buffer: list[str] = []
    pos = 0

    def flush() -> None:
        if buffer:
            out.append(TextSpan("".join(buffer)))
            buffer.clear()

    while pos < len(text):
        char = text[pos]
        node: Inline | None = None
        end = pos + 1
        if ctx.markdown and char == "\\" and pos + 1 < len(text) and text[pos + 1] in _ESCAPABLE:
            buffer.append(text[pos + 1])
            pos += 2
            continue
        if ctx.markdown and char == "&" and (m := _NBSP_RE.match(text, pos)):
            buffer.append("\u00a0")
            pos = m.end()
            continue
        if ctx.markdown and char == "!" and links and (m := _IMAGE_RE.match(text, pos)):
            node, end = Image(m.group(1), m.group(2)), m.end()
        elif ctx.markdown and char == "[" and links and (m := _LINK_RE.match(text, pos)):
            inner = tuple(_parse_inline(m.group(1), ctx, links=False))
            node, end = LinkSpan(inner, m.group(2)), m.end()
        elif ctx.markdown and char == "*" and (m := _STRONG_RE.match(text, pos)):
            node, end = Strong(tuple(_parse_inline(m.group(1), ctx, links=links))), m.end()
        elif ctx.markdown and char == "*" and (m := _EMPHASIS_RE.match(text, pos)):
            node, end = Emphasis(tuple(_parse_inline(m.group(1), ctx, links=links))), m.end()
        elif char == "h" and links and (m := _BARE_URL_RE.match(text, pos)):
            if pos == 0 or not text[pos - 1].isalnum():
                node, end = LinkSpan((TextSpan(m.group(0)),), m.group(0)), m.end()
        elif char == "@" and (target := _mention_at(text, pos, ctx)) is not None:
            node, end = Mention(target), pos + 1 + len(target)
        if node is None:
            buffer.append(char)
            pos += 1
            continue
        flush()
        out.append(node)
        pos = end
    flush()
    return out


def parse_text(
    text: str, *, mentions: Collection[str] = (), at_all: bool = False
) -> tuple[Inline, ...]:
    """Parse a text message: every newline breaks the line, URLs and named mentions stand out."""
    ctx = _Context(tuple(mentions), at_all, markdown=False)
    out: list[Inline] = []
    for number, line in enumerate(_lines(text), start=1):
        if number > 1:
            out.append(Break(hard=True, line=number))
        out.extend(_parse_inline(line, ctx))
    return tuple(out)


# -- block parsing ----------------------------------------------------------------------------

_HEADING_RE = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_QUOTE_RE = re.compile(r" {0,3}> ?(.*)$")
_BULLET_RE = re.compile(r"([ \t]*)-[ \t]+(\S.*)$")
_ORDERED_RE = re.compile(r"([ \t]*)(\d{1,9})\.[ \t]+(\S.*)$")
_HARD_BREAK = "  "


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


@dataclass(slots=True)
class _Open:
    """The block being collected while lines are read."""

    kind: Literal["paragraph", "quote", "list"]
    line: int
    lines: list[tuple[int, str]] = field(default_factory=list)
    ordered: bool = False
    start: int = 1
    items: list[list[tuple[int, str]]] = field(default_factory=list)


def _join(lines: Sequence[tuple[int, str]], ctx: _Context) -> tuple[Inline, ...]:
    """Parse text lines of one block, joined by soft or hard breaks (§1.4's line-break rule)."""
    out: list[Inline] = []
    previous = ""
    for index, (number, line) in enumerate(lines):
        if index:
            out.append(Break(hard=previous.endswith(_HARD_BREAK), line=number))
        out.extend(_parse_inline(line.strip(), ctx))
        previous = line
    return tuple(out)


def _close(current: _Open | None, ctx: _Context) -> Block | None:
    if current is None:
        return None
    if current.kind == "paragraph":
        return Paragraph(_join(current.lines, ctx), current.line)
    if current.kind == "quote":
        return Quote(_parse_blocks(current.lines, ctx), current.line)
    items = tuple(_join(item, ctx) for item in current.items)
    return ListBlock(current.ordered, current.start, items, current.line)


def _parse_blocks(lines: Sequence[tuple[int, str]], ctx: _Context) -> tuple[Block, ...]:
    blocks: list[Block] = []
    current: _Open | None = None

    def finish() -> None:
        nonlocal current
        block = _close(current, ctx)
        if block is not None:
            blocks.append(block)
        current = None

    for number, line in lines:
        if not line.strip():
            finish()
            continue
        if heading := _HEADING_RE.match(line):
            finish()
            level = len(heading.group(1))
            content = [(number, heading.group(2) or "")]
            blocks.append(Heading(level, _join(content, ctx), number))
            continue
        if quote := _QUOTE_RE.match(line):
            if current is None or current.kind != "quote":
                finish()
                current = _Open("quote", number)
            current.lines.append((number, quote.group(1)))
            continue
        item = _BULLET_RE.match(line) or _ORDERED_RE.match(line)
        if item is not None:
            ordered = item.re is _ORDERED_RE
            if current is None or current.kind != "list" or current.ordered != ordered:
                finish()
                start = int(item.group(2)) if ordered else 1
                current = _Open("list", number, ordered=ordered, start=start)
            current.items.append([(number, item.group(item.lastindex or 0))])
            continue
        if current is not None and current.kind == "list":
            # A plain line right after an item continues it (a "lazy" continuation line).
            current.items[-1].append((number, line))
            continue
        if current is None or current.kind != "paragraph":
            finish()
            current = _Open("paragraph", number)
        current.lines.append((number, line))
    finish()
    return tuple(blocks)


def parse_markdown(
    text: str, *, mentions: Collection[str] = (), at_all: bool = False
) -> tuple[Block, ...]:
    """Parse ``text`` into the blocks DingTalk draws; unsupported syntax stays literal text.

    ``mentions`` are the ``@`` targets of the message's ``at`` object (mobiles and user ids);
    ``at_all`` marks ``@all`` as a mention too.
    """
    ctx = _Context(tuple(mentions), at_all, markdown=True)
    numbered = list(enumerate(_lines(text), start=1))
    return _parse_blocks(numbered, ctx)


# -- the checker ------------------------------------------------------------------------------


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
