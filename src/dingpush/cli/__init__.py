"""The ``dingpush`` command line (behind the ``cli`` extra)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dingpush`` console script."""
    # httpx imports its own command line (click, Rich, Pygments: a third of a send's start-up)
    # whenever they are installed, and falls back quietly when that import fails. This process
    # never runs httpx's command line, so it is skipped.
    if "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        from ._app import main as run
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        sys.stderr.write(
            f"dingpush: the command line needs {exc.name or 'a package'}, which is not "
            "installed.\nInstall it with:  pip install 'dingpush[cli]'\n"
        )
        return 3
    return run(argv)
