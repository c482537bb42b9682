"""The async clients' default HTTP transport, and when it is not used.

``AsyncRobot`` and ``AsyncApp`` send through :class:`AsyncioTransport` unless the user passed
``transport=`` or ``http_client=``, or a proxy applies: ``proxy=``, or ``HTTPS_PROXY`` and its
friends with ``trust_env``. Then httpx's own transport (httpcore) carries the requests, as it
did before, because it speaks to proxies and this transport does not.
"""

from __future__ import annotations

import typing

from ._asyncio import AsyncioTransport

if typing.TYPE_CHECKING:
    import httpx

__all__ = ["AsyncioTransport", "default_async_transport"]


def default_async_transport(options: dict[str, typing.Any]) -> httpx.AsyncBaseTransport | None:
    """The transport an async client should send with, given its ``httpx.AsyncClient`` options.

    ``None`` means httpx's default: a proxy is configured, explicitly or in the environment.
    """
    if options.get("proxy") is not None:
        return None
    if options.get("trust_env", True) and _environment_proxies():
        return None
    return AsyncioTransport(
        verify=options.get("verify", True),
        limits=options.get("limits"),
        trust_env=options.get("trust_env", True),
    )


def _environment_proxies() -> bool:
    """Whether ``HTTP(S)_PROXY``/``ALL_PROXY`` (any case) name a proxy httpx would use."""
    import urllib.request

    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))
