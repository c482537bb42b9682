"""The ``dingpush`` command line (behind the ``cli`` extra)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dingpush`` console script."""
    try:
        from ._app import main as run
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        sys.stderr.write(
            f"dingpush: the command line needs {exc.name or 'a package'}, which is not "
            "installed.\nInstall it with:  pip install 'dingpush[cli]'\n"
        )
        return 3
    return run(argv)
