"""The public API: a complete, sorted __all__, and library imports free of extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dingpush


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(dingpush).items()
        if not name.startswith("_") and getattr(value, "__module__", "") == "dingpush"
    }
    assert dingpush.__all__ == sorted(dingpush.__all__)
    assert public <= set(dingpush.__all__)
    for name in dingpush.__all__:
        assert hasattr(dingpush, name), name


def test_public_names_report_the_package_module() -> None:
    assert dingpush.Robot.__module__ == "dingpush"
    assert repr(dingpush.Text) == "<class 'dingpush.Text'>"


def test_import_loads_the_library_alone() -> None:
    # httpx itself imports click when it is installed (for its own CLI), so click is not listed.
    code = textwrap.dedent(
        """
        import sys
        import dingpush
        banned = ("dingpush.cli", "dingpush.relay", "dingpush.emulator", "dingpush.testing",
                  "starlette", "uvicorn", "jinja2", "rich", "psycopg", "fastapi", "pydantic")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in banned or
                        any(m.startswith(b + ".") or m == b for b in banned))
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
