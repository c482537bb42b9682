"""Scenarios, what they report, and the context the runner hands them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._emulator import EmulatorProcess


@dataclass
class Section:
    """One scenario's part of docs/benchmarks.md: prose, a table, notes."""

    title: str
    intro: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.intro.strip(), ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass
class Run:
    """What one tool did: per-message outcomes as the tool reported them, and its time."""

    tool: str
    outcomes: list[tuple[int, bool, float]]
    elapsed: float | None  # None when the run was stopped at its cap
    cpu: float | None = None  # the worker's CPU seconds from its first send to its last
    profile: dict[str, float] | None = None  # CPU seconds by layer, when profiled

    @property
    def finished(self) -> int:
        return len(self.outcomes)

    @property
    def reported_ok(self) -> int:
        return sum(1 for _, ok, _ in self.outcomes if ok)

    @property
    def capped(self) -> bool:
        return self.elapsed is None


@dataclass
class Context:
    """What a scenario gets: the emulator process, the mode, and a way to run a tool."""

    emulator: EmulatorProcess
    quick: bool

    @property
    def repeats(self) -> int:
        return 1 if self.quick else 5

    def run_tool(
        self, tool: str, urls: Sequence[str], count: int, *, cap: float = 600.0, **spec: object
    ) -> Run:
        """Run ``tool`` in a worker process; stop it after ``cap`` seconds if still going."""
        payload = {"tool": tool, "urls": list(urls), "count": count, "stream": True, **spec}
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", json.dumps(payload)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        outcomes: list[tuple[int, bool, float]] = []
        elapsed: list[float] = []
        cpu: list[float] = []
        profile: list[dict[str, float]] = []
        begun = threading.Event()

        def read() -> None:
            assert worker.stdout is not None
            for line in worker.stdout:
                data = json.loads(line)
                if data.get("begin"):
                    begun.set()
                elif "profile" in data:
                    profile.append(data["profile"])
                elif data.get("done"):
                    elapsed.append(float(data["elapsed"]))
                    if "cpu" in data:
                        cpu.append(float(data["cpu"]))
                else:
                    outcomes.append((int(data["i"]), bool(data["ok"]), float(data["t"])))
            begun.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        begun.wait(timeout=60)  # an interpreter start and imports, before the clock starts
        try:
            worker.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        reader.join(timeout=10)
        worker.stdout.close()
        if worker.returncode not in (0, -9) or (not elapsed and worker.returncode == 0):
            raise RuntimeError(f"bench worker for {tool} failed (exit {worker.returncode})")
        time.sleep(0.05)  # let the emulator finish recording the last request
        return Run(
            tool,
            sorted(outcomes),
            elapsed[0] if elapsed else None,
            cpu[0] if cpu else None,
            profile[0] if profile else None,
        )


ScenarioFunction = Callable[[Context], Section]


@dataclass(frozen=True)
class Scenario:
    name: str
    order: int
    run: ScenarioFunction


_SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, *, order: int = 100) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register ``function(context) -> Section`` as the scenario ``name``."""

    def register(function: ScenarioFunction) -> ScenarioFunction:
        if name in _SCENARIOS:
            raise ValueError(f"two benchmark scenarios are called {name!r}")
        _SCENARIOS[name] = Scenario(name, order, function)
        return function

    return register


def scenarios() -> list[Scenario]:
    """Every scenario in ``bench/scenarios/``, in order."""
    import importlib
    import pkgutil

    # Not `from . import scenarios`: the package re-exports this function under that name.
    package = importlib.import_module(f"{__package__}.scenarios")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return sorted(_SCENARIOS.values(), key=lambda s: (s.order, s.name))


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
