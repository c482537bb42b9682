"""Small real files and the emulator's app "ops", shared by the app tests."""

from __future__ import annotations

import struct
import typing
import zlib
from collections.abc import Iterable

if typing.TYPE_CHECKING:
    from dingpush.testing import EmulatorServer

APP_KEY = "dingtest0123456789ab"
APP_SECRET = "Gx7uV2Qp-app-secret-value-for-tests-0123456789abcdefghijklmnopqrs"
USERS = ("manager4220", "user123", "alice", "bob")
GROUP = "Ops"


def add_ops_app(
    server: EmulatorServer, *, users: Iterable[str] = USERS, **settings: typing.Any
) -> EmulatorServer:
    """The app "ops" (``APP_KEY``/``APP_SECRET``) with ``users`` and the group ``GROUP``."""
    server.add_app("ops", APP_KEY, APP_SECRET, users=tuple(users), groups=[GROUP], **settings)
    return server


def cid(server: EmulatorServer) -> str:
    """The openConversationId of the app "ops"'s group."""
    return next(iter(server.emulator.app("ops").groups))


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG image (red pixels), built without any image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pdf_bytes() -> bytes:
    """A minimal PDF document."""
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
