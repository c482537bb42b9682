"""The relay's own settings (``[relay]``): where it listens, who may call it, how it paces."""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from dataclasses import dataclass, field

from dingpush._engine._retry import RetryPolicy
from dingpush._errors import ConfigError

__all__ = ["RELAY_RETRY", "RelaySettings", "is_loopback", "parse_duration", "parse_size"]

#: Retries of a message in the outbox: a durable queue can afford patience. Twelve attempts
#: back off from 1 s to 10 minutes (about 1.6 hours in all) before the message is a dead letter.
RELAY_RETRY = RetryPolicy(
    max_attempts=12, base_delay=1.0, max_delay=600.0, jitter=0.25, max_elapsed=math.inf
)

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_UNITS["d"] = 86400.0
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: object, name: str) -> float:
    """Read ``30``, ``"30s"``, ``"5m"``, ``"1.5h"``, ``"7d"`` or ``"250ms"`` as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ConfigError(f'{name} = {value!r} is not a duration: write e.g. 60, "60s" or "5m"')
    if seconds < 0:
        raise ConfigError(f"{name} must not be negative")
    return seconds


def parse_size(value: object, name: str) -> int:
    """Read ``1048576``, ``"1MiB"``, ``"512KB"`` as bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    else:
        raise ConfigError(f'{name} = {value!r} is not a size: write e.g. 1048576 or "1MiB"')
    if size < 1:
        raise ConfigError(f"{name} must be at least one byte")
    return size


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySettings:
    """How the relay runs; every field has a default that suits one machine.

    Args:
        host: The interface to listen on. Anything but loopback needs ``api_tokens``.
        port: The TCP port (0 picks a free one).
        api_tokens: Bearer tokens accepted on ``/v1/…``; none means no authentication, which
            is only allowed on loopback.
        coalesce_after: Seconds a backlog may wait before its text and markdown are merged.
        max_body: The largest request body accepted, in bytes (413 beyond).
        lease: Seconds a claimed message is held before another dispatcher may take it.
        retry: The retry policy of failed deliveries (``RELAY_RETRY`` by default).
        shutdown_deadline: Seconds in-flight deliveries get to finish at shutdown before they
            are released back to the queue.
        retention: Seconds delivered messages are kept (dead letters are kept until retried).
        idle_poll: The longest a dispatcher sleeps without looking at the outbox.
        stats_window: The window, in seconds, of "sent recently" in ``/v1/targets``.
        allowed_hosts: ``Host`` names the relay answers to besides ``host``, ``localhost``,
            ``127.0.0.1``, ``[::1]`` and ``public_url``'s; others get 421 (DNS rebinding).
            ``"*"`` answers to any name, and needs ``api_tokens``.
        public_url: Where browsers and callers reach the relay when that is not ``host`` and
            ``port`` (a reverse proxy, ``https://relay.example.com``): its name is allowed and
            its origin is the dashboard's own.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    coalesce_after: float = 60.0
    max_body: int = 1024 * 1024
    lease: float = 60.0
    retry: RetryPolicy = RELAY_RETRY
    shutdown_deadline: float = 10.0
    retention: float = 7 * 86400.0
    idle_poll: float = 5.0
    stats_window: float = 60.0
    allowed_hosts: tuple[str, ...] = ()
    public_url: str | None = None

    def __post_init__(self) -> None:
        for token in self.api_tokens:
            if not isinstance(token, str) or len(token) < 16:
                raise ConfigError(
                    "every API token must be at least 16 characters: generate one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        for name in ("lease", "idle_poll", "stats_window"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535)")
        if "*" in self.allowed_hosts and not self.api_tokens:
            raise ConfigError(
                'allowed_hosts = ["*"] answers to any name, so any web page could reach the '
                "relay through DNS rebinding: list the names instead, or set api_tokens"
            )
        if self.public_url is not None:
            parts = urllib.parse.urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"public_url = {self.public_url!r} is not an http(s) URL: write where "
                    'browsers reach the relay, e.g. "https://relay.example.com"'
                )

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without API tokens."""
        if not self.api_tokens and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without API tokens: anyone who can reach "
                'it could send messages as your robots. Set api_tokens = ["…"] in [relay] '
                "(callers send Authorization: Bearer …), or listen on 127.0.0.1"
            )
