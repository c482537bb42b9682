"""``python -m dingpush.relay``: ``dingpush serve`` without click.

The same command: the options are declared once (``dingpush.config.SERVE_OPTIONS``, plus
``--config`` and ``-v``, which ``dingpush`` takes as global options) and both call
:func:`._cli.run`; the library's log is printed as ``dingpush`` prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dingpush import DingPushError
from dingpush.config import (
    CONFIG_OPTION,
    SERVE_OPTIONS,
    VERBOSE_OPTION,
    add_arguments,
    option_values,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dingpush.relay",
        description="Run the relay: accept messages durably, deliver them at DingTalk's pace; "
        "with no configuration, the embedded sandbox.",
    )
    options = (CONFIG_OPTION, VERBOSE_OPTION, *SERVE_OPTIONS)
    add_arguments(parser, options)
    values = option_values(vars(parser.parse_args(argv)), options)
    from dingpush.serving import command_log_lines

    from ._cli import run

    try:
        with command_log_lines(verbose=values.pop("verbose")):  # as `dingpush serve` prints
            return run(**values)
    except DingPushError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
