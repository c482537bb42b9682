"""Text helpers for DingTalk's markdown subset (protocol §1.4), used as template filters.

Pure Python, no template engine: the logging handler uses them too.

- :func:`escape_markdown` makes a value (a label, an annotation, a log line) show as typed:
  it cannot open bold or italics, a heading, a quote, a list, a link or an image, nor
  @-mention anyone (DingTalk notifies whoever's ``@mobile``/``@userId`` is in the text and in
  ``at``: the ``@`` of a value becomes the full-width ``＠``, which mentions no one).
- :func:`truncate_bytes` cuts to a number of UTF-8 bytes, as DingTalk counts, on a character
  boundary, and says so with a marker.
- :func:`format_duration` writes "12 min", "3 h 5 min"; :func:`format_time` a local time.
- :func:`safe_url` keeps a link target from breaking out of ``(…)`` or running a script.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
import zoneinfo

__all__ = [
    "escape_markdown",
    "format_duration",
    "format_time",
    "resolve_timezone",
    "safe_url",
    "truncate_bytes",
    "unescape_markdown",
]


# Characters that open markup wherever they stand: emphasis, code, link and image brackets,
# HTML tags, tables, strikethrough, and the escape character itself. Parentheses need no
# escape once "]" is escaped, except right after it ("\\](" would still read "](" to a renderer
# that ignores backslashes), and "!" needs none once "[" is.
_INLINE = re.compile(r"([\\`*_\[\]<|~])")
_ENTITY = re.compile(r"&(?=#?\w+;)")
# What opens a block only at the start of a line: a heading, a quote, a list item.
_LINE_START = re.compile(r"^(\s*)([-+](?=\s|$)|\d+(?=[.)](?:\s|$))|#|>)")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# Text with none of these characters, and no line-start marker, needs no escaping (most labels).
_ANY_SPECIAL = re.compile(r"[\\`*_\[\]<|~@&\r\n]")
_MARKER_START = frozenset("#>-+0123456789 \t")
_UNESCAPE = re.compile(r"\\([\\`*_\[\]()!#<>&|~{}.)+-])")


def escape_markdown(value: object, *, multiline: bool = False) -> str:
    """Make ``value`` show literally in DingTalk markdown, and mention no one.

    Newlines become spaces unless ``multiline``, when each line is escaped on its own and the
    lines are joined with DingTalk's hard line break (two spaces, then a newline).
    """
    text = "" if value is None else str(value)
    if not _ANY_SPECIAL.search(text) and text[:1] not in _MARKER_START:
        return text
    lines = _NEWLINES.split(text)
    if not multiline:
        lines = [" ".join(lines)]
    out = []
    for line in lines:
        line = _INLINE.sub(r"\\\1", line).replace("\\](", "\\]\\(").replace("@", "＠")
        line = _ENTITY.sub("\\\\&", line)
        # "- item", "+ item", "1. item" at the start of a line would open a list.
        line = _LINE_START.sub(_escape_marker, line, count=1)
        out.append(line)
    return "  \n".join(out)


def _escape_marker(match: re.Match[str]) -> str:
    indent, marker = match.group(1), match.group(2)
    if marker in "-+#>":
        return f"{indent}\\{marker}"
    return f"{indent}{marker}\\"  # "1." → "1\." (the backslash goes before the dot)


def unescape_markdown(text: str) -> str:
    """Undo :func:`escape_markdown`'s backslashes, for plain-text fields such as a title."""
    return _UNESCAPE.sub(r"\1", text)


_MARKER = "…"


def truncate_bytes(value: object, limit: int, marker: str = _MARKER) -> str:
    """At most ``limit`` UTF-8 bytes of ``value``, cut on a character boundary, ``marker`` last.

    The marker's bytes count towards the limit; text that fits is returned unchanged.
    """
    text = "" if value is None else str(value)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError("truncate_bytes: the limit is a number of bytes >= 0")
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    if room <= 0:
        return marker.encode("utf-8")[:limit].decode("utf-8", "ignore")
    return encoded[:room].decode("utf-8", "ignore") + marker


def format_duration(value: float | datetime.timedelta | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``: the two largest units, rounded down."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def resolve_timezone(name: str | None) -> datetime.tzinfo | None:
    """An IANA zone (``Asia/Shanghai``), ``UTC``, or ``None`` for the machine's local zone."""
    if name is None or name == "local":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {name!r} is unknown: use an IANA name such as Asia/Shanghai or UTC, "
            "or 'local' for the machine's zone"
        ) from None


def format_time(
    value: datetime.datetime | None,
    tz: datetime.tzinfo | None = None,
    fmt: str = "%Y-%m-%d %H:%M:%S",
) -> str:
    """``value`` in ``tz`` (the machine's zone when ``None``), written with ``fmt``."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(tz).strftime(fmt)


_URL_SCHEMES = ("http", "https", "dingtalk", "mailto", "tel")


def safe_url(value: object) -> str:
    """``value`` as a link target: http(s)/dingtalk/mailto/tel only (``""`` otherwise), with the
    characters that would end ``(…)`` or break the link percent-encoded."""
    text = "" if value is None else str(value).strip()
    scheme = urllib.parse.urlsplit(text).scheme.lower() if ":" in text else ""
    if scheme not in _URL_SCHEMES:
        return ""
    # An "@" could read as a mention of whoever's id follows it: only an address keeps it.
    safe = "/:?#&=%+,;!$'*~.-_[]" + ("@" if scheme == "mailto" else "")
    return urllib.parse.quote(text, safe=safe)
