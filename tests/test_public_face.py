"""The public face: packages outside the core use public names only, and the names load lazily.

Issue 12: the CLI, the relay, the dashboard's renderer, the configuration and the emulator
import ``dingpush``, ``dingpush.lowlevel`` and ``dingpush.markdown``, never a private module of
the core; ruff's banned-api rule (``ruff-edges.toml``) fails ``make lint`` on a new one, and
the count below is the issue's own. Issue 17: ``import dingpush`` is cheap, a name loads what it
needs and no more.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import dingpush
import dingpush.lowlevel
import dingpush.markdown

PACKAGE = Path(dingpush.__file__).parent
ROOT = PACKAGE.parent.parent
EDGES = ("cli", "relay", "web", "emulator", "config", "serving", "alerts")
#: Modules of dingpush itself, not of the core, that follow the edges' rule too.
EDGE_FILES = ("testing.py", "demo.py", "logging.py")
RUFF = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251"]


def _edge_files() -> list[Path]:
    files = [p for edge in EDGES for p in sorted((PACKAGE / edge).rglob("*.py"))]
    return files + [PACKAGE / name for name in EDGE_FILES]


def _private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "dingpush" and len(parts) > 1 and parts[1].startswith("_")


def _private_imports(source: str, module: str) -> list[str]:
    """The private modules of the core that ``source`` (the module ``module``) imports."""
    package = module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            # ``from dingpush import _wire`` imports a module; ``__version__`` is a string.
            names = [f"{target}.{a.name}" for a in node.names if not a.name.startswith("__")]
            found += [f"{node.lineno}: {n}" for n in [target, *names] if _private(n)][:1]
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: {a.name}" for a in node.names if _private(a.name)]
    return found


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_packages_outside_the_core_import_no_private_module_of_it() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{hit}"
        for path in _edge_files()
        for hit in _private_imports(path.read_text(encoding="utf-8"), _module(path))
    ]
    assert found == []


def test_the_issues_count_of_private_imports_is_zero() -> None:
    # grep -rnE "from (dingpush\.|\.\.\.?)_[a-z_]+" src/dingpush/{cli,relay,web,emulator,config}
    pattern = re.compile(r"from (dingpush\.|\.\.\.?)_[a-z_]+")
    hits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _edge_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from ..._robot._core import RobotCore", ["1: dingpush._robot._core"]),
        ("from dingpush._errors import ConfigError", ["1: dingpush._errors"]),
        ("from dingpush import _wire, Text", ["1: dingpush._wire"]),
        ("import dingpush._masking", ["1: dingpush._masking"]),
        ("from dingpush.__version__ import __version__", ["1: dingpush.__version__"]),
        ("from dingpush import Text, __version__", []),
        ("from dingpush.lowlevel import redact_url", []),
        ("from .._settings import RelaySettings", []),
    ],
)
def test_the_private_import_finder(source: str, found: list[str]) -> None:
    assert _private_imports(source, "dingpush.relay.stores._probe") == found


def _core_private_modules() -> set[str]:
    return {
        f"dingpush.{path.stem}"
        for path in PACKAGE.iterdir()
        if path.name.startswith("_")
        and not path.name.startswith("__")
        and (path.suffix == ".py" or (path / "__init__.py").is_file())
    }


def _banned(config: Path) -> set[str]:
    table = tomllib.loads(config.read_text(encoding="utf-8"))
    return set(table["lint"]["flake8-tidy-imports"]["banned-api"])


def test_the_lint_rule_bans_every_private_module_of_the_core() -> None:
    privates = _core_private_modules()
    assert "dingpush._robot" in privates and "dingpush._errors" in privates
    assert {n for n in _banned(ROOT / "ruff-edges.toml") if n.startswith("dingpush")} == privates
    for edge in EDGES:
        table = tomllib.loads((PACKAGE / edge / "ruff.toml").read_text(encoding="utf-8"))
        assert table["extend"] == "../../../ruff-edges.toml"
        # An edge that bans more (config, alerts) writes its own banned-api table, and ruff
        # takes that table instead of the extended one: it must list every private module too.
        if "banned-api" in table.get("lint", {}).get("flake8-tidy-imports", {}):
            assert privates <= _banned(PACKAGE / edge / "ruff.toml"), edge


@pytest.mark.parametrize("edge", [*EDGES, "relay/stores"])
@pytest.mark.parametrize(
    "line",
    [
        "from dingpush._errors import ConfigError",
        "from dingpush._robot._core import RobotCore",
        "from dingpush import _wire",
        "import dingpush._masking",
    ],
)
def test_a_new_private_import_in_a_package_outside_the_core_fails_lint(
    edge: str, line: str
) -> None:
    checked = subprocess.run(
        [*RUFF, "--stdin-filename", str(PACKAGE / edge / "_probe.py"), "-"],
        input=line + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "TID251" in checked.stdout and "the core is private" in checked.stdout


def test_a_relative_import_of_the_core_fails_lint_too() -> None:
    checked = subprocess.run(
        [*RUFF, "--stdin-filename", str(PACKAGE / "cli" / "_probe.py"), "-"],
        input="from .._masking import Redactor\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert checked.returncode == 1 and "dingpush._masking" in checked.stdout


# -- the lazy face ---------------------------------------------------------------------------


def _declared(module: object) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(TYPE_CHECKING imports, _MODULES)`` of a lazy module, each as module -> names."""
    path = Path(module.__file__)  # type: ignore[attr-defined]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typed: dict[str, set[str]] = {}
    table: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                assert isinstance(child, ast.ImportFrom)
                name = "." * child.level + (child.module or "")
                typed[name] = {alias.name for alias in child.names}
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "_MODULES":
            table = {k: set(v) for k, v in vars(module)["_MODULES"].items()}
    return typed, table


@pytest.mark.parametrize(
    "module", [dingpush, dingpush.lowlevel, dingpush.markdown], ids=lambda m: m.__name__
)
def test_what_mypy_sees_is_what_loads(module: object) -> None:
    typed, table = _declared(module)
    assert typed == table
    names = {n for names in table.values() for n in names}
    assert names == {n for n in module.__all__ if not n.startswith("__")}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "module", [dingpush, dingpush.lowlevel, dingpush.markdown], ids=lambda m: m.__name__
)
def test_every_public_name_loads_and_shows_its_public_home(module: object) -> None:
    name = module.__name__  # type: ignore[attr-defined]
    assert sorted(dir(module)) == sorted(set(dir(module)))
    for public in module.__all__:  # type: ignore[attr-defined]
        assert public in dir(module)
        value = getattr(module, public)
        if isinstance(value, type) or (callable(value) and hasattr(value, "__code__")):
            assert value.__module__ in (name, "dingpush"), public
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getattr(module, "nothing")  # noqa: B009


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_import_dingpush_loads_none_of_the_library_yet() -> None:
    out = _fresh(
        """
        import sys, dingpush
        print(sorted(m for m in sys.modules if m.startswith("dingpush")))
        """
    )
    assert out == "['dingpush', 'dingpush.__version__', 'dingpush._lazy']"


def test_an_error_class_loads_the_errors_alone() -> None:
    out = _fresh(
        """
        import sys
        from dingpush import ConfigError
        print(sorted(m for m in sys.modules if m.startswith("dingpush.")))
        """
    )
    assert out == "['dingpush.__version__', 'dingpush._errors', 'dingpush._lazy']"


def test_sign_and_mask_import_no_httpx() -> None:
    out = _fresh(
        """
        import sys
        from dingpush import mask, sign
        assert sign("SECabc", 1) and mask("0123456789abcdef0123")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("httpx", "httpcore", "anyio")))
        """
    )
    assert out == "[]"


def test_the_message_registry_knows_every_type_whichever_name_loads_first() -> None:
    out = _fresh(
        """
        from dingpush import parse_message
        image = parse_message({"msgtype": "image", "image": {"picURL": "https://x/y.png"}})
        file = parse_message({"msgtype": "file", "file": {"mediaId": "@a", "fileName": "q.pdf"}})
        print(type(image).__name__, type(file).__name__, type(image).__module__)
        """
    )
    assert out == "Image File dingpush"


def test_errors_raised_by_a_client_show_their_public_name() -> None:
    out = _fresh(
        """
        import dingpush
        dingpush.Robot
        print(dingpush.RateLimited.__module__, dingpush.SendResult.__module__)
        import dingpush._errors
        print(dingpush._errors.MessageTooLarge.__module__)
        """
    )
    assert out.split() == ["dingpush", "dingpush", "dingpush"]


def test_an_error_raised_through_lowlevel_shows_its_public_name() -> None:
    out = _fresh(
        """
        from dingpush.lowlevel import check_webhook_message
        from dingpush._messages._models import Text  # no name of dingpush itself touched
        try:
            check_webhook_message(Text("x" * 30_000))
        except Exception as exc:
            print(type(exc).__module__, type(exc).__qualname__)
        """
    )
    assert out == "dingpush MessageTooLarge"


def test_planning_a_robot_send_loads_no_app_client_and_no_httpx() -> None:
    out = _fresh(
        """
        import sys
        from dingpush.lowlevel import plan_robot_send
        (request,) = plan_robot_send("https://oapi.dingtalk.com/robot/send?access_token=t", "hi")
        assert request.json()["text"] == {"content": "hi"}
        heavy = ("httpx", "httpcore", "dingpush._apps")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
        """
    )
    assert out == "[]"


def test_every_name_of_the_low_level_face_is_documented() -> None:
    # Issue 12: what the CLI, relay and web need is public *and documented*.
    guide = (ROOT / "docs" / "lowlevel.md").read_text(encoding="utf-8")
    missing = [n for n in dingpush.lowlevel.__all__ if not re.search(rf"`{n}\b", guide)]
    assert missing == []
