"""Shared fixtures: the emulator fixtures come from the dingpush.testing pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest_plugins = ["dingpush.testing"]

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's proxy and dingpush settings out of every test."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in (
        "DINGPUSH_OAPI_BASE",
        "DINGPUSH_API_BASE",
        "DINGPUSH_CONFIG",
        "DINGPUSH_WEBHOOK",
        "DINGPUSH_SECRET",
        "DINGPUSH_LIMITER_PATH",
        "DINGPUSH_APP_KEY",
        "DINGPUSH_APP_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test starts with empty process-wide send logs (robots' tokens repeat across tests)."""
    from dingpush._engine._limiter import reset_default_limiters

    reset_default_limiters()


@pytest.fixture
def schema() -> Iterator[str]:
    """A scratch PostgreSQL schema no other test uses, dropped after the test (_pgsupport.py)."""
    from _pgsupport import drop_schema, scratch_schema

    name = scratch_schema()
    yield name
    drop_schema(name)
