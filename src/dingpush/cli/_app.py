"""The click application: commands, and the mapping of dingpush's exceptions to exit codes."""

from __future__ import annotations

import sys
import typing

import click

from dingpush import DingPushError
from dingpush.__version__ import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dingpush")
def cli() -> None:
    """Push messages into DingTalk groups and to DingTalk users."""


def _parse_robot(spec: str) -> dict[str, typing.Any]:
    name, _, rest = spec.partition(":")
    token, _, secret = rest.partition(":")
    if not name:
        raise click.BadParameter(f"{spec!r}: give NAME[:TOKEN[:SECRET]]", param_hint="--robot")
    return {"name": name, "token": token or f"{name}-token", "secret": secret or None}


def _parse_rate(value: str) -> tuple[int, float]:
    count, _, window = value.partition("/")
    try:
        return int(count), float(window.rstrip("s") or "60")
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: write COUNT/SECONDS, e.g. 20/60s", param_hint="--rate"
        ) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--robot",
    "robots",
    multiple=True,
    metavar="NAME[:TOKEN[:SECRET]]",
    help="A robot to create (repeatable). Default: sandbox:sandbox-token.",
)
@click.option("--keyword", "keywords", multiple=True, help="A custom keyword every robot requires.")
@click.option("--rate", default="20/60s", show_default=True, help="Messages per window per robot.")
@click.option(
    "--lockout", default=600.0, show_default=True, help="Seconds a throttled robot stays locked."
)
def emulator(
    host: str,
    port: int,
    robots: tuple[str, ...],
    keywords: tuple[str, ...],
    rate: str,
    lockout: float,
) -> None:
    """Run a local DingTalk emulator (robot webhooks and its /_emulator API)."""
    from dingpush.emulator import RobotConfig, serve

    limit, window = _parse_rate(rate)
    configs = [
        RobotConfig(
            **_parse_robot(spec),
            keywords=keywords,
            rate_limit=limit,
            rate_window=window,
            lockout=lockout,
        )
        for spec in robots or ("sandbox:sandbox-token",)
    ]

    def ready(url: str) -> None:
        click.echo(f"DingTalk emulator listening on {url}")
        for config in configs:
            signed = " (signed)" if config.secret else ""
            click.echo(
                f"  robot {config.name}{signed}: {url}/robot/send?access_token={config.token}"
            )
        click.echo(f"  messages: {url}/_emulator/messages   requests: {url}/_emulator/requests")

    serve(host, port, configs, ready=ready)


@cli.command()
@click.option("--config", "config", help="A TOML configuration with [targets.NAME] and [relay].")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080); 0 picks a free one.")
@click.option(
    "--directory", default=".", show_default=True, help="Where the embedded outbox file goes."
)
def serve(config: str | None, host: str | None, port: int | None, directory: str) -> None:
    """Run the relay: a durable outbox delivering at DingTalk's pace (docs/relay.md).

    With no configuration it runs on embedded defaults: an SQLite outbox in the working
    directory and the emulator, in the same process, playing DingTalk for a sandbox robot.
    """
    from dingpush.relay._cli import run

    run(config=config, host=host, port=port, directory=directory, echo=click.echo)


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
