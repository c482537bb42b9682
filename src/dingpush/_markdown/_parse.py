"""DingTalk's markdown (protocol §1.4): a parser for what it renders, a checker for the rest.

DingTalk documents a small subset for robot markdown: headings ``#``–``######``, block quotes,
``**bold**`` and ``*italic*``, links, images, ``-`` and ``1.`` lists, and a line-break rule (a
single newline joins lines; end a line with two spaces, or leave a blank line, to break it).
Everything else — tables, code, HTML tags, strikethrough — is shown as the characters typed.

:func:`parse_markdown` turns a text into the blocks DingTalk draws (the chat view, the relay's
dashboard and ``dingpush preview`` render them); :mod:`dingpush._markdown._check` uses the same
parser to list what will not render as the writer meant. Both are pure Python and fast.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Block",
    "Break",
    "Emphasis",
    "Heading",
    "Image",
    "Inline",
    "LinkSpan",
    "ListBlock",
    "Mention",
    "Paragraph",
    "Quote",
    "Strong",
    "TextSpan",
    "parse_markdown",
    "parse_text",
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
