"""A configuration file's text: parsing with tomllib, and finding the line of every key.

tomllib reports no positions for the values it returns, yet a useful error names the line. The
:class:`KeyLocator` reads the text once with a small TOML-aware scanner (strings, comments,
multi-line strings and arrays, inline tables) and records the line where each key, table header
and inline-table key appears. Each table of an array of tables (``[[routes]]``) is also found
by its index, ``("routes", "[1]", "match")`` for the second one's ``match``.
"""

from __future__ import annotations

import pathlib
import re
import tomllib
import typing
from dataclasses import dataclass

from ._problems import ConfigFileError, Problem

__all__ = ["ConfigSource", "KeyLocator", "KeyPath"]

KeyPath = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DECODE_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_DECODE_END = re.compile(r"\s*\(at end of document\)\s*$")


class KeyLocator:
    """Map dotted key paths of a TOML document to the line (1-based) that defines them."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}
        self._scan(text)

    def line_of(self, path: KeyPath) -> int | None:
        """Return the line of ``path``, else of its nearest enclosing table, else ``None``."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def exact(self, path: KeyPath) -> int | None:
        """Return the line of ``path`` itself, or ``None`` when the text does not name it."""
        return self._lines.get(path)

    def _record(self, path: KeyPath, line: int) -> None:
        # The first mention wins: a table is defined where its header (or first key) is.
        self._lines.setdefault(path, line)

    def _scan(self, text: str) -> None:
        scanner = _Scanner(text)
        tables: tuple[KeyPath, ...] = ((),)
        while not scanner.at_end():
            scanner.skip_blank()
            if scanner.at_end():
                break
            if scanner.peek() == "[":
                tables = self._header(scanner)
            else:
                self._key_value(scanner, *tables)
            scanner.skip_to_next_line()

    def _header(self, scanner: _Scanner) -> tuple[KeyPath, ...]:
        """Record a table header; return the paths its keys are found by."""
        line = scanner.line
        array = scanner.startswith("[[")
        scanner.advance(2 if array else 1)
        path = scanner.read_key()
        for end in range(1, len(path) + 1):
            self._record(path[:end], line)
        if not array:
            return (path,)
        index = self._arrays.get(path, 0)
        self._arrays[path] = index + 1
        indexed = (*path, f"[{index}]")
        self._record(indexed, line)
        return (path, indexed)

    def _key_value(self, scanner: _Scanner, prefix: KeyPath, *also: KeyPath) -> None:
        line = scanner.line
        key = scanner.read_key()
        if not key:
            return
        for table in (prefix, *also):
            path = table + key
            for end in range(len(table) + 1, len(path) + 1):
                self._record(path[:end], line)
        scanner.skip_spaces()
        if scanner.peek() != "=":
            return
        scanner.advance(1)
        scanner.skip_spaces()
        self._value(scanner, prefix + key)

    def _value(self, scanner: _Scanner, path: KeyPath) -> None:
        char = scanner.peek()
        if char == "{":
            scanner.advance(1)
            self._inline_table(scanner, path)
        elif char == "[":
            scanner.advance(1)
            self._array(scanner, path)
        elif char in ('"', "'"):
            scanner.read_string()
        else:
            scanner.skip_scalar()

    def _inline_table(self, scanner: _Scanner, path: KeyPath) -> None:
        while not scanner.at_end():
            scanner.skip_blank()
            if scanner.peek() in ("}", ""):
                scanner.advance(1)
                return
            if scanner.peek() == ",":
                scanner.advance(1)
                continue
            before = scanner.position
            self._key_value(scanner, path)
            if scanner.position == before:  # not a key: step over what we do not understand
                scanner.advance(1)

    def _array(self, scanner: _Scanner, path: KeyPath) -> None:
        while not scanner.at_end():
            scanner.skip_blank()
            char = scanner.peek()
            if char in ("]", ""):
                scanner.advance(1)
                return
            if char == ",":
                scanner.advance(1)
                continue
            before = scanner.position
            self._value(scanner, path)
            if scanner.position == before:
                scanner.advance(1)


class _Scanner:
    """A cursor over TOML text that knows strings, comments and line numbers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1

    def at_end(self) -> bool:
        return self.position >= len(self.text)

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def startswith(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.position)

    def advance(self, count: int) -> None:
        end = min(self.position + count, len(self.text))
        self.line += self.text.count("\n", self.position, end)
        self.position = end

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.advance(1)

    def skip_blank(self) -> None:
        """Skip whitespace, newlines and comments."""
        while not self.at_end():
            char = self.peek()
            if char in (" ", "\t", "\r", "\n"):
                self.advance(1)
            elif char == "#":
                self.skip_to_line_end()
            else:
                return

    def skip_to_line_end(self) -> None:
        end = self.text.find("\n", self.position)
        self.position = len(self.text) if end < 0 else end

    def skip_to_next_line(self) -> None:
        """Skip the rest of the current line; strings that run on are consumed whole."""
        while not self.at_end() and self.peek() != "\n":
            if self.peek() in ('"', "'"):
                self.read_string()
            elif self.peek() == "#":
                self.skip_to_line_end()
            else:
                self.advance(1)

    def skip_scalar(self) -> None:
        while not self.at_end() and self.peek() not in (",", "]", "}", "\n", "#"):
            self.advance(1)

    def read_key(self) -> KeyPath:
        """Read a dotted key (bare, "basic" or 'literal' parts) up to '=' or ']'."""
        parts: list[str] = []
        while True:
            self.skip_spaces()
            char = self.peek()
            if char in ('"', "'"):
                parts.append(self.read_string())
            else:
                match = _BARE_KEY.match(self.text, self.position)
                if not match:
                    return tuple(parts)
                parts.append(match.group())
                self.advance(len(match.group()))
            self.skip_spaces()
            if self.peek() != ".":
                return tuple(parts)
            self.advance(1)

    def read_string(self) -> str:
        """Read a string of any of TOML's four kinds and return its (roughly decoded) value."""
        quote = self.peek()
        triple = quote * 3
        if self.startswith(triple):
            self.advance(3)
            end = self.text.find(triple, self.position)
            end = len(self.text) if end < 0 else end
            value = self.text[self.position : end]
            self.advance(end - self.position + 3)
            return value
        self.advance(1)
        chars: list[str] = []
        while not self.at_end() and self.peek() not in (quote, "\n"):
            if quote == '"' and self.peek() == "\\":
                self.advance(1)
            chars.append(self.peek())
            self.advance(1)
        self.advance(1)
        return "".join(chars)


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """One configuration file: its path, text, parsed data and key locations."""

    path: pathlib.Path
    text: str
    data: dict[str, typing.Any]
    locator: KeyLocator

    @classmethod
    def read(cls, path: pathlib.Path) -> ConfigSource:
        """Read and parse ``path``; raise a :class:`ConfigFileError` naming the line at fault."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigFileError(
                [Problem(path, None, "", f"cannot read the file ({reason})", "check its path")]
            ) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigFileError(
                [
                    Problem(
                        path,
                        line,
                        "",
                        f"the file is not UTF-8 (byte {exc.start})",
                        "save it as UTF-8, e.g. iconv -f GBK -t UTF-8",
                    )
                ]
            ) from None
        return cls.parse(path, text)

    @classmethod
    def parse(cls, path: pathlib.Path, text: str) -> ConfigSource:
        """Parse TOML ``text`` that came from ``path``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError([_syntax_problem(path, text, exc)]) from None
        return cls(path, text, data, KeyLocator(text))

    def line_of(self, path: KeyPath) -> int | None:
        return self.locator.line_of(path)


def _syntax_problem(path: pathlib.Path, text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    line: int | None = None
    at_end = False
    found = _DECODE_POSITION.search(message)
    if found:
        line = int(found.group(1))
        message = message[: found.start()]
    elif _DECODE_END.search(message):
        line = text.count("\n") + (0 if text.endswith("\n") else 1)
        message = _DECODE_END.sub("", message)
        at_end = True
    fix = 'write key = value, quote strings ("…") and give each [table] once'
    if at_end:
        fix = "something opened is not closed: look for a missing ], } or closing quote"
    elif "Invalid value" in message or "Invalid initial character" in message:
        fix = 'quote text values, e.g. webhook = "https://…"'
    elif "Cannot overwrite" in message or "Cannot declare" in message:
        fix = "each key and each [table] may appear only once"
    return Problem(path, line, "", f"invalid TOML: {message.rstrip('.')}", fix)
