"""dingpush's benchmark harness: ``make bench`` (``python -m bench``) writes docs/benchmarks.md.

The emulator runs in its own OS process; every client under test runs in a worker process of
its own (``python -m bench.worker``), so neither shares a GIL with the other or with the
runner. Scenarios live in ``bench/scenarios/``: a module there that decorates a function with
``@scenario(...)`` is picked up without touching the runner.
"""

from ._registry import Context, Run, Section, median, scenario, scenarios

__all__ = ["Context", "Run", "Section", "median", "scenario", "scenarios"]
