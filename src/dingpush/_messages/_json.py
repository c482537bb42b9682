"""Reading JSON that becomes messages: nesting bounded before parsing, lone surrogates refused.

``json.loads`` recurses once per level, so ``[[[[…]]]]`` 100,000 deep raises ``RecursionError``
(or worse, in a thread with a small stack); and it turns ``"\\ud800"`` into a string no UTF-8
encoder accepts, which then fails wherever the text is written (a database, a request body).
Both are refused here, before anything else sees the value, with where they are.
"""

from __future__ import annotations

import json
import typing

from dingpush._errors import InvalidMessage
from dingpush._wire import MAX_JSON_DEPTH, lone_surrogate, too_deep

from ._fields import field_name

__all__ = ["MAX_JSON_DEPTH", "load_json", "lone_surrogate", "too_deep"]


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
