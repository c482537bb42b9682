"""The fenced blocks of a guide that a test runs, found by the marker before each.

A marker is an HTML comment on the line before the fence, invisible in the rendered page::

    <!-- test: KIND -->
    <!-- test: KIND, exit N -->

What a kind means is up to the test that reads the guide: ``tests/cli/test_docs_cli.py``
(docs/cli.md: ``config``, ``shell``, ``ci``, ``cron``) and ``tests/relay/test_docs_relay.py``
(docs/relay.md and README.md: ``relay-config``, ``relay``). Python examples have their own
marker, ``<!-- test -->``, run by ``tests/test_docs.py``.
"""

from __future__ import annotations

import pathlib
import re
import typing

ROOT = pathlib.Path(__file__).resolve().parent.parent

_BLOCK = re.compile(
    r"<!-- test: (?P<kind>[\w-]+)(?:, exit (?P<exit>\d+))? -->\s*\n"
    r"```(?P<lang>\w+)\n(?P<body>.*?)\n```",
    re.DOTALL,
)


class Block(typing.NamedTuple):
    """One marked block: its kind, fence language, text, expected exit status and place."""

    kind: str
    lang: str
    body: str
    exit: int
    path: pathlib.Path
    line: int

    @property
    def where(self) -> str:
        """``relay.md:37``: the file and the line the block's text starts on."""
        return f"{self.path.name}:{self.line}"


def marked_blocks(path: pathlib.Path, kinds: typing.Collection[str]) -> list[Block]:
    """Every marked block of ``path``, in order; a kind outside ``kinds`` is an error (a typo)."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("body")) + 1
        if match["kind"] not in kinds:
            raise ValueError(
                f"{path.name}:{line}: unknown test marker kind {match['kind']!r}; "
                f"this guide's kinds are {sorted(kinds)}"
            )
        exit_status = int(match["exit"] or 0)
        found.append(Block(match["kind"], match["lang"], match["body"], exit_status, path, line))
    return found
