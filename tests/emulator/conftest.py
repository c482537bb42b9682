"""Fixtures for the emulator's own tests: an in-process app on a fake clock.

The server fixtures (``dingtalk_emulator``…) and ``anyio_backend`` come from tests/conftest.py,
which loads the ``dingpush.testing`` plugin.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dingpush.emulator import Emulator, RobotConfig, create_app
from dingpush.testing import FakeClock

from ._support import TOKEN, Send


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Emulator:
    emulator = Emulator(clock=clock)
    emulator.add_robot(RobotConfig("ops", TOKEN))
    return emulator


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(emulator))
    async with httpx.AsyncClient(transport=transport, base_url="http://oapi.test") as client:
        yield client


@pytest.fixture
def send(client: httpx.AsyncClient) -> Send:
    """POST a payload to /robot/send; ``query`` is appended verbatim so tests control encoding."""

    async def send(
        payload: Any = None,
        *,
        token: str | None = TOKEN,
        query: str = "",
        content: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = "/robot/send" + (f"?access_token={token}" if token is not None else "?")
        url += f"&{query}" if query else ""
        if content is None:
            content = (
                json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
            )
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        return await client.post(url, content=content, headers=all_headers)

    return send
