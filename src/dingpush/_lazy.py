"""Public names that load their module on first use (PEP 562), for ``dingpush`` and its faces.

``import dingpush`` then costs almost nothing, and ``from dingpush import ConfigError`` loads the
errors alone: the clients (and everything under them) load when a name of theirs is first used.
A face (``dingpush``, ``dingpush.lowlevel``, ``dingpush.markdown``) lists its names by module;
:func:`lazy_names` gives it the ``__getattr__`` and ``__dir__`` that resolve them. Each loaded
name is stored in the face's namespace (the next use is an ordinary attribute) and its classes
and functions report the face as their module, as httpx does, so reprs, tracebacks and docs
show ``dingpush.Robot``.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_names"]

_MISSING = object()


class _Face:
    """One public module and where its names live (modules relative to ``dingpush``)."""

    def __init__(self, name: str, modules: Mapping[str, Iterable[str]]) -> None:
        self.name = name
        self.modules = {f"dingpush{module}": tuple(names) for module, names in modules.items()}
        self.where = {n: module for module, names in self.modules.items() for n in names}

    def publish(self, module: str, loaded: types.ModuleType) -> None:
        """Store the names of a loaded module in the face, shown as the face's own."""
        namespace = vars(sys.modules[self.name])
        for name in self.modules[module]:
            value = getattr(loaded, name, _MISSING)
            if value is _MISSING:  # a module still being imported lacks its later names
                continue
            if isinstance(value, type | types.FunctionType) and value.__module__.startswith(
                "dingpush._"
            ):
                value.__module__ = self.name
            namespace[name] = value


#: Every face, so that what one loads is published by all of them.
_FACES: list[_Face] = []


def _publish_loaded() -> None:
    # What an import loaded besides the name asked for (the errors under a client, say) is
    # published too, so an exception raised later shows as dingpush.RateLimited, not as the
    # private module it lives in.
    for face in _FACES:
        for module in face.modules:
            loaded = sys.modules.get(module)
            if loaded is not None:
                face.publish(module, loaded)


def lazy_names(
    name: str, modules: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], typing.Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the face ``name``, whose names live in ``modules``.

    ``modules`` maps a module (relative to the ``dingpush`` package, ``"._errors"``) to the
    public names it defines.
    """
    face = _Face(name, modules)
    _FACES.append(face)

    def __getattr__(attribute: str) -> typing.Any:
        module = face.where.get(attribute)
        if module is None:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        value = getattr(importlib.import_module(module), attribute)
        _publish_loaded()
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[name]), *face.where})

    return __getattr__, __dir__
