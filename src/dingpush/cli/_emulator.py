"""``dingpush emulator``: a local DingTalk with robots and enterprise apps."""

from __future__ import annotations

import typing

import click

from dingpush import mask

if typing.TYPE_CHECKING:
    from dingpush.emulator import AppConfig


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


@click.command()
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
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="NAME[:APPKEY[:APPSECRET]]",
    help="An enterprise app to create (repeatable); missing credentials are generated.",
)
@click.option(
    "--app-user", "app_users", multiple=True, metavar="USERID", help="A user of every app."
)
@click.option(
    "--app-group", "app_groups", multiple=True, metavar="TITLE", help="A group of every app."
)
def emulator(
    host: str,
    port: int,
    robots: tuple[str, ...],
    keywords: tuple[str, ...],
    rate: str,
    lockout: float,
    apps: tuple[str, ...],
    app_users: tuple[str, ...],
    app_groups: tuple[str, ...],
) -> None:
    """Run a local DingTalk emulator (robot webhooks, app APIs and its /_emulator API)."""
    from dingpush.emulator import Emulator, RobotConfig, parse_app_spec, serve
    from dingpush.emulator._banner import client_hints

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

    app_configs = [parse_app_spec(spec, users=app_users, groups=app_groups) for spec in apps]

    def ready(url: str) -> None:
        click.echo(f"DingTalk emulator listening on {url}")
        for config in configs:
            signed = " (signed)" if config.secret else ""
            click.echo(
                f"  robot {config.name}{signed}: {url}/robot/send?access_token={config.token}"
            )
        for spec, app in zip(apps, app_configs, strict=True):
            click.echo(_describe_app(app, given=bool(spec.split(":", 2)[2:])))
        for line in client_hints(url, configs, app_configs):
            click.echo(line)

    serve(host, port, ready=ready, emulator=Emulator(robots=configs, apps=app_configs))


def _describe_app(app: AppConfig, *, given: bool) -> str:
    # A secret typed on the command line is known to the user and stays masked; a generated
    # one is a local sandbox credential the user could not learn otherwise.
    secret = mask(app.app_secret) if given else app.app_secret
    groups = ", ".join(f"{cid} ({title})" for cid, title in app.groups.items()) or "none"
    return (
        f"  app {app.name}: AppKey={app.app_key} AppSecret={secret} AgentId={app.agent_id}"
        f"\n    groups: {groups}"
    )
