"""Configuration problems: each names the file, the line, the key, what is wrong and the fix."""

from __future__ import annotations

import difflib
import os
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dingpush import ConfigError

__all__ = ["ConfigFileError", "Problem", "closest", "did_you_mean", "display_path"]


def display_path(path: pathlib.Path | None) -> str:
    """Show ``path`` relative to the working directory when it lies below it."""
    if path is None:
        return "<environment>"
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration.

    ``where`` is the file (``None`` for the environment); ``key`` the dotted key, e.g.
    ``targets.ops.secret`` (empty for the whole file).
    """

    where: pathlib.Path | None
    line: int | None
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        if self.where is None:  # the environment: the key is the variable's name
            text = f"${self.key}: {self.message}" if self.key else self.message
        else:
            location = display_path(self.where)
            if self.line is not None:
                location = f"{location}:{self.line}"
            text = (
                f"{location}: {self.key}: {self.message}"
                if self.key
                else f"{location}: {self.message}"
            )
        if not self.fix:
            return text
        return (
            f"{text} Fix: {self.fix}" if text.endswith(("?", ".")) else f"{text}. Fix: {self.fix}"
        )


class ConfigFileError(ConfigError):
    """The configuration has problems; each names the file, line, key and fix.

    They are listed in line order, whatever order they were found in (problems without a line
    come last).
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        )
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            listed = "\n".join(f"  {problem}" for problem in self.problems)
            text = f"the configuration has {len(self.problems)} problems:\n{listed}"
        super().__init__(text)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` closest to ``word``, when one is close enough to be a typo."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for a close match among ``choices``, else ``""``."""
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


def home_relative(path: pathlib.Path) -> str:
    """Show a path under the home directory as ``~/…``."""
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home) :] if home and text.startswith(home + os.sep) else text
