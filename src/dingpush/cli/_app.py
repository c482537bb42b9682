"""The click application: commands, and the mapping of dingpush's exceptions to exit codes.

Exit status: 0 success, 1 any other dingpush error, 2 usage or an invalid message,
3 configuration (and credentials DingTalk refused), 4 refused by DingTalk, 5 rate limited,
6 transport (network, timeout, a reply that is not DingTalk's), 130 interrupted.
Every command module imports only click and the light parts of dingpush: ``send --dry-run``
must start fast, so httpx, rich and the emulator's server are imported where they are used.
"""

from __future__ import annotations

import sys
import typing

import click

from dingpush.__version__ import __version__
from dingpush._errors import DingPushError

from ._common import common_options
from ._state import State


class DingPushGroup(click.Group):
    """A group that prints a dingpush error in one line and exits with its class's status."""

    def invoke(self, ctx: click.Context) -> typing.Any:
        state = ctx.ensure_object(State)
        try:
            return super().invoke(ctx)
        except DingPushError as exc:
            state.report(exc)
            raise click.exceptions.Exit(exc.exit_code) from None


@click.group(cls=DingPushGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dingpush")
@common_options
def cli() -> None:
    """Push messages into DingTalk groups and to DingTalk users.

    \b
    Exit status: 0 sent, 2 usage or invalid message, 3 configuration,
    4 refused by DingTalk, 5 rate limited, 6 network/transport, 1 other.
    """


def _register() -> None:
    from ._apps import token, upload
    from ._check import check
    from ._completion import completion
    from ._emulator import emulator
    from ._inspect import config_group, targets
    from ._send import send

    for command in (send, targets, check, upload, token, config_group, completion, emulator):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every failure into a one-line message and its exit code."""
    try:
        result = cli.main(args=argv, prog_name="dingpush", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except DingPushError as exc:
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
