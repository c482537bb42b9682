"""The chat command parser: what people type after ``@robot`` (pure, no I/O)."""

from __future__ import annotations

import pytest

from dingpush.relay._commands import Command, format_duration, help_text, parse_command


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("ack", Command("ack")),
        (" ack ", Command("ack")),
        ("ACK", Command("ack")),
        ("ack 42", Command("ack", 42)),
        ("ack #42", Command("ack", 42)),
        ("acknowledge 7", Command("ack", 7)),
        ("@robot ack 42", Command("ack", 42)),
        ("silence 2h", Command("silence", None, 7200.0)),
        ("silence 42 30m", Command("silence", 42, 1800.0)),
        ("silence #42 1d", Command("silence", 42, 86400.0)),
        ("silence 1.5h", Command("silence", None, 5400.0)),
        ("status", Command("status")),
        ("help", Command("help")),
        ("\u3000status", Command("status")),
    ],
)
def test_commands_are_read(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the message is empty"),
        ("hello there", "'hello' is not a command"),
        ("ack please", "ack takes an incident number at most"),
        ("silence", "silence needs a duration"),
        ("silence 42", "silence needs a duration"),
        ("silence 42 30", "'30' has no unit"),
        ("silence forever", "'forever' is not a duration"),
        ("silence 0s", "longer than zero"),
        ("silence 2h 3h", "silence takes one duration"),
        ("status now", "status takes nothing after it"),
        # Longer than any incident number: said so, not "ack takes a number at most".
        ("ack 999999999999999999999", "'999999999999999999999' is not an incident number"),
        ("silence #9999999999 2h", "'#9999999999' is not an incident number"),
    ],
)
def test_anything_else_answers_help_saying_what_was_not_understood(text: str, problem: str) -> None:
    command = parse_command(text)
    assert command.name == "help"
    assert command.problem is not None and problem in command.problem


@pytest.mark.parametrize(
    "text", ["ack " + "x " * 5000, "silence 1h " + "y" * 5000, "z" * 5000, "silence " + "q" * 5000]
)
def test_what_was_not_understood_is_quoted_short(text: str) -> None:
    # A long message was echoed whole in the answer (10 KB for "ack x x x …").
    problem = parse_command(text).problem
    assert problem is not None and len(problem) < 120 and "…" in problem


def test_help_lists_every_command() -> None:
    text = help_text()
    for word in ("ack [N]", "silence [N] DURATION", "status", "help"):
        assert word in text
    assert help_text("'x' is not a command").startswith("Not understood: 'x' is not a command.")


@pytest.mark.parametrize(
    ("seconds", "text"), [(7200, "2h"), (5400, "1h30m"), (90, "1m30s"), (86400, "1d"), (0, "0s")]
)
def test_durations_are_shown_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
