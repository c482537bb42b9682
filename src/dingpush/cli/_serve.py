"""``dingpush serve``: the relay, a durable outbox delivering at DingTalk's pace.

The same command as ``python -m dingpush.relay``: both read the options declared in
``dingpush.config.SERVE_OPTIONS`` (``--config`` is dingpush's global option here) and call the
relay's one ``run``.
"""

from __future__ import annotations

import typing

import click

from dingpush.config import SERVE_OPTIONS, option_values

from ._common import common_options
from ._options import click_options
from ._state import State


@click.command()
@click_options(SERVE_OPTIONS)
@common_options
@click.pass_obj
def serve(state: State, /, **values: typing.Any) -> None:
    """Run the relay: accept messages durably, deliver them at DingTalk's pace (docs/relay.md).

    The targets and [relay] come from the configuration file. With none, it runs on embedded
    defaults: an SQLite outbox in the working directory and the emulator, in the same process,
    playing DingTalk for a sandbox robot.
    """
    from dingpush.relay._cli import run

    run(config=state.config_path, echo=click.echo, **option_values(values, SERVE_OPTIONS))
