"""Constants and payload builders shared by the emulator tests."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from dingpush._robot._signing import sign

TOKEN = "6c2a0f4e9b7d4c1a8e3f5b2d7a9c0e1f6c2a0f4e9b7d4c1a8e3f5b2d7a9c0ee9"
SECRET = "SEC0123456789abcdef"

Send = Callable[..., Awaitable[httpx.Response]]


def text(content: str = "hello", **extra: Any) -> dict[str, Any]:
    """Return a text message payload."""
    return {"msgtype": "text", "text": {"content": content}, **extra}


def signed_query(secret: str, timestamp_ms: int) -> str:
    """Return ``timestamp=…&sign=…`` encoded once, as the official sample does."""
    signature = urllib.parse.quote_plus(sign(secret, timestamp_ms))
    return f"timestamp={timestamp_ms}&sign={signature}"
