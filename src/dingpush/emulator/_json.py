"""Reading request bodies: JSON the emulator can hold, or a ``ValueError``.

``json.loads`` recurses once per level (``[[[[…]]]]`` 100,000 deep raised ``RecursionError``, a
500) and turns ``"\\ud800"`` into a string no UTF-8 encoder takes (accepted, it broke every
page of the chat view until a reset). DingTalk's answer to either is not documented [U]; every
route answers them as it answers JSON it cannot read. The emulator reads JSON on its own: it
loads none of the client's modules.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "loads"]

#: Far deeper than any DingTalk request (a message needs about six levels), far below the
#: parser's recursion limit.
MAX_DEPTH = 64

# A JSON string (skipped whole: brackets inside it do not nest) or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# Only a \u escape of D800-DFFF can make a lone surrogate: UTF-8 input cannot carry one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(data: bytes | str) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON; ``ValueError`` for what cannot be held.

    Invalid UTF-8 and invalid JSON raise ``ValueError`` as ``json.loads`` does; so do nesting
    deeper than :data:`MAX_DEPTH` and a string (or key) holding a lone surrogate.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if text.count("[") + text.count("{") > MAX_DEPTH:  # else it cannot nest that deep
        depth = 0
        for token in _TOKEN.finditer(text):
            char = token.group()
            if char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
            elif char in "]}":
                depth -= 1
    value = json.loads(text)
    if _SURROGATE_ESCAPE.search(text):  # a pair is fine; encoding finds one left alone
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError: ValueError
    return value
