"""Sending (through the library's clients, the one delivery path) and describing a dry run."""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass, field

from dingpush._messages import Message
from dingpush._wire import JSON_HEADERS

if typing.TYPE_CHECKING:
    from dingpush.config import Target

    from ._state import State


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One HTTP request a send would make, with its credentials masked in ``url``."""

    method: str
    url: str
    headers: typing.Mapping[str, str]
    body: bytes
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": json.loads(self.body),
            "bytes": len(self.body),
            **({"note": self.note} if self.note else {}),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send achieved, for the CLI's line or ``--json``."""

    target: str
    kind: str
    msgtype: str
    msg_uuid: str | None
    errcode: int | str = 0
    errmsg: str = "ok"
    extra: typing.Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "target": self.target,
            "kind": self.kind,
            "msgtype": self.msgtype,
            "msg_uuid": self.msg_uuid,
            "errcode": self.errcode,
            "errmsg": self.errmsg,
            **self.extra,
        }


def masked_url(url: str) -> str:
    """A signed webhook URL as a dry run shows it: token masked, the signature hidden."""
    from dingpush._masking import redact_url

    return re.sub(r"([?&]sign=)[^&]*", r"\1****", redact_url(url))


def plan(target: Target, message: Message, msg_uuid: str | None) -> list[PlannedRequest]:
    """The requests a send would make, built by the same code that sends (no I/O)."""
    from dingpush._robot import RobotCore
    from dingpush.config import RobotTarget

    if isinstance(target, RobotTarget):
        core = RobotCore(target.webhook, keyword=target.keyword)
        prepared = core.prepare(message, msg_uuid)
        return [PlannedRequest("POST", masked_url(core.url()), JSON_HEADERS, prepared.content)]
    from dingpush._errors import ConfigError

    raise ConfigError(f"a dry run of {target.kind} targets is not supported by this version")


def send(
    state: State,
    target: Target,
    message: Message,
    *,
    msg_uuid: str | None,
    timeout: float | None,
) -> Outcome:
    """Deliver ``message`` to ``target`` through the library and describe the result."""
    from dingpush.config import open_sender

    with_close = open_sender(target, timeout=timeout)
    try:
        state.detail(f"sending a {message.msgtype} message to {target.name} ({target.destination})")
        result = with_close.send(message, msg_uuid=msg_uuid)
    finally:
        with_close.close()
    return Outcome(
        target.name,
        target.kind,
        message.msgtype,
        getattr(result, "msg_uuid", msg_uuid),
        getattr(result, "errcode", 0),
        getattr(result, "errmsg", "ok"),
    )
