"""App access tokens (protocol §2): their lifetime, and an optional cache on disk.

A token is good for ``expireIn`` seconds (7200); dingpush refreshes it early, ten minutes
before expiry as the official calling guide advises (a tenth of the lifetime when that is
shorter). A :class:`FileTokenCache` lets short-lived processes (a CLI run, a cron job) reuse
a token instead of fetching one each time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pathlib
import typing
import urllib.parse
from dataclasses import dataclass, field

from dingpush._errors import ConfigError
from dingpush._masking import mask

__all__ = [
    "AccessToken",
    "FileTokenCache",
    "TokenCache",
    "api_base",
    "default_token_cache_path",
]

logger = logging.getLogger("dingpush")

DEFAULT_API_BASE = "https://api.dingtalk.com"
#: Refresh this many seconds before expiry at most (the official calling guide, §2.4).
REFRESH_MARGIN = 600.0


def api_base(explicit: str | None = None) -> str:
    """The api host: an explicit setting, then ``$DINGPUSH_API_BASE``, then DingTalk's."""
    base = explicit or os.environ.get("DINGPUSH_API_BASE") or DEFAULT_API_BASE
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"the api base {base!r} is not an http(s) URL: give e.g. https://api.dingtalk.com "
            "or the emulator's http://127.0.0.1:PORT"
        )
    return base.rstrip("/")


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An app access token and when it was obtained and expires (wall-clock seconds)."""

    value: str = field(repr=False)
    expires_at: float
    obtained_at: float

    @property
    def refresh_at(self) -> float:
        """When to fetch again: ten minutes early, or a tenth of the lifetime if shorter."""
        lifetime = max(self.expires_at - self.obtained_at, 0.0)
        return self.expires_at - min(REFRESH_MARGIN, lifetime / 10)

    def fresh(self, now: float) -> bool:
        """Whether the token is still good to use without refreshing."""
        return now < self.refresh_at

    def __repr__(self) -> str:
        return f"AccessToken({mask(self.value)!r}, expires_at={self.expires_at:.0f})"


class TokenCache(typing.Protocol):
    """Somewhere to keep tokens between processes; keys are opaque strings from the client."""

    def load(self, key: str) -> AccessToken | None:
        """Return the token stored under ``key``, if any (expired ones too)."""

    def store(self, key: str, token: AccessToken) -> None:
        """Keep ``token`` under ``key``, replacing any older one."""

    def discard(self, key: str) -> None:
        """Forget the token under ``key`` (DingTalk refused it)."""


def cache_key(app_key: str, app_secret: str, api: str) -> str:
    """The cache key of an app: its AppKey, the host, and a digest that changes with the secret.

    The digest (a truncated SHA-256) lets a rotated AppSecret invalidate old entries without
    the cache ever holding the secret.
    """
    digest = hashlib.sha256(f"dingpush-token\n{app_key}\n{app_secret}".encode()).hexdigest()
    return f"{app_key} {api} {digest[:16]}"


def default_token_cache_path() -> pathlib.Path:
    """``$XDG_CACHE_HOME/dingpush/tokens.json``, else ``~/.cache/dingpush/tokens.json``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "dingpush" / "tokens.json"


class FileTokenCache:
    """Tokens in a JSON file readable by its owner only (mode 0600, directory 0700).

    It holds access tokens keyed by AppKey (plus host and secret digest), never an AppSecret.
    A damaged or unreadable file is treated as empty: the cache saves requests, nothing more.

    Args:
        path: the file; :func:`default_token_cache_path` when ``None``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = pathlib.Path(path) if path is not None else default_token_cache_path()

    def __repr__(self) -> str:
        return f"FileTokenCache({str(self.path)!r})"

    def load(self, key: str) -> AccessToken | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return AccessToken(
                str(entry["access_token"]),
                float(entry["expires_at"]),
                float(entry["obtained_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def store(self, key: str, token: AccessToken) -> None:
        entries = self._read()
        entries[key] = {
            "access_token": token.value,
            "expires_at": token.expires_at,
            "obtained_at": token.obtained_at,
        }
        self._write(entries)

    def discard(self, key: str) -> None:
        entries = self._read()
        if entries.pop(key, None) is not None:
            self._write(entries)

    def _read(self) -> dict[str, typing.Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        tokens = data.get("tokens") if isinstance(data, dict) else None
        return dict(tokens) if isinstance(tokens, dict) else {}

    def _write(self, entries: dict[str, typing.Any]) -> None:
        text = json.dumps({"version": 1, "tokens": entries}, indent=1, sort_keys=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created 0600 from the start, so the token is never readable by others.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("could not write the token cache %s: %s", self.path, exc.strerror)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
