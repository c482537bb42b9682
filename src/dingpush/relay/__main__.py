"""``python -m dingpush.relay``: the same as ``dingpush serve``, without click."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dingpush import DingPushError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dingpush.relay",
        description="Serve the dingpush relay; with no configuration, the embedded sandbox.",
    )
    parser.add_argument("--config", help="a dingpush TOML configuration with [relay]")
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--directory", default=".", help="where the embedded outbox file goes")
    args = parser.parse_args(argv)
    from ._cli import run

    try:
        return run(config=args.config, host=args.host, port=args.port, directory=args.directory)
    except DingPushError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
