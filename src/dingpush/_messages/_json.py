"""Reading JSON that becomes messages: nesting bounded before parsing, lone surrogates refused.

``json.loads`` recurses once per level, so ``[[[[…]]]]`` 100,000 deep raises ``RecursionError``
(or worse, in a thread with a small stack); and it turns ``"\\ud800"`` into a string no UTF-8
encoder accepts, which then fails wherever the text is written (a database, a request body).
Both are refused here, before anything else sees the value, with where they are.
"""

from __future__ import annotations

import itertools
import json
import re
import typing

from dingpush._errors import InvalidMessage

from ._fields import field_name

__all__ = ["MAX_JSON_DEPTH", "load_json", "lone_surrogate", "too_deep"]

#: How deeply JSON documents may nest: a message needs about six levels, a batch eight.
MAX_JSON_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Only a \u escape of D800-DFFF can make a lone surrogate: UTF-8 input cannot carry one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> int | None:
    """The offset in ``text`` where nesting passes ``max_depth``, or None (scanned, not parsed).

    Brackets inside strings do not count. Broken JSON is scanned as far as it goes; the parser
    reports its syntax afterwards.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return None  # fewer opening brackets in all than levels allowed (most bodies)
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets or max(itertools.accumulate(map(_STEP.__getitem__, brackets))) <= max_depth:
        return None
    depth = 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return token.start()
        elif char in "]}":
            depth -= 1
    return None  # pragma: no cover - the count above says a level passes max_depth


def lone_surrogate(value: object, text: str | None = None) -> str | None:
    """The JSON pointer of the first string (or key) in ``value`` with a lone surrogate.

    Pass the JSON ``text`` it was parsed from to skip the walk when no escape could make one.
    """
    if text is not None and not _SURROGATE_ESCAPE.search(text):
        return None
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, pointer = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return pointer
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                where = f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
                if _SURROGATE.search(key):  # named with the escape: the pointer must encode
                    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", where)
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{pointer}/{i}") for i, child in reversed(list(enumerate(item))))
    return None


def load_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> typing.Any:
    """``json.loads`` for documents that become messages.

    Raises ``json.JSONDecodeError`` for a syntax error, and :class:`InvalidMessage` (with
    ``pointer`` when it can be told) for nesting deeper than ``max_depth`` or a lone surrogate.
    """
    offset = too_deep(text, max_depth)
    if offset is not None:
        raise InvalidMessage(
            f"the JSON nests more than {max_depth} levels deep (at character {offset + 1}); "
            "a message needs only a few",
            rule=f"at most {max_depth} levels of nesting",
        )
    value = json.loads(text)
    pointer = lone_surrogate(value, text)
    if pointer is not None:
        field = field_name(pointer)
        raise InvalidMessage(
            f"{field or 'the document'}: the string holds a lone surrogate (an unpaired "
            "\\ud800-\\udfff escape), which is not Unicode text and cannot be sent as UTF-8",
            field=field or None,
            rule="Unicode text",
            pointer=pointer,
        )
    return value
