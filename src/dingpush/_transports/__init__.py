"""The async clients' default HTTP transport, and when it is not used.

``AsyncRobot`` and ``AsyncApp`` send through :class:`AsyncioTransport` unless the user passed
``transport=`` or ``http_client=``, or a proxy applies: ``proxy=``, or ``HTTPS_PROXY`` and its
friends with ``trust_env``. Then httpx's own transport (httpcore) carries the requests, as it
did before, because it speaks to proxies and this transport does not.
"""

from __future__ import annotations

import typing

from ._asyncio import AsyncioTransport, post_headers
from ._http11 import Headers

if typing.TYPE_CHECKING:
    import httpx

__all__ = ["AsyncioTransport", "DirectPost", "default_async_transport"]


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


class DirectPost:
    """POSTs of a client that owns its :class:`AsyncioTransport`, past httpx's client layer.

    What the client would send (its headers, its time-outs), without building an
    ``httpx.Request`` and ``httpx.Response`` per send or passing through the client's cookie
    jar, hooks, redirect and auth handling, none of which a send to DingTalk uses: at 64 sends
    in flight that layer cost more CPU than the transport itself (docs/benchmarks.md).
    Failures are the transport's, the same ``httpx`` exceptions, so "was it sent?" is unchanged.
    """

    __slots__ = ("_client", "_extra", "_headers", "_netloc", "_timeouts", "_transport")

    def __init__(
        self,
        client: httpx.AsyncClient,
        transport: AsyncioTransport,
        headers: typing.Mapping[str, str],
    ) -> None:
        self._client = client
        self._transport = transport
        self._extra = [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        self._timeouts = client.timeout.as_dict()
        self._netloc = b""
        self._headers: Headers = []

    @classmethod
    def over(
        cls,
        client: httpx.AsyncClient,
        transport: httpx.AsyncBaseTransport | None,
        headers: typing.Mapping[str, str],
    ) -> DirectPost | None:
        """The direct path for ``client``, or None when its transport is not ours."""
        if isinstance(transport, AsyncioTransport):
            return cls(client, transport, headers)
        return None

    async def post(self, url: httpx.URL, content: bytes) -> tuple[int, bytes]:
        """(status, body) of a POST of ``content`` to ``url``."""
        if url.raw_host + b":" + str(url.port).encode() != self._netloc:
            self._netloc = url.raw_host + b":" + str(url.port).encode()
            self._headers = post_headers(self._client, url, self._extra)
        headers = [*self._headers, (b"Content-Length", b"%d" % len(content))]
        return await self._transport.post(url, headers, content, self._timeouts)
