"""What the commands that talk to a running relay share: ``--relay``/``--token`` and the POST.

``dingpush retry`` (``POST /v1/messages:retry``) and ``dingpush alert test`` (a receiver's
path) both reach the relay over HTTP: the same options, a bearer token when one is given, and
an answer other than 200 as a typed error (unreachable or 5xx: ``TransportError``; 401:
``ConfigError`` saying which token; a refused request: a usage error with the relay's detail).
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import click

from dingpush import ConfigError, TransportError

if typing.TYPE_CHECKING:
    import httpx

#: The relay's default address (``dingpush serve`` on this machine).
DEFAULT_RELAY = "http://127.0.0.1:8080"

F = typing.TypeVar("F", bound=Callable[..., typing.Any])


def relay_options(token_help: str) -> Callable[[F], F]:
    """``--relay URL`` ($DINGPUSH_RELAY_URL) and ``--token TOKEN`` ($DINGPUSH_RELAY_TOKEN)."""
    relay = click.option(
        "--relay",
        "relay_url",
        metavar="URL",
        envvar="DINGPUSH_RELAY_URL",
        default=DEFAULT_RELAY,
        show_default=True,
        help="The relay's address ($DINGPUSH_RELAY_URL).",
    )
    token = click.option(
        "--token", metavar="TOKEN", envvar="DINGPUSH_RELAY_TOKEN", default=None, help=token_help
    )

    def decorate(command: F) -> F:
        return relay(token(command))

    return decorate


def relay_client(url: str, token: str | None) -> httpx.Client:
    """An HTTP client for the relay at ``url``, with the bearer token when one is given."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60.0)


def relay_post(
    http: httpx.Client,
    url: str,
    path: str,
    body: object,
    *,
    unauthorized: str,
    refused: tuple[int, ...] = (404,),
) -> dict[str, typing.Any]:
    """POST ``body`` to the relay; its JSON answer, or a typed error.

    ``unauthorized`` is the 401's message (which token the relay wants); a status in
    ``refused`` is a usage error carrying the relay's detail.
    """
    import httpx

    try:
        reply = http.post(path, json=body)
    except httpx.HTTPError as exc:
        raise TransportError(
            f"cannot reach the relay at {url} ({exc}): start it with dingpush serve, or point "
            "--relay (DINGPUSH_RELAY_URL) at it"
        ) from exc
    if reply.status_code == 200:
        return typing.cast(dict[str, typing.Any], reply.json())
    try:
        detail = str(reply.json().get("detail") or reply.text)
    except ValueError:
        detail = reply.text[:200]
    if reply.status_code == 401:
        raise ConfigError(unauthorized)
    if reply.status_code in refused:
        raise click.UsageError(detail)
    raise TransportError(f"the relay at {url} answered HTTP {reply.status_code}: {detail}")
