"""Media files (protocol §5): kinds, size and format limits, type sniffing, multipart encoding.

Sans-I/O: the checks run before any request, so a file DingTalk would refuse (40005 wrong
format, 40006 too large, 44001 empty) fails here with the rule it breaks and the fix.
"""

from __future__ import annotations

import os
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from dingpush._errors import InvalidMessage, MessageTooLarge

__all__ = ["MEDIA_LIMITS", "MediaKind", "MediaLimit", "check_media", "encode_multipart"]

MediaKind = typing.Literal["image", "voice", "video", "file"]

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MediaLimit:
    """What ``media/upload`` accepts for one kind: a size in bytes and file extensions."""

    max_bytes: int
    formats: tuple[str, ...]


#: The current official upload page (2026, protocol §5). The older global error table says
#: 1 MB for images and 10 MB for files [U: conflict]; dingpush follows the current page.
#: ``jpeg`` is accepted beside the listed ``jpg``: the same format under its other name.
MEDIA_LIMITS: Mapping[str, MediaLimit] = {
    "image": MediaLimit(20 * _MB, ("jpg", "jpeg", "gif", "png", "bmp")),
    "voice": MediaLimit(2 * _MB, ("amr", "mp3", "wav")),
    "video": MediaLimit(20 * _MB, ("mp4",)),
    "file": MediaLimit(
        20 * _MB, ("doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar")
    ),
}

# Leading bytes of the image formats DingTalk takes, to name an upload given as bare bytes.
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


def extension(filename: str) -> str:
    """Return the lower-case extension of ``filename`` without the dot (``""`` if none)."""
    return os.path.splitext(filename)[1].lstrip(".").lower()


def sniff_image(data: bytes) -> str | None:
    """Return ``png``/``jpg``/``gif``/``bmp`` when ``data`` starts like one, else ``None``."""
    return next((ext for magic, ext in _IMAGE_MAGIC if data.startswith(magic)), None)


def check_kind(kind: str) -> MediaKind:
    """Return ``kind`` when DingTalk knows it (40004 otherwise), as a :data:`MediaKind`."""
    if kind not in MEDIA_LIMITS:
        raise InvalidMessage(
            f"media kind {kind!r} is not one DingTalk uploads: use one of "
            f"{', '.join(MEDIA_LIMITS)} (protocol §5)",
            field="type",
            rule="image, voice, video or file",
        )
    return typing.cast(MediaKind, kind)


def check_media(data: bytes, kind: str, filename: str | None = None) -> str:
    """Check ``data`` against the limits of ``kind`` and return the file name to upload.

    A missing ``filename`` is derived from the content for images (PNG, JPEG, GIF, BMP);
    other kinds need one, since DingTalk decides the format by the name's extension.
    """
    limit = MEDIA_LIMITS[check_kind(kind)]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"media content must be bytes, not {type(data).__name__}")
    if not data:
        raise InvalidMessage(
            f"the {kind} is empty (0 bytes); DingTalk refuses empty media (44001)",
            field="media",
            rule="not empty",
        )
    if filename is None:
        sniffed = sniff_image(bytes(data[:16])) if kind == "image" else None
        if sniffed is None:
            raise InvalidMessage(
                f"give filename= for {kind} content passed as bytes (e.g. report.pdf): "
                "DingTalk tells the format by the file name's extension",
                field="filename",
                rule="required for bytes",
            )
        filename = f"{kind}.{sniffed}"
    ext = extension(filename)
    if ext not in limit.formats:
        raise InvalidMessage(
            f"{filename!r}: DingTalk takes {_kind_files(kind)} as {', '.join(limit.formats)}, "
            f"not {ext or 'a name without an extension'} (40005); convert it, or upload it "
            f"as another kind" + (" (kind='file' takes pdf, zip, docx…)" if kind != "file" else ""),
            field="media",
            rule=f"{kind} format",
        )
    if len(data) > limit.max_bytes:
        raise MessageTooLarge(
            40006,
            f"{filename!r} is {len(data):,} bytes, over the {limit.max_bytes // _MB} MB "
            f"limit for {kind} uploads",
            size=len(data),
            limit=limit.max_bytes,
            hint="compress or shrink it, or share it by link instead of uploading it",
        )
    return filename


def content_type(filename: str) -> str:
    """The MIME type to declare for ``filename`` (``application/octet-stream`` otherwise)."""
    import mimetypes  # loads the system's MIME tables: only uploads pay for it

    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def encode_multipart(
    fields: Mapping[str, str], file_field: str, filename: str, data: bytes
) -> tuple[str, bytes]:
    """Encode a ``multipart/form-data`` body; return its Content-Type header and the bytes."""
    boundary = "dingpush-" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    # Quotes and line breaks would end the header early; DingTalk only needs the extension.
    safe_name = filename.replace('"', "'").replace("\r", " ").replace("\n", " ")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{safe_name}"\r\nContent-Type: {content_type(filename)}\r\n\r\n'.encode()
        + bytes(data)
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def _kind_files(kind: str) -> str:
    """``"files"`` for the file kind, ``"image files"`` for the others (never "file files")."""
    return "files" if kind == "file" else f"{kind} files"
