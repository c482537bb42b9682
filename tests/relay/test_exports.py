"""The store layer's public names, and what importing it loads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dingpush.relay.stores as stores
from dingpush import DingPushError


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(stores).items()
        if not name.startswith("_") and getattr(value, "__module__", "") == stores.__name__
    }
    assert stores.__all__ == sorted(stores.__all__)
    assert public <= set(stores.__all__)
    assert stores.SQLiteStore.__module__ == "dingpush.relay.stores"


def test_store_errors_are_dingpush_errors() -> None:
    for name in ("StoreError", "StoreUnavailable", "MessageNotFound", "LeaseLost"):
        assert issubclass(getattr(stores, name), DingPushError)
    assert stores.StoreUnavailable.transient and not stores.MessageNotFound.transient


def test_the_store_layer_needs_the_standard_library_only() -> None:
    code = textwrap.dedent(
        """
        import sys
        import dingpush.relay.stores
        banned = ("starlette", "uvicorn", "jinja2", "rich", "click", "psycopg", "httpx",
                  "dingpush.emulator", "dingpush.cli")
        print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in banned
                              or any(m.startswith(b + ".") or m == b for b in banned))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
