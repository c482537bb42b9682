"""Benchmark scenarios: each module registers its own with ``@bench.scenario(...)``."""
