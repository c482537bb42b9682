"""From a configured target to the library object that sends to it (one delivery path)."""

from __future__ import annotations

import typing

from dingpush._errors import ConfigError

from ._model import RobotTarget, Target

if typing.TYPE_CHECKING:
    import httpx

    from dingpush import Message

__all__ = ["Sender", "open_sender"]


class Sender(typing.Protocol):
    """What :func:`open_sender` returns: ``send`` a message, then ``close``."""

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> typing.Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> typing.Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


def open_sender(
    target: Target,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
) -> Sender:
    """Return the client that delivers to ``target``; close it (or use ``with``) when done."""
    from dingpush import Robot

    if isinstance(target, RobotTarget):
        return Robot(target.webhook, keyword=target.keyword, transport=transport, timeout=timeout)
    raise ConfigError(f"{target.kind} targets are not supported by this version of dingpush")
