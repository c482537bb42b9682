"""``python -m dingpush.emulator``: serve a local DingTalk with robots and apps, no click needed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dingpush.serving import CannotListen

from ._app import serve
from ._apps import AppConfig, parse_app_spec
from ._banner import client_hints
from ._config import EmulatorOptions, RobotConfig, parse_rate, parse_robot_spec
from ._state import Emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dingpush.emulator",
        description=(
            "Serve a local DingTalk emulator (custom-robot webhook, enterprise-app APIs and "
            "the control API)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument(
        "--robot",
        action="append",
        default=[],
        metavar="NAME[:TOKEN[:SECRET]]",
        help="add a robot; a missing token is generated, a SECRET enables 加签 (repeatable)",
    )
    parser.add_argument(
        "--keyword", action="append", default=[], metavar="K", help="keyword for every robot"
    )
    parser.add_argument("--ip", action="append", default=[], help="IPv4/CIDR allowed to send")
    parser.add_argument("--rate", default="20/60s", help="rate limit per robot (default 20/60s)")
    parser.add_argument(
        "--lockout", type=float, default=600.0, help="seconds a throttled robot stays blocked"
    )
    parser.add_argument(
        "--rate-errcode",
        type=int,
        choices=(130101, 410100),
        default=130101,
        help="throttle errcode",
    )
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="NAME[:APPKEY[:APPSECRET]]",
        help="add an enterprise app; missing credentials are generated (repeatable)",
    )
    parser.add_argument(
        "--app-user", action="append", default=[], metavar="USERID", help="a user of every app"
    )
    parser.add_argument(
        "--app-group", action="append", default=[], metavar="TITLE", help="a group of every app"
    )
    return parser


def apps_from_args(args: argparse.Namespace) -> list[AppConfig]:
    """Build the apps described by the command line (none unless ``--app`` is given)."""
    return [
        parse_app_spec(spec, users=tuple(args.app_user), groups=tuple(args.app_group))
        for spec in args.app
    ]


def _describe_app(app: AppConfig) -> list[str]:
    groups = ", ".join(f"{cid} ({title})" for cid, title in app.groups.items()) or "none"
    return [
        f"  app {app.name}: AppKey={app.app_key} AppSecret={app.app_secret} AgentId={app.agent_id}",
        f"    groups: {groups}",
    ]


def robots_from_args(args: argparse.Namespace) -> list[RobotConfig]:
    """Build the robots described by the command line (``default`` when none is given)."""
    limit, window = parse_rate(args.rate)
    specs: list[str] = args.robot or ["default"]
    return [
        parse_robot_spec(
            spec,
            keywords=tuple(args.keyword),
            ip_allowlist=tuple(args.ip),
            rate_limit=limit,
            rate_window=window,
            lockout=args.lockout,
        )
        for spec in specs
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C; print the base URL and each robot's webhook URL."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        robots = robots_from_args(args)
        apps = apps_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    options = EmulatorOptions(rate_limit_errcode=args.rate_errcode)
    emulator = Emulator(options=options, robots=robots, apps=apps)

    def ready(url: str) -> None:
        # The webhook URLs carry the tokens on purpose: they are this local emulator's own
        # credentials and the user needs them to send. Secrets are never printed.
        lines = [f"DingTalk emulator serving on {url}"]
        lines += [f"  {r.name}: {r.webhook_url(url)}" for r in robots]
        for app in apps:
            lines += _describe_app(app)
        lines += client_hints(url, robots, apps)
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    try:
        serve(args.host, args.port, ready=ready, emulator=emulator)
    except KeyboardInterrupt:
        return 0
    except CannotListen as exc:  # a port in use: say which, and the fix (no traceback)
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
