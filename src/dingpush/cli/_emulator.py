"""``dingpush emulator``: a local DingTalk with robots and enterprise apps.

The same command as ``python -m dingpush.emulator``: both read the options declared in
``dingpush.config.EMULATOR_OPTIONS`` over the file's ``[emulator]`` (``emulator_values``) and
serve what ``EmulatorCommand`` builds from them.
"""

from __future__ import annotations

import typing

import click

from dingpush.config import EMULATOR_OPTIONS, emulator_values

from ._common import common_options
from ._options import click_options
from ._state import State


@click.command()
@click_options(EMULATOR_OPTIONS)
@common_options
@click.pass_obj
def emulator(state: State, /, **values: typing.Any) -> None:
    """Run a local DingTalk emulator (robot webhooks, app APIs and its /_emulator API).

    Robots, apps and settings may also come from the [emulator] table of the configuration
    file; options given here win, and --robot, --keyword, --ip and --app add to it.
    """
    from dingpush.emulator import EmulatorCommand

    try:
        command = EmulatorCommand.from_options(emulator_values(values, state.config_path))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    command.run(click.echo)
