"""``python -m dingpush.emulator``: serve a local DingTalk with a few robots, no click needed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._app import serve
from ._config import EmulatorOptions, RobotConfig, parse_rate, parse_robot_spec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dingpush.emulator",
        description="Serve a local DingTalk emulator (custom-robot webhook and control API).",
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
    return parser


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
    except ValueError as exc:
        parser.error(str(exc))
    options = EmulatorOptions(rate_limit_errcode=args.rate_errcode)

    def ready(url: str) -> None:
        # The webhook URLs carry the tokens on purpose: they are this local emulator's own
        # credentials and the user needs them to send. Secrets are never printed.
        lines = [f"DingTalk emulator serving on {url}"]
        lines += [f"  {r.name}: {r.webhook_url(url)}" for r in robots]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()

    try:
        serve(args.host, args.port, robots, options, ready)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
