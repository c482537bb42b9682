"""``python -m dingpush.emulator``: ``dingpush emulator`` for installs without the CLI's extra.

The same command: the options are declared once (``dingpush.config.EMULATOR_OPTIONS``) and
read here with argparse, there with click; both read ``[emulator]`` of the configuration file
the same way (``emulator_values``) and serve what :class:`EmulatorCommand` builds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dingpush import DingPushError
from dingpush.config import (
    CONFIG_OPTION,
    EMULATOR_OPTIONS,
    VERBOSE_OPTION,
    add_arguments,
    emulator_values,
)
from dingpush.serving import command_log_lines

from ._command import EmulatorCommand


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dingpush.emulator",
        description=(
            "Run a local DingTalk emulator (robot webhooks, app APIs and its /_emulator API)."
        ),
    )
    add_arguments(parser, (*EMULATOR_OPTIONS, CONFIG_OPTION, VERBOSE_OPTION))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C; print where it listens and each robot's webhook URL."""
    parser = _parser()
    parsed = vars(parser.parse_args(argv))
    try:
        values = emulator_values(parsed, parsed["config"])
    except DingPushError as exc:  # the configuration file's [emulator]
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    try:
        command = EmulatorCommand.from_options(values)
    except ValueError as exc:
        parser.error(str(exc))

    def echo(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        with command_log_lines(verbose=bool(parsed["verbose"])):  # as `dingpush emulator` prints
            command.run(echo)
    except DingPushError as exc:  # a port in use: say which, and the fix (no traceback)
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C, after the graceful stop: as `dingpush emulator` ends
        sys.stderr.write("Aborted.\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
