"""The options of the commands that have two entry points, declared once for both.

``dingpush emulator`` (click) and ``python -m dingpush.emulator`` (argparse, for installs
without the CLI) are one command, as are ``dingpush serve`` and ``python -m dingpush.relay``.
Their options are declared here as data; :func:`add_arguments` turns a declaration into
argparse arguments and ``dingpush.cli`` turns the same one into click options, so the two entry
points take the same options, with the same defaults, help and checks. Neither parser fills in
defaults: :func:`option_values` does, after what the configuration file says (an option given
on the command line wins; a repeatable one adds to the file's), and hands the same values (a
``dict`` of ``dest`` → value, tuples for repeatable options) to one function.

Standard library only: the declarations load without click or the server libraries, so the
CLI's ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dingpush import Rate, parse_duration

__all__ = [
    "CONFIG_OPTION",
    "EMULATOR_OPTIONS",
    "SERVE_OPTIONS",
    "VERBOSE_OPTION",
    "Option",
    "add_arguments",
    "option_values",
    "port_number",
]


@dataclass(frozen=True, slots=True)
class Option:
    """One command-line option.

    Args:
        flags: ``("--port",)`` or ``("-v", "--verbose")``.
        dest: The name of its value.
        help: One sentence; the default is added to it where it helps.
        metavar: How the value is shown in the help.
        default: The value when the option is not given; text goes through ``convert``.
        convert: Reads the text (``Rate.parse``, ``parse_duration``…); a ``ValueError`` is a
            usage error that names the option (exit status 2).
        multiple: Repeatable; the value is a tuple.
        flag: A switch without a value (``-v``): ``True`` when given.
    """

    flags: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None = None
    default: typing.Any = None
    convert: Callable[[str], typing.Any] | None = None
    multiple: bool = False
    flag: bool = False

    @property
    def help_text(self) -> str:
        """The help with its default, as both entry points print it."""
        if self.default is None or self.multiple or self.flag:
            return self.help
        text = self.help.removesuffix(".")
        return f"{text} (default: {self.default})" + ("." if text != self.help else "")


def port_number(text: str) -> int:
    """Read a TCP port (0 picks a free one)."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number: give 0-65535 (0 picks a free one)")
    return int(text)


def _rate_errcode(text: str) -> int:
    if text.strip() not in ("130101", "410100"):
        raise ValueError(f"{text!r} is not a throttle errcode: give 130101 or 410100")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Declare ``options`` on an argparse parser (read them back with :func:`option_values`)."""
    for option in options:
        if option.flag:  # None when not given: option_values() applies the default
            parser.add_argument(
                *option.flags,
                dest=option.dest,
                action="store_true",
                default=None,
                help=option.help_text,
            )
            continue
        kwargs: dict[str, typing.Any] = {
            "dest": option.dest,
            "help": option.help_text,
            "metavar": option.metavar,
        }
        if option.convert is not None:
            kwargs["type"] = _argparse_type(option)
        if option.multiple:
            kwargs["action"] = "append"
        parser.add_argument(*option.flags, **kwargs)


def _argparse_type(option: Option) -> Callable[[str], typing.Any]:
    convert = option.convert
    assert convert is not None

    def read(text: str) -> typing.Any:
        try:
            return convert(text)
        except ValueError as exc:  # argparse shows only this exception's text
            raise argparse.ArgumentTypeError(str(exc)) from None

    read.__name__ = option.metavar or option.dest  # argparse names the type in some errors
    return read


def option_values(
    parsed: Mapping[str, typing.Any],
    options: Sequence[Option],
    settings: Mapping[str, typing.Any] | None = None,
) -> dict[str, typing.Any]:
    """The values of ``options``: given on the command line, else in ``settings``, else default.

    ``parsed`` is argparse's namespace (as a dict) or click's parameters; ``settings`` what a
    configuration file says, by ``dest``. A repeatable option's values add to the file's.
    """
    settings = settings or {}
    values: dict[str, typing.Any] = {}
    for option in options:
        given = parsed.get(option.dest)
        if option.multiple:
            values[option.dest] = (*settings.get(option.dest, ()), *(given or ()))
        elif given is not None:
            values[option.dest] = given
        elif option.dest in settings:
            values[option.dest] = settings[option.dest]
        elif option.default is not None and option.convert is not None:
            values[option.dest] = option.convert(option.default)
        else:
            values[option.dest] = option.default
    return values


#: ``--config``: ``dingpush``'s global option, and ``python -m dingpush.relay``'s.
CONFIG_OPTION = Option(
    ("--config",),
    "config",
    "The configuration file (default: $DINGPUSH_CONFIG, ./dingpush.toml, "
    "~/.config/dingpush/config.toml).",
    metavar="PATH",
)

#: ``-v``: ``dingpush``'s global switch, and the ``python -m`` entry points' (for
#: :func:`dingpush.serving.command_log_lines`).
VERBOSE_OPTION = Option(
    ("-v", "--verbose"),
    "verbose",
    "Print details (configuration, requests, DingTalk's answers); never secrets.",
    default=False,
    flag=True,
)

#: ``dingpush serve`` and ``python -m dingpush.relay`` (which adds ``--config``).
SERVE_OPTIONS: tuple[Option, ...] = (
    Option(
        ("--host",),
        "host",
        "Address to listen on (default: [relay] host, else 127.0.0.1).",
        metavar="HOST",
    ),
    Option(
        ("--port",),
        "port",
        "Port (default: [relay] port, else 8080); 0 picks a free one.",
        metavar="PORT",
        convert=port_number,
    ),
    Option(
        ("--directory",),
        "directory",
        "Where the embedded defaults (no configuration file) keep their outbox file.",
        metavar="DIR",
        default=".",
    ),
    Option(
        ("--store",),
        "store",
        "The outbox instead of [relay] store: a file, or postgresql://… to run as one "
        "instance of a fleet sharing that database.",
        metavar="PATH|URL",
    ),
)

#: ``dingpush emulator`` and ``python -m dingpush.emulator``.
EMULATOR_OPTIONS: tuple[Option, ...] = (
    Option(("--host",), "host", "Address to listen on.", metavar="HOST", default="127.0.0.1"),
    Option(
        ("--port",),
        "port",
        "Port; 0 picks a free one.",
        metavar="PORT",
        default="8765",
        convert=port_number,
    ),
    Option(
        ("--robot",),
        "robots",
        "A robot to create (repeatable): a missing token is NAME-token, a SECRET turns on "
        "加签, KEYWORDs (comma-separated) are this robot's custom keywords. "
        "Default: sandbox:sandbox-token.",
        metavar="NAME[:TOKEN[:SECRET[:KEYWORD,…]]]",
        multiple=True,
    ),
    Option(
        ("--keyword",),
        "keywords",
        "A custom keyword every robot requires (repeatable).",
        metavar="WORD",
        multiple=True,
    ),
    Option(
        ("--ip",),
        "ips",
        "An IPv4 address or CIDR range every robot accepts (repeatable; default: any).",
        metavar="IP[/BITS]",
        multiple=True,
    ),
    Option(
        ("--rate",),
        "rate",
        "Messages per period per robot, e.g. 20/60s, 20/min, 100/1s.",
        metavar="COUNT/PERIOD",
        default="20/60s",
        convert=Rate.parse,
    ),
    Option(
        ("--lockout",),
        "lockout",
        "How long a throttled robot stays locked: seconds, or e.g. 10m, 30s.",
        metavar="DURATION",
        default="600",
        convert=parse_duration,
    ),
    Option(
        ("--rate-errcode",),
        "rate_errcode",
        "The errcode of a throttled send: 130101 (observed) or 410100 (documented).",
        metavar="ERRCODE",
        default="130101",
        convert=_rate_errcode,
    ),
    Option(
        ("--app",),
        "apps",
        "An enterprise app to create (repeatable); missing credentials are generated.",
        metavar="NAME[:APPKEY[:APPSECRET]]",
        multiple=True,
    ),
    Option(("--app-user",), "app_users", "A user of every app.", metavar="USERID", multiple=True),
    Option(("--app-group",), "app_groups", "A group of every app.", metavar="TITLE", multiple=True),
)
