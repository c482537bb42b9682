"""Byte-exact splitting of long ``Text`` and ``Markdown`` messages into numbered parts.

DingTalk counts bytes, not characters: a webhook body may be 20,000 bytes *as sent*, JSON
escaping included (a newline costs two bytes, a quote two, a CJK character three), and an app's
``msgParam`` 15,000 bytes (protocol §1.5, §3.1). A ``Splitter`` measures each candidate part
with the channel's own measure, so every part fits whatever the channel adds around it.

Cuts go at the last paragraph break that fits, else the last line break, else the last
character boundary; never inside a fenced code block, a link, a URL or an @mention when
another cut exists, and never inside a character or a combined character (emoji sequences,
accents). Parts are numbered ``(1/3)``; only the first keeps the message's mentions.
"""

from __future__ import annotations

import bisect
import re
import typing
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dingpush._errors import MessageTooLarge
from dingpush._messages._channels import webhook_body_bytes
from dingpush._messages._models import Markdown, Message, Text

__all__ = ["Measure", "Splitter"]

#: Bytes of a message as its channel counts them.
Measure = Callable[[Message], int]
Splittable = Text | Markdown

_PARAGRAPH = re.compile(r"\n[ \t]*\n+")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_LINK = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)")
_URL = re.compile(r"(?:https?|dingtalk|ftp)://[^\s<>\"'`]+")
_MENTION = re.compile(r"@[0-9A-Za-z_\-+]+")
_JOINERS = frozenset("\u200d\u200c\u034f")


@dataclass(frozen=True, slots=True, kw_only=True)
class Splitter:
    """Cut a ``Text`` or ``Markdown`` message into numbered parts that each fit the channel.

    Args:
        limit: Bytes per part; ``None`` takes the channel's limit (20,000 for a webhook body,
            15,000 for an app's ``msgParam``). A smaller number makes smaller parts.
        measure: How a channel counts a message's bytes; ``None`` takes the channel's own.
        marker: The part number, with ``{index}`` and ``{total}``; it opens each part's text
            (and ends a markdown part's title).
    """

    limit: int | None = None
    measure: Measure | None = None
    marker: str = "({index}/{total})"

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError("Splitter limit must be a positive number of bytes")
        if "{index}" not in self.marker or "{total}" not in self.marker:
            raise ValueError("Splitter marker must contain {index} and {total}")

    def resolve(self, *, limit: int, measure: Measure) -> tuple[int, Measure]:
        """The limit and measure in force on a channel with these defaults."""
        return min(self.limit or limit, limit), self.measure or measure

    def split(
        self,
        message: Message,
        *,
        limit: int = 20_000,
        measure: Measure = webhook_body_bytes,
    ) -> tuple[Message, ...]:
        """Return ``(message,)`` when it fits, else its numbered parts, in order.

        ``limit`` and ``measure`` are the channel's defaults (a webhook body's, unless the
        caller says otherwise); the splitter's own settings take precedence.

        Raises:
            MessageTooLarge: the message does not fit and is not ``Text``/``Markdown``, or
                the limit cannot hold even one character with the marker.
        """
        limit, measure = self.resolve(limit=limit, measure=measure)
        size = measure(message)
        if size <= limit:
            return (message,)
        if not isinstance(message, Text | Markdown):
            raise MessageTooLarge.local(
                size=size,
                limit=limit,
                channel=f"{message.msgtype} message (only Text and Markdown can be split)",
                splittable=False,
            )
        text = message.content if isinstance(message, Text) else message.text
        cuts = _Cuts(text, markdown=isinstance(message, Markdown))
        # Guess the number of parts so the marker's width is usually right the first time.
        digits = len(str(-(-size // limit)))
        while True:
            placeholder = "9" * digits
            chunks = self._cut(cuts, message, placeholder, limit, measure)
            if len(str(len(chunks))) <= digits:
                break
            digits += 1
        total = len(chunks)
        parts = tuple(
            self.build(message, chunk, index, total) for index, chunk in enumerate(chunks, 1)
        )
        for part in parts:
            if measure(part) > limit:  # only a pathological keyword or measure gets here
                raise MessageTooLarge.local(
                    size=measure(part), limit=limit, channel="part of a split message"
                )
        return parts

    def build(self, message: Splittable, chunk: str, index: int | str, total: int | str) -> Message:
        """Part ``index`` of ``total``: the marker, then ``chunk``; mentions on part 1 only."""
        mark = self.marker.format(index=index, total=total)
        at = message.at if str(index) == "1" else None
        if isinstance(message, Text):
            return Text(f"{mark}\n{chunk}", at=at)
        return Markdown(f"{message.title} {mark}", f"{mark}\n\n{chunk}", at=at)

    def strip(self, part: Message, index: int, total: int) -> str:
        """The original text a part carries, without its marker (inverse of :meth:`build`)."""
        mark = self.marker.format(index=index, total=total)
        if isinstance(part, Text):
            return part.content.removeprefix(f"{mark}\n")
        if isinstance(part, Markdown):
            return part.text.removeprefix(f"{mark}\n\n")
        raise TypeError(f"not a part of a split message: {type(part).__name__}")

    def _cut(
        self, cuts: _Cuts, message: Splittable, placeholder: str, limit: int, measure: Measure
    ) -> list[str]:
        text = cuts.text
        chunks: list[str] = []
        start = 0
        while start < len(text):
            index = "1" if not chunks else placeholder

            def fits(end: int, index: str = index, start: int = start) -> bool:
                part = self.build(message, text[start:end], index, placeholder)
                return measure(part) <= limit

            if fits(len(text)):
                chunks.append(text[start:])
                break
            end = cuts.best(start, fits, limit)
            if end is None:
                raise MessageTooLarge.local(
                    size=measure(message),
                    limit=limit,
                    channel="split message (the limit cannot hold one character and the "
                    "part marker)",
                )
            chunks.append(text[start:end])
            start = end
        return chunks


class _Cuts:
    """Where a text may be cut, best first: paragraph breaks, line breaks, characters."""

    def __init__(self, text: str, *, markdown: bool) -> None:
        self.text = text
        self.paragraphs = [m.end() for m in _PARAGRAPH.finditer(text)]
        self.lines = [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        spans = [(m.start(), m.end()) for m in _URL.finditer(text)]
        spans += [(m.start(), m.end()) for m in _MENTION.finditer(text)]
        if markdown:
            spans += [(m.start(), m.end()) for m in _LINK.finditer(text)]
        spans += _fences(text)
        # Merged and sorted, so a position is looked up with one bisection.
        merged: list[tuple[int, int]] = []
        for begin, end in sorted(spans):
            if merged and begin < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((begin, end))
        self.starts = [begin for begin, _ in merged]
        self.spans = merged

    def best(self, start: int, fits: Callable[[int], bool], limit: int) -> int | None:
        """The best cut after ``start`` whose part fits, or ``None`` if not even one fits."""
        reach = self._reach(start, fits, limit)
        if reach is None:
            return None
        for candidates, protect, whole in (
            (self.paragraphs, True, True),
            (self.lines, True, True),
            (None, True, True),
            # A fence, link or URL larger than a part cannot stay whole: cut it at a line,
            # else at a character; as a last resort, even a run of combining marks.
            (self.lines, False, True),
            (None, False, True),
            (None, False, False),
        ):
            cut = self._last(candidates, start, reach, protect, whole, fits)
            if cut is not None:
                return cut
        return None

    def _reach(self, start: int, fits: Callable[[int], bool], limit: int) -> int | None:
        """The farthest end such that ``text[start:end]`` fits (binary search)."""
        # Every character costs at least a byte: a part never holds more than `limit` of them.
        lo, hi = start, min(len(self.text), start + limit)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo if lo > start else None

    def _last(
        self,
        candidates: Sequence[int] | None,
        start: int,
        reach: int,
        protect: bool,
        whole: bool,
        fits: Callable[[int], bool],
    ) -> int | None:
        if candidates is None:
            positions: typing.Iterable[int] = range(reach, start, -1)
        else:
            right = bisect.bisect_right(candidates, reach)
            left = bisect.bisect_right(candidates, start)
            positions = reversed(candidates[left:right])
        for position in positions:
            if whole and not self._breakable(position):
                continue
            if protect and self._protected(position):
                continue
            # The measure is monotone for all but keyword/mention edge cases: check anyway.
            if fits(position):
                return position
        return None

    def _protected(self, position: int) -> bool:
        """Whether a cut here falls inside a fenced block, a link, a URL or a mention."""
        i = bisect.bisect_left(self.starts, position) - 1
        return i >= 0 and position < self.spans[i][1]

    def _breakable(self, position: int) -> bool:
        """False inside a character cluster: before a combining mark, around a joiner…"""
        text = self.text
        if position <= 0 or position >= len(text):
            return True
        before, after = text[position - 1], text[position]
        if before == "\r" and after == "\n":
            return False
        if after in _JOINERS or before in _JOINERS:
            return False
        if unicodedata.combining(after) or unicodedata.category(after) in ("Mn", "Me", "Mc"):
            return False
        if "\ufe00" <= after <= "\ufe0f" or "\U000e0100" <= after <= "\U000e01ef":
            return False  # variation selectors
        if "\U0001f3fb" <= after <= "\U0001f3ff" or "\U000e0020" <= after <= "\U000e007f":
            return False  # skin-tone modifiers, emoji tag sequences
        return not (_regional(before) and _regional(after) and _pairs_before(text, position) % 2)


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _pairs_before(text: str, position: int) -> int:
    """How many regional indicators run up to ``position`` (flags come in pairs)."""
    count = 0
    while position - count - 1 >= 0 and _regional(text[position - count - 1]):
        count += 1
    return count


def _fences(text: str) -> list[tuple[int, int]]:
    """The spans of fenced code blocks, from the opening fence to the end of the closing one."""
    spans: list[tuple[int, int]] = []
    opened: tuple[int, str] | None = None
    for match in _FENCE.finditer(text):
        fence = match.group(1)
        if opened is None:
            opened = (match.start(), fence)
        elif fence[0] == opened[1][0] and len(fence) >= len(opened[1]):
            line_end = text.find("\n", match.end())
            end = len(text) if line_end < 0 else line_end
            spans.append((opened[0], end))
            opened = None
    if opened is not None:
        spans.append((opened[0], len(text)))
    return spans
