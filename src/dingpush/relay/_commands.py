"""The chat commands people give the relay's robot, read from a message's text (pure).

DingTalk strips the ``@robot`` mention before the text reaches the app (§12.1), so the text is
``ack``, ``ack 42``, ``silence 2h``, ``silence 42 30m``, ``status`` or ``help``. A leading
``@name`` that is still there (a second mention, a client that kept it) is skipped; ``#42``
and ``42`` are the same incident. Anything else is an :class:`Command` named ``help`` whose
``problem`` says what was not understood, so the robot answers with the list of commands.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass

from dingpush import parse_duration

__all__ = ["COMMANDS", "Command", "CommandName", "help_text", "parse_command"]

CommandName = typing.Literal["ack", "silence", "status", "help"]

#: Each command, its forms and what it does: the help text is made of these.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("ack [N]", "take incident N (the group's newest open one without N): escalation stops"),
    ("silence [N] DURATION", "silence its alerts in Alertmanager, e.g. silence 2h, silence 42 30m"),
    ("status", "list the group's open incidents"),
    ("help", "this list"),
)
_ALIASES: dict[str, CommandName] = {
    "ack": "ack",
    "acknowledge": "ack",
    "silence": "silence",
    "mute": "silence",
    "status": "status",
    "list": "status",
    "help": "help",
    "?": "help",
}
_NUMBER = re.compile(r"#?(\d+)")
#: Incident numbers have at most this many digits (a store's integer column holds them).
_NUMBER_DIGITS = 9
_MENTION = re.compile(r"@\S+")


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its name, the incident number and the duration it names, if any.

    ``problem`` is set for a ``help`` the person did not ask for (what was not understood).
    """

    name: CommandName
    number: int | None = None
    duration: float | None = None
    problem: str | None = None


#: How much of what a person wrote an answer quotes back: a 100 KB message is not echoed.
QUOTED_MAX = 40


def _quoted(text: str) -> str:
    """``text`` in quotes, as ``repr`` gives it, shortened to ``QUOTED_MAX`` characters."""
    return repr(text if len(text) <= QUOTED_MAX else text[: QUOTED_MAX - 1] + "…")


def _help(problem: str) -> Command:
    return Command("help", problem=problem)


def parse_command(text: str) -> Command:
    """Read one command from a message's text (without the mention)."""
    words = text.replace("\u3000", " ").split()
    while words and _MENTION.fullmatch(words[0]):
        words.pop(0)
    if not words:
        return _help("the message is empty")
    head, rest = words[0].lower(), words[1:]
    name = _ALIASES.get(head)
    if name is None:
        return _help(f"{_quoted(words[0])} is not a command")
    if name in ("status", "help"):
        if rest:
            return _help(f"{name} takes nothing after it")
        return Command(name)
    number = None
    if rest and (match := _NUMBER.fullmatch(rest[0])):
        if len(match.group(1)) > _NUMBER_DIGITS:
            return _help(
                f"{_quoted(rest[0])} is not an incident number: give the number of the alert"
            )
        number = int(match.group(1))
        rest = rest[1:]
    if name == "ack":
        if rest:
            return _help(f"ack takes an incident number at most, not {_quoted(' '.join(rest))}")
        return Command("ack", number)
    if not rest:
        return _help("silence needs a duration, e.g. silence 2h")
    if len(rest) > 1:
        return _help(f"silence takes one duration, not {_quoted(' '.join(rest))}")
    if rest[0].isdigit():  # "silence 42 30": a duration needs its unit
        return _help(f"{_quoted(rest[0])} has no unit: write e.g. 30m or 2h")
    try:
        duration = parse_duration(rest[0].lower())
    except ValueError as exc:
        if "100 years" not in str(exc):
            return _help(f"{_quoted(rest[0])} is not a duration: write e.g. 30m, 2h or 1d")
        duration = math.inf  # a duration all the same: the relay's silence_max answers it
    if duration <= 0:
        return _help("a silence must last longer than zero")
    return Command("silence", number, duration)


def help_text(problem: str | None = None) -> str:
    """The commands, one a line (after what was not understood, if anything)."""
    lines = [f"Not understood: {problem}.", ""] if problem else []
    lines.append("Commands (@-mention the robot):")
    lines += [f"- {form}: {what}" for form, what in COMMANDS]
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``7200`` → ``2h``, ``5400`` → ``1h30m``, ``90`` → ``1m30s``."""
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"
