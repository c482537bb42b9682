"""Fixtures of the alert tests: compiled builtin templates, a fixed clock."""

from __future__ import annotations

import pytest

from dingpush.alerts import Templates
from dingpush.testing import FakeClock

#: 2024-05-01T12:12:00Z: twelve minutes after the samples' alerts started firing.
NOW = 1714565520.0


@pytest.fixture(scope="session")
def builtin_templates() -> Templates:
    return Templates()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)
