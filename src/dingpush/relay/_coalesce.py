"""Coalescing: when a backlog would wait too long, merge its text and markdown into digests.

Sans-I/O: :func:`backlog_wait` estimates how long the last of ``n`` queued messages would wait
at the target's pace, and :func:`plan_digests` packs queued originals, oldest first, into digest
messages that fit the target's byte limit. Each digest has a header with the count and the time
span, every original as its own section (with its time), and the union of their mentions; the
store records which originals each digest carries.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dingpush import At, DingPushError, Markdown, Message, Text, parse_message
from dingpush.lowlevel import MAX_MENTIONS

from .stores import OutboxMessage

__all__ = ["Digest", "backlog_wait", "plan_digests", "threshold"]

#: The ``kind`` the store records for a digest (so that a digest is never merged again).
DIGEST_KIND = "digest"


@dataclass(frozen=True, slots=True)
class Digest:
    """Originals (oldest first) and the message that carries them."""

    originals: tuple[str, ...]
    message: Message
    due_at: float


def backlog_wait(n: int, *, delay: float, limit: int, window: float) -> float:
    """Seconds the ``n``-th queued message would wait at ``limit`` per ``window``.

    ``delay`` is the wait for the next slot (0 when one is free). With a slot free, up to
    ``limit`` go now; the rest wait for the window. Without, they go from ``delay`` on, a
    window's worth at a time.
    """
    if n <= 0:
        return 0.0
    if delay <= 0:
        rest = n - limit
        if rest <= 0:
            return 0.0
        return window + (math.ceil(rest / limit) - 1) * window
    return delay + (math.ceil(n / limit) - 1) * window


def threshold(*, delay: float, limit: int, window: float, after: float) -> int:
    """The smallest backlog (at least 2) whose last message would wait longer than ``after``."""

    def waits(n: int) -> bool:
        return backlog_wait(n, delay=delay, limit=limit, window=window) > after

    if waits(2):
        return 2
    high = 4
    while not waits(high):  # the wait grows by a window every `limit` messages
        high *= 2
    low = high // 2  # waits(low) is False, waits(high) is True
    while high - low > 1:
        middle = (low + high) // 2
        if waits(middle):
            high = middle
        else:
            low = middle
    return high


def _clock(at: float, tz: datetime.tzinfo | None) -> str:
    return datetime.datetime.fromtimestamp(at, tz).strftime("%H:%M:%S")


def _span(first: float, last: float, tz: datetime.tzinfo | None) -> str:
    start = datetime.datetime.fromtimestamp(first, tz)
    end = datetime.datetime.fromtimestamp(last, tz)
    day = start.strftime("%Y-%m-%d")
    if start.date() == end.date():
        return f"{day} {start:%H:%M:%S} – {end:%H:%M:%S}"
    return f"{day} {start:%H:%M:%S} – {end:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True, slots=True)
class _Item:
    original: OutboxMessage
    message: Text | Markdown


def _section(item: _Item, markdown: bool, tz: datetime.tzinfo | None) -> str:
    """One original in a digest: its time, then its text, in DingTalk's markdown subset.

    The subset has no horizontal rule (protocol §1.4), so sections are set apart by a bold time
    (and the title of a markdown original) and blank lines; a one-line text takes one line.
    """
    when = _clock(item.original.created_at, tz)
    message = item.message
    if not markdown:
        assert isinstance(message, Text)
        return f"[{when}] {message.content}"
    if isinstance(message, Markdown):
        return f"**{when}** · {message.title}\n\n{message.text}"
    if "\n" in message.content.strip():
        return f"**{when}**\n\n{message.content}"
    return f"**{when}** {message.content}"


def _build(items: Sequence[_Item], tz: datetime.tzinfo | None) -> Message:
    first = min(i.original.created_at for i in items)
    last = max(i.original.created_at for i in items)
    at: At | None = None
    for item in items:
        if item.message.mentions:
            at = item.message.mentions if at is None else at.merged(item.message.mentions)
    markdown = any(isinstance(i.message, Markdown) for i in items)
    count = len(items)
    span = _span(first, last, tz)
    if markdown:
        header = f"#### {count} messages, {span}"
        text = "\n\n".join([header, *(_section(i, True, tz) for i in items)])
        return Markdown(f"{count} messages ({_clock(first, tz)}–{_clock(last, tz)})", text, at=at)
    header = f"{count} messages, {span}"
    text = "\n".join([header, *(_section(i, False, tz) for i in items)])
    return Text(text, at=at)


def _mentions(items: Sequence[_Item]) -> int:
    people: set[str] = set()
    for item in items:
        if item.message.mentions:
            people.update(item.message.mentions.targets)
    return len(people)


def _parse(original: OutboxMessage) -> Text | Markdown | None:
    try:
        message = parse_message(json.loads(original.payload))
    except (ValueError, DingPushError):
        return None
    return message if isinstance(message, Text | Markdown) else None


def plan_digests(
    originals: Sequence[OutboxMessage],
    *,
    measure: Callable[[Message], int],
    limit: int,
    tz: datetime.tzinfo | None = None,
) -> list[Digest]:
    """Pack ``originals`` (oldest first) into digests that each measure at most ``limit``.

    Greedy and order-keeping: an original that does not fit the current digest starts the
    next one. An original too large to share a digest, and a digest that would hold only one
    original, are left alone (sent as they are).
    """
    items = [_Item(o, m) for o in originals if (m := _parse(o)) is not None]
    digests: list[Digest] = []
    current: list[_Item] = []
    estimate = 0  # bytes of the current digest: exact after a measure, then a safe estimate

    def close() -> None:
        if len(current) > 1:
            message = _build(current, tz)
            while len(current) > 1 and measure(message) > limit:  # the estimate was short
                current.pop()
                message = _build(current, tz)
            if len(current) > 1:
                ids = tuple(i.original.id for i in current)
                digests.append(Digest(ids, message, min(i.original.due_at for i in current)))
        current.clear()

    for item in items:
        markdown = any(isinstance(i.message, Markdown) for i in (*current, item))
        cost = _cost(item, markdown, tz)
        if current and _mentions([*current, item]) <= MAX_MENTIONS:
            if estimate + cost + _SLACK <= limit:
                current.append(item)
                estimate += cost
                continue
            exact = measure(_build([*current, item], tz))
            if exact <= limit:
                current.append(item)
                estimate = exact
                continue
        if current:
            close()
        estimate = measure(_build([item], tz))
        if estimate > limit:
            continue  # too large even alone in a digest: it goes as it is
        current.append(item)
    close()
    return digests


#: Room kept for what grows as a digest grows besides its sections: the count and time span
#: in the header and title, and the JSON of the mention lists.
_SLACK = 256


def _cost(item: _Item, markdown: bool, tz: datetime.tzinfo | None) -> int:
    """Bytes one more section adds to a digest's body (JSON-escaped, mentions twice)."""
    text = _section(item, markdown, tz)
    size = len(json.dumps(text, ensure_ascii=False).encode()) - 2 + 4
    if item.message.mentions:
        size += sum(2 * len(t.encode()) + 8 for t in item.message.mentions.targets)
    return size


def digest_payload(message: Message) -> str:
    """The JSON text the store keeps for a digest message."""
    return json.dumps(message.to_payload(), ensure_ascii=False, separators=(",", ":"))
