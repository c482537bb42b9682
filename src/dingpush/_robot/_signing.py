"""Robot signing (加签), protocol §1.2: sans-I/O, shared by the clients and the emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

__all__ = ["encoded_sign", "sign", "signed_params", "verify_signature"]

#: DingTalk accepts a signature whose timestamp is within one hour of its own clock.
SIGNATURE_WINDOW_MS = 3_600_000


def sign(secret: str, timestamp_ms: int) -> str:
    """Return the raw Base64 signature of ``timestamp + "\\n" + secret``, keyed by ``secret``.

    The value is *not* URL-encoded: give it to an HTTP library's ``params`` (which encodes it
    once) or pass it through :func:`urllib.parse.quote_plus` yourself, never both.
    """
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_params(secret: str, timestamp_ms: int) -> dict[str, str]:
    """Return the ``timestamp`` and ``sign`` query parameters, unencoded."""
    return {"timestamp": str(timestamp_ms), "sign": sign(secret, timestamp_ms)}


def encoded_sign(secret: str, timestamp_ms: int) -> str:
    """Return the signature URL-encoded once, as the official Python sample does."""
    return urllib.parse.quote_plus(sign(secret, timestamp_ms))


def verify_signature(secret: str, timestamp: str, signature: str) -> bool:
    """Check a decoded ``sign`` against ``timestamp`` in constant time."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        return False
    # Bytes: compare_digest refuses str with non-ASCII characters (a query may carry any).
    expected = sign(secret, int(timestamp)).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
