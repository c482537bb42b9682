"""Options every command takes, and shell completion of target names."""

from __future__ import annotations

import typing

import click
from click.shell_completion import CompletionItem

from ._state import State

F = typing.TypeVar("F", bound=typing.Callable[..., typing.Any])


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(State).config_path = value


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).enable_verbose(ctx)


def common_options(function: F) -> F:
    """``--config`` and ``--verbose``, accepted before or after the command name."""
    function = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_set_verbose,
        help="Print details (configuration, requests, DingTalk's answers); never secrets.",
    )(function)
    return click.option(
        "--config",
        metavar="PATH",
        expose_value=False,
        is_eager=True,
        callback=_set_config,
        help="The configuration file (default: $DINGPUSH_CONFIG, ./dingpush.toml, "
        "~/.config/dingpush/config.toml).",
    )(function)


def complete_targets(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Complete ``--to`` with the configured target names (silently none on a bad config)."""
    from dingpush.config import load_config

    state = ctx.find_object(State)
    try:
        config = load_config(state.config_path if state else None)
    except Exception:  # completion must never print a traceback into the shell
        return []
    items = [
        CompletionItem(name, help=f"{target.kind}: {target.description or target.destination}")
        for name, target in sorted(config.targets.items())
        if name.startswith(incomplete)
    ]
    items += [
        CompletionItem(f"app:{name}/", help="an app target: group/CID, users/IDS, notice/AGENT")
        for name in sorted(config.apps)
        if f"app:{name}/".startswith(incomplete)
    ]
    return items
