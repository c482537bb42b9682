"""Reading request bodies: JSON the emulator can hold, or a ``ValueError``.

``json.loads`` recurses once per level (``[[[[…]]]]`` 100,000 deep raised ``RecursionError``, a
500) and turns ``"\\ud800"`` into a string no UTF-8 encoder takes (accepted, it broke every
page of the chat view until a reset). DingTalk's answer to either is not documented [U]; every
route answers them as it answers JSON it cannot read. The checks are the library's public
:func:`dingpush.lowlevel.too_deep` and :func:`~dingpush.lowlevel.lone_surrogate` (the wire's,
which load none of the client's message models), with the emulator's own, looser, bound.
"""

from __future__ import annotations

import json
from typing import Any

from dingpush.lowlevel import lone_surrogate, too_deep

__all__ = ["MAX_DEPTH", "loads"]

#: Far deeper than any DingTalk request (a message needs about six levels), far below the
#: parser's recursion limit.
MAX_DEPTH = 64


def loads(data: bytes | str) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON; ``ValueError`` for what cannot be held.

    Invalid UTF-8 and invalid JSON raise ``ValueError`` as ``json.loads`` does; so do nesting
    deeper than :data:`MAX_DEPTH` and a string (or key) holding a lone surrogate.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if too_deep(text, MAX_DEPTH) is not None:
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
    value = json.loads(text)
    where = lone_surrogate(value, text)
    if where is not None:
        raise ValueError(f"a lone surrogate in the string at {where or '/'}")
    return value
