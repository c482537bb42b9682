"""click options from the declarations in :mod:`dingpush.config` that argparse also reads.

``dingpush emulator`` / ``python -m dingpush.emulator`` and ``dingpush serve`` /
``python -m dingpush.relay`` are each one command with two entry points: the options are
declared once (``EMULATOR_OPTIONS``, ``SERVE_OPTIONS``) and this turns them into click's.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence

import click

if typing.TYPE_CHECKING:
    from dingpush.config import Option

F = typing.TypeVar("F", bound=typing.Callable[..., typing.Any])


class _Converted(click.ParamType[typing.Any]):
    """A declared option's ``convert``; its ``ValueError`` is a usage error naming the option."""

    def __init__(self, option: Option) -> None:
        self.option = option
        self.name = option.metavar or option.dest

    def convert(
        self, value: typing.Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> typing.Any:
        if not isinstance(value, str):
            return value
        assert self.option.convert is not None
        try:
            return self.option.convert(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def click_options(options: Sequence[Option]) -> Callable[[F], F]:
    """Decorate a click command with ``options``, in their declared order."""

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = click.option(
                *option.flags,
                option.dest,
                multiple=option.multiple,
                default=() if option.multiple else None,  # option_values() applies defaults
                type=_Converted(option) if option.convert is not None else None,
                metavar=option.metavar,
                help=option.help_text,
            )(function)
        return function

    return decorate
