"""Sample pictures the emulator serves itself, for link and feed cards that need a ``picUrl``.

Demos and tests should not depend on the internet for a card's picture (``example.com`` has
none, so the chat view showed broken images). ``GET /_emulator/samples/{name}`` serves small
PNGs drawn here, in the standard library: a gradient with a motif, one per name.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["SAMPLE_PICTURES", "sample_picture", "sample_routes"]

_WIDTH, _HEIGHT = 320, 180  # 16:9, the shape DingTalk draws a link card's picture in

Colour = tuple[int, int, int]
Motif = Callable[[float, float], bool]


def _bars(x: float, y: float) -> bool:
    # A bar chart: five bars rising to the right.
    column = int(x * 10)
    return column % 2 == 1 and y > 0.85 - 0.13 * (column // 2 + 1)


def _wave(x: float, y: float) -> bool:
    # A pulse line across the middle, as on an incident graph.
    level = 0.5 - (0.3 if 0.45 < x < 0.5 else -0.2 if 0.5 <= x < 0.55 else 0.0)
    return abs(y - level) < 0.02


def _rings(x: float, y: float) -> bool:
    # Concentric rings around the centre, a release badge.
    distance = ((x - 0.5) * 16 / 9) ** 2 + (y - 0.5) ** 2
    return 0.03 < distance < 0.045 or 0.09 < distance < 0.105


_PICTURES: dict[str, tuple[Colour, Colour, Motif]] = {
    "release.png": ((22, 119, 255), (12, 54, 145), _rings),
    "incident.png": ((250, 140, 22), (168, 45, 30), _wave),
    "capacity.png": ((19, 194, 150), (8, 94, 84), _bars),
}
#: The names served under ``/_emulator/samples/``.
SAMPLE_PICTURES = tuple(_PICTURES)


@functools.cache
def sample_picture(name: str) -> bytes:
    """The PNG bytes of a sample picture (``KeyError`` for an unknown name)."""
    top, bottom, motif = _PICTURES[name]
    rows = []
    for row in range(_HEIGHT):
        y = row / (_HEIGHT - 1)
        base = [round(a + (b - a) * y) for a, b in zip(top, bottom, strict=True)]
        line = bytearray(b"\x00")  # filter type: none
        for column in range(_WIDTH):
            x = column / (_WIDTH - 1)
            pixel = [255 - (255 - c) // 4 for c in base] if motif(x, y) else base
            line += bytes(pixel)
        rows.append(bytes(line))
    return _png(_WIDTH, _HEIGHT, b"".join(rows))


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


async def _picture(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _PICTURES:
        body = {"error": f"no sample picture {name!r}", "samples": list(SAMPLE_PICTURES)}
        return JSONResponse(body, status_code=404)
    return Response(
        sample_picture(name),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


async def _listing(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    items = [{"name": n, "url": f"{root}/_emulator/samples/{n}"} for n in SAMPLE_PICTURES]
    return JSONResponse({"samples": items})


def sample_routes() -> list[BaseRoute]:
    """``GET /_emulator/samples`` (the list) and ``/_emulator/samples/{name}`` (a PNG)."""
    return [
        Route("/_emulator/samples", _listing, methods=["GET"]),
        Route("/_emulator/samples/{name}", _picture, methods=["GET"]),
    ]
