"""DingTalk's markdown subset as a document: the parser behind dingpush's previews.

DingTalk draws a small subset of markdown in robot messages (protocol §1.4): headings, quotes,
bold and italic, links, images, ``-`` and ``1.`` lists, and its own line-break rule; everything
else shows as typed. :func:`parse_markdown` turns a text into the blocks DingTalk draws and
:func:`parse_text` a text message into its lines, so a renderer (the emulator's chat view, the
relay's dashboard, ``dingpush preview``) only walks the nodes::

    from dingpush.markdown import Heading, parse_markdown

    blocks = parse_markdown("## Deploy\\nweb-01 **done**")
    assert isinstance(blocks[0], Heading) and blocks[0].level == 2

``dingpush.check_markdown`` reads the same parse to list what will not render as meant. Pure
Python; names load on first use, like ``dingpush``'s.
"""

from __future__ import annotations

import typing

from ._lazy import lazy_names

if typing.TYPE_CHECKING:  # what mypy and editors read; at run time _MODULES says the same
    from ._markdown._parse import (
        Block,
        Break,
        Emphasis,
        Heading,
        Image,
        Inline,
        LinkSpan,
        ListBlock,
        Mention,
        Paragraph,
        Quote,
        Strong,
        TextSpan,
        parse_markdown,
        parse_text,
    )

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

#: Where each name lives; the parser is imported when a name is first used.
_MODULES: dict[str, tuple[str, ...]] = {"._markdown._parse": tuple(__all__)}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
