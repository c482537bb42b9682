"""The core's shape: its families as folders, and no import cycle among its modules.

Every ``import`` counts here, those under ``TYPE_CHECKING`` and inside functions too: a cycle
that only type checkers see still ties two modules together for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dingpush

PACKAGE = Path(dingpush.__file__).parent

#: Cycles the core keeps on purpose, each with the comment at its import site saying why.
ALLOWED_CYCLES = {
    # PartialDelivery (errors) names the messages left to send; the models raise
    # InvalidMessage. The errors import the models for annotations only; the models' field
    # rules and JSON reader (_fields, raising InvalidMessage too) are part of the models.
    frozenset({"dingpush._errors", "dingpush._messages._models", "dingpush._messages._fields"}),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _core_modules() -> dict[str, Path]:
    """The library's own modules: everything private under ``dingpush/`` (not the extras)."""
    paths = [
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0].startswith("_") and p.name != "__main__.py"
    ]
    return {_module_name(p): p for p in paths}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.add(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_families_are_folders() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("_*.py") if not p.name.startswith("__"))
    # Cross-cutting pieces stay at the top, with the faces' own two: the lazy loading of the
    # public names and the planning of sends (above both client families); every family
    # lives in its folder.
    assert flat == [
        "_errors.py",
        "_lazy.py",
        "_masking.py",
        "_planning.py",
        "_results.py",
        "_wire.py",
    ], flat
    for family in (
        "_apps",
        "_engine",
        "_markdown",
        "_messages",
        "_postgres",
        "_receive",
        "_robot",
        "_transports",
    ):
        assert (PACKAGE / family / "__init__.py").is_file(), family


def test_no_import_cycle_in_the_core_but_the_documented_one() -> None:
    modules = _core_modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert set(_cycles(graph)) <= ALLOWED_CYCLES


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


#: The packages of dingpush from the bottom up, as docs/architecture.md draws them: a module may
#: import from its own layer's package and from the layers below, never from one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core", "dingpush.__version__"),
    ("dingpush", "dingpush.lowlevel", "dingpush.markdown"),
    ("dingpush.config", "dingpush.web", "dingpush.alerts", "dingpush.serving"),
    ("dingpush.emulator", "dingpush.logging"),
    ("dingpush.testing",),
    ("dingpush.relay",),
    ("dingpush.cli", "dingpush.demo"),
    ("dingpush.__main__",),  # python -m dingpush: the CLI
)


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1].startswith("_") and not parts[1].startswith("__"):
        return "core"
    return ".".join(parts[:2])


def _package_imports() -> set[tuple[str, str, str]]:
    """``(importing module, its package, imported package)`` for every import in dingpush."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found = set()
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            if _package(target) != _package(name):
                found.add((name, _package(name), _package(target)))
    return found


def test_each_package_imports_only_from_the_layers_below() -> None:
    layer = {package: i for i, packages in enumerate(LAYERS) for package in packages}
    imports = _package_imports()
    assert {p for _, source, target in imports for p in (source, target)} <= set(layer)
    upward = sorted(
        f"{module} imports {target}"
        for module, source, target in imports
        if layer[target] > layer[source]
        or (layer[target] == layer[source] and "core" not in (source, target))
    )
    assert upward == []
