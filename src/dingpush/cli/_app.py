"""The click application: commands, and the mapping of dingpush's exceptions to exit codes.

Exit status: 0 success, 1 any other dingpush error, 2 usage or an invalid message,
3 configuration (and credentials DingTalk refused), 4 refused by DingTalk, 5 rate limited,
6 transport (network, timeout, a reply that is not DingTalk's), 130 interrupted.
Every command module imports only click and the light parts of dingpush: ``send --dry-run``
must start fast, so httpx, rich and the emulator's server are imported where they are used.
"""

from __future__ import annotations

import logging
import sys
import typing

import click

from dingpush import DingPushError, __version__

from ._common import common_options
from ._state import State, exit_status

#: Each command's module, imported only when the command runs (or ``--help`` lists it), so
#: that ``dingpush send`` does not pay for ``check``, ``targets`` or the emulator.
COMMANDS = {
    "send": "._send:send",
    "targets": "._inspect:targets",
    "check": "._check:check",
    "upload": "._apps:upload",
    "token": "._apps:token",
    "config": "._inspect:config_group",
    "completion": "._completion:completion",
    "emulator": "._emulator:emulator",
    "serve": "._serve:serve",
    "preview": "._preview:preview",
    "migrate": "._migrate:migrate",
    "retry": "._retry:retry",
    "alert": "._alert:alert",
    "recall": "._oncall:recall",
    "read-status": "._oncall:read_status",
    "ding": "._oncall:ding",
    "listen": "._oncall:listen",
    "outbox": "._outbox:outbox",
}


class DingPushGroup(click.Group):
    """A group that prints a dingpush error in one line and exits with its class's status,
    and loads each command's module when it is first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, _, name = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module, __package__), name)
        assert isinstance(command, click.Command)
        self.add_command(command, cmd_name)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["dingpush.args"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> typing.Any:
        state = ctx.ensure_object(State)
        state.capture_logs(ctx, "dingpush", logging.DEBUG)
        try:
            return super().invoke(ctx)
        except DingPushError as exc:
            state.report(exc)
            raise click.exceptions.Exit(exit_status(exc)) from None
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc, ctx.invoked_subcommand)
            if extra is None:
                raise
            raise click.ClickException(
                f"dingpush {ctx.invoked_subcommand} needs {exc.name}, which the 'cli' extra does "
                f"not install: pip install 'dingpush[{extra}]'"
            ) from None
        except click.UsageError as exc:
            if not wants_json(ctx.meta.get("dingpush.args", [])):
                raise
            # docs/cli.md: with --json, every error is a JSON document on stdout, usage too.
            state.json({"ok": False, "error": usage_json(exc)})
            raise click.exceptions.Exit(exc.exit_code) from None


#: The packages of the servers, which ``pip install 'dingpush[cli]'`` leaves out.
SERVER_PACKAGES = frozenset({"starlette", "uvicorn", "jinja2", "markupsafe", "anyio"})


def missing_extra(exc: ModuleNotFoundError, command: str | None) -> str | None:
    """The extra that installs the server package a command missed (``None``: not ours)."""
    if (exc.name or "").partition(".")[0] not in SERVER_PACKAGES:
        return None
    return "relay" if command in ("serve", "retry") else "emulator"


def wants_json(args: list[str]) -> bool:
    """Whether the command line asked for ``--json`` (before a ``--`` that ends options)."""
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


def usage_json(exc: click.UsageError) -> dict[str, object]:
    """The ``--json`` form of a usage error, shaped as the other errors are."""
    data: dict[str, object] = {
        "type": "UsageError",
        "message": exc.format_message(),
        "exit_code": exc.exit_code,
        "transient": False,
    }
    if exc.ctx is not None:
        data["usage"] = exc.ctx.get_usage()
    return data


@click.group(cls=DingPushGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dingpush")
@common_options
def cli() -> None:
    """Push messages into DingTalk groups and to DingTalk users.

    \b
    Exit status: 0 sent, 2 usage or invalid message, 3 configuration,
    4 refused by DingTalk, 5 rate limited, 6 network/transport, 1 other.
    """


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
