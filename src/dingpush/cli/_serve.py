"""``dingpush serve``: the relay, a durable outbox delivering at DingTalk's pace."""

from __future__ import annotations

import click

from ._common import common_options
from ._state import State


@click.command()
@click.option(
    "--host", default=None, help="Address to listen on (default: [relay] host, else 127.0.0.1)."
)
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port (default: [relay] port, else 8080); 0 picks a free one.",
)
@click.option(
    "--directory",
    default=".",
    show_default=True,
    help="Where the embedded defaults keep their outbox file (no configuration file).",
)
@common_options
@click.pass_obj
def serve(state: State, host: str | None, port: int | None, directory: str) -> None:
    """Run the relay: accept messages durably, deliver them at DingTalk's pace (docs/relay.md).

    The targets and [relay] come from the configuration file. With none, it runs on embedded
    defaults: an SQLite outbox in the working directory and the emulator, in the same process,
    playing DingTalk for a sandbox robot.
    """
    from dingpush.relay._cli import run

    run(config=state.config_path, host=host, port=port, directory=directory, echo=click.echo)
