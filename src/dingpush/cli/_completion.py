"""``dingpush completion SHELL``: the shell completion script, completing target names too."""

from __future__ import annotations

import click

_INSTALL = {
    "bash": 'eval "$(dingpush completion bash)"          # in ~/.bashrc',
    "zsh": 'eval "$(dingpush completion zsh)"           # in ~/.zshrc',
    "fish": "dingpush completion fish > ~/.config/fish/completions/dingpush.fish",
}

_HELP = """Print the shell completion script for bash, zsh or fish.

\b
Install it:
  bash:  eval "$(dingpush completion bash)"      (in ~/.bashrc)
  zsh:   eval "$(dingpush completion zsh)"       (in ~/.zshrc)
  fish:  dingpush completion fish > ~/.config/fish/completions/dingpush.fish

Commands, options and the target names of your configuration (--to) complete.
"""


@click.command("completion", help=_HELP, short_help="Print the shell completion script.")
@click.argument("shell", type=click.Choice(sorted(_INSTALL)))
def completion(shell: str) -> None:
    from click.shell_completion import get_completion_class

    from ._app import cli

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "dingpush", "_DINGPUSH_COMPLETE").source())
