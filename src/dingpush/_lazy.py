"""Public names that load their module on first use (PEP 562), for ``dingpush`` and its faces.

``import dingpush`` then costs almost nothing, and ``from dingpush import ConfigError`` loads the
errors alone: the clients (and everything under them) load when a name of theirs is first used.
A package lists its names by module; :func:`lazy_names` gives it the ``__getattr__`` and
``__dir__`` that resolve them. Each loaded name is stored in the package's namespace (the next
use is an ordinary attribute) and its classes and functions report the package as their module,
as httpx does, so reprs, tracebacks and docs show ``dingpush.Robot``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_names"]

_MISSING = object()


def _claim(value: object, package: str) -> None:
    """Show a private module's class or function as the public package's."""
    if isinstance(value, type | types.FunctionType) and value.__module__.startswith("dingpush._"):
        value.__module__ = package


def lazy_names(
    package: str, modules: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], typing.Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``package``, whose names live in ``modules``.

    ``modules`` maps a module (relative to the ``dingpush`` package) to the names it defines.
    """
    anchor = "dingpush"
    by_module = {module: tuple(names) for module, names in modules.items()}
    where = {name: module for module, names in by_module.items() for name in names}

    def publish(module: str, loaded: types.ModuleType) -> None:
        namespace = vars(sys.modules[package])
        for name in by_module[module]:
            value = getattr(loaded, name, _MISSING)
            if value is not _MISSING:  # a module still being imported lacks its later names
                _claim(value, package)
                namespace[name] = value

    def __getattr__(name: str) -> typing.Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module, anchor)
        value = getattr(loaded, name)
        publish(module, loaded)
        # What that import loaded besides (the errors under a client, say) is published too,
        # so an exception raised later shows as dingpush.RateLimited, not its private home.
        for other in by_module:
            found = sys.modules.get(importlib.util.resolve_name(other, anchor))
            if found is not None and other != module:
                publish(other, found)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
