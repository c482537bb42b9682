"""Signing (加签) against the protocol's own test vectors (protocol §1.2)."""

from __future__ import annotations

import urllib.parse

import pytest

from dingpush._robot._signing import encoded_sign, sign, signed_params, verify_signature

VECTORS = [
    (
        "this is secret",
        1577262236757,
        "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=",
        "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D",
    ),
    (
        "SEC0123456789abcdef",
        1700000000000,
        "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk=",
        "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D",
    ),
]


@pytest.mark.parametrize(("secret", "timestamp", "b64", "encoded"), VECTORS)
def test_protocol_vectors(secret: str, timestamp: int, b64: str, encoded: str) -> None:
    assert sign(secret, timestamp) == b64
    assert encoded_sign(secret, timestamp) == encoded
    # Encoded exactly once: one decode gives the Base64 back.
    assert urllib.parse.unquote_plus(encoded) == b64
    assert signed_params(secret, timestamp) == {"timestamp": str(timestamp), "sign": b64}


def test_verify_signature() -> None:
    assert verify_signature("SEC0123456789abcdef", "1700000000000", VECTORS[1][2])
    assert not verify_signature("SEC0123456789abcdef", "1700000000001", VECTORS[1][2])
    assert not verify_signature("SEC0123456789abcdef", "not-a-number", VECTORS[1][2])
    assert not verify_signature("SEC0123456789abcdef", "9" * 400, VECTORS[1][2])
    assert not verify_signature("SEC0123456789abcdef", "1700000000000", "\u00e9t\u00e9")
    # Double encoding (the apprise bug) never verifies.
    assert not verify_signature("SEC0123456789abcdef", "1700000000000", VECTORS[1][3])
