"""``dingpush migrate``: move another tool's configuration to dingpush.

``dingpush migrate pwd config.yml`` converts prometheus-webhook-dingtalk's YAML (its targets'
url, secret, mentions and message templates) into dingpush TOML: a robot target and a route
per target. Tokens and secrets are written as ``${VAR}`` references; their values go to
``--env-file`` (mode 0600) and are never printed.
"""

from __future__ import annotations

import os
import pathlib

import click

from dingpush import ConfigError

_PWD_HELP = """Convert prometheus-webhook-dingtalk's config.yml into dingpush TOML.

\b
Each target becomes a robot target and a route of the same name: point Alertmanager's
webhook at http://RELAY/dingtalk/NAME/send (the same path) or /alertmanager/NAME.
Tokens and secrets become ${VARIABLES}; --env-file writes their values (mode 0600),
otherwise the variables to set are listed. Nothing secret is printed.

\b
Custom Go templates cannot be converted: the routes use dingpush's builtin alertmanager
template, which is shown (--quiet leaves it out).

\b
Examples:
  dingpush migrate pwd config.yml > dingpush.toml
  dingpush migrate pwd config.yml -o dingpush.toml --env-file relay.env
"""


@click.group(short_help="Convert another tool's configuration to dingpush's.")
def migrate() -> None:
    """Convert another tool's configuration to dingpush's."""


@migrate.command(
    "pwd", help=_PWD_HELP, short_help="prometheus-webhook-dingtalk's config.yml to TOML."
)
@click.argument(
    "source",
    metavar="CONFIG_YML",
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Write the TOML here instead of to stdout (refuses to overwrite).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Write the tokens and secrets here as VAR=value lines (mode 0600).",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not show the replacing template.")
def pwd(
    source: pathlib.Path, output: pathlib.Path | None, env_file: pathlib.Path | None, quiet: bool
) -> None:
    from dingpush.alerts._migrate import convert_pwd_config

    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from None
    migration = convert_pwd_config(text, source=source.name)
    if output is not None:
        _write_new(output, migration.toml, private=False)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(migration.toml, nl=False)
    if migration.env:
        names = ", ".join(migration.env)
        if env_file is not None:
            lines = "".join(f"{name}={value}\n" for name, value in migration.env.items())
            _write_new(env_file, lines, private=True)
            click.echo(
                f"wrote {len(migration.env)} secret(s) to {env_file} (mode 0600): {names}", err=True
            )
        else:
            click.echo(
                f"set these variables (their values are in {source.name}, or pass --env-file): "
                f"{names}",
                err=True,
            )
    for note in migration.notes:
        click.echo(f"note: {note}", err=True)
    if migration.replaced_templates and not quiet:
        _show_builtin()


def _write_new(path: pathlib.Path, text: str, *, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        descriptor = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; choose another file or remove it") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _show_builtin() -> None:
    from importlib import resources

    template = resources.files("dingpush.alerts") / "templates" / "alertmanager.md.j2"
    click.echo(
        "\nThe builtin template that replaces the custom ones (Jinja2; copy it into "
        "[templates.NAME] to change it, see docs/alerts.md):\n",
        err=True,
    )
    for line in template.read_text(encoding="utf-8").splitlines():
        click.echo(f"    {line}", err=True)
