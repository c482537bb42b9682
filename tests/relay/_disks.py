"""Real conditions that stop an outbox from committing: a full file system, an immutable file.

Both need root (``mount``, ``chattr``); where they cannot be had, the helpers say so and the
tests fall back to SQLite's ``max_page_count`` (``SQLiteStore(max_size=…)``), which fails a
commit the same way a full disk does.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator


def _run(*args: str) -> bool:
    if os.geteuid() != 0 or shutil.which(args[0]) is None:
        return False
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


@contextlib.contextmanager
def small_filesystem(size: str = "2m") -> Iterator[pathlib.Path | None]:
    """A tmpfs of ``size`` of its own, or None where one cannot be mounted (not root)."""
    directory = tempfile.mkdtemp(prefix="dingpush-full-")
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", directory):
        os.rmdir(directory)
        yield None
        return
    try:
        yield pathlib.Path(directory)
    finally:
        _run("umount", "-l", directory)
        os.rmdir(directory)


def fill(directory: pathlib.Path) -> pathlib.Path:
    """Fill the file system of ``directory`` to the last block; remove the file to free it."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as handle:
        block = b"\0" * 4096
        while True:
            handle.write(block)
            handle.flush()
    return filler


@contextlib.contextmanager
def immutable(path: pathlib.Path) -> Iterator[bool]:
    """``chattr +i`` on ``path`` for the block; yields False where that is not possible.

    Never use it on an SQLite ``-shm`` file: SQLite maps it into memory, and a write to an
    immutable mapping kills the process with SIGBUS.
    """
    done = _run("chattr", "+i", str(path))
    try:
        yield done
    finally:
        if done:
            _run("chattr", "-i", str(path))
