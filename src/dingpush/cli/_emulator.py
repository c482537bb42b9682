"""``dingpush emulator``: a local DingTalk with robots and enterprise apps.

The same command as ``python -m dingpush.emulator``: both read the options declared in
``dingpush.config.EMULATOR_OPTIONS`` and serve what ``EmulatorCommand`` builds from them.
"""

from __future__ import annotations

import typing

import click

from dingpush.config import EMULATOR_OPTIONS, option_values

from ._options import click_options


@click.command()
@click_options(EMULATOR_OPTIONS)
def emulator(**values: typing.Any) -> None:
    """Run a local DingTalk emulator (robot webhooks, app APIs and its /_emulator API)."""
    from dingpush.emulator import EmulatorCommand

    try:
        command = EmulatorCommand.from_options(option_values(values, EMULATOR_OPTIONS))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    command.run(click.echo)
