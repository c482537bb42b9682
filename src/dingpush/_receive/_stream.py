"""The sans-I/O core of Stream mode (protocol §13): open, frames, acks, de-duplication, back-off.

The shell (``_client.py``) moves bytes: it posts :func:`open_request`, connects to
:func:`connect_url`, and hands every frame to :meth:`StreamSession.receive`, which says what to
send back (the ack, at once: §13.3 "ack first, then process") and which message to hand on.
A redelivered frame (the same ``messageId``, §13.3) is acked again but handed on only once,
across reconnections too.
"""

from __future__ import annotations

import json
import random
import typing
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dingpush._errors import ConfigError, ProtocolError

from ._incoming import IncomingMessage, parse_incoming

__all__ = [
    "BOT_TOPIC",
    "OPEN_PATH",
    "Backoff",
    "Reaction",
    "StreamSession",
    "connect_url",
    "open_payload",
    "parse_open",
]

#: §13.2: robot messages (the §12.1 body as a JSON string in ``data``).
BOT_TOPIC = "/v1.0/im/bot/messages/get"
#: §13.1: no access token; credentials in the body.
OPEN_PATH = "/v1.0/gateway/connections/open"


def open_payload(app_key: str, app_secret: str, topics: Sequence[str]) -> dict[str, typing.Any]:
    """§13.1's body: the credentials and one CALLBACK subscription a topic."""
    if not topics:
        raise ConfigError("a Stream client needs at least one topic, e.g. BOT_TOPIC")
    return {
        "clientId": app_key,
        "clientSecret": app_secret,
        "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in topics],
        "ua": "dingpush",
        "localIp": "",
    }


def parse_open(body: Mapping[str, typing.Any]) -> tuple[str, str]:
    """``(endpoint, ticket)`` from ``connections/open``'s answer."""
    endpoint, ticket = body.get("endpoint"), body.get("ticket")
    if not isinstance(endpoint, str) or not endpoint or not isinstance(ticket, str) or not ticket:
        raise ProtocolError("DingTalk's connections/open answered without endpoint/ticket")
    if not endpoint.startswith(("ws://", "wss://")):
        raise ProtocolError(f"connections/open gave a non-WebSocket endpoint {endpoint[:60]!r}")
    return endpoint, ticket


def connect_url(endpoint: str, ticket: str) -> str:
    """``<endpoint>?ticket=<ticket>``, the ticket URL-encoded (§13.1)."""
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}ticket={urllib.parse.quote_plus(ticket)}"


@dataclass(frozen=True, slots=True)
class Reaction:
    """What to do about one frame: send ``reply`` back, hand on ``message``, reconnect."""

    reply: str | None = None
    message: IncomingMessage | None = None
    duplicate: bool = False
    reconnect: bool = False


def _ack(message_id: str, data: str, code: int = 200, text: str = "OK") -> str:
    headers = {"contentType": "application/json", "messageId": message_id}
    return json.dumps({"code": code, "headers": headers, "message": text, "data": data})


class StreamSession:
    """Frames in, acks and messages out; remembers the last ``remember`` messageIds."""

    def __init__(self, topics: Sequence[str] = (BOT_TOPIC,), *, remember: int = 4096) -> None:
        self.topics = tuple(topics)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        #: Frames handed on, and redelivered frames not handed on again.
        self.received = 0
        self.duplicates = 0

    def receive(self, raw: str | bytes) -> Reaction:
        try:
            frame = json.loads(raw)
            headers = frame.get("headers") or {}
            kind, topic = str(frame.get("type", "")), str(headers.get("topic", ""))
            message_id = str(headers.get("messageId", ""))
            data = frame.get("data", "")
        except (ValueError, AttributeError):
            raise ProtocolError("the Stream gateway sent a frame that is not JSON") from None
        if kind == "SYSTEM":
            if topic == "ping":  # §13.3: echo headers and data
                pong = {"code": 200, "headers": headers, "message": "OK", "data": data}
                return Reaction(reply=json.dumps(pong))
            if topic == "disconnect":
                return Reaction(reconnect=True)
            return Reaction()  # CONNECTED, REGISTERED, KEEPALIVE (§13.2): nothing to answer
        if kind == "EVENT":
            return Reaction(reply=_ack(message_id, json.dumps({"status": "SUCCESS"})))
        if kind != "CALLBACK" or topic not in self.topics:
            return Reaction(reply=_ack(message_id, "{}", 404, "not implemented"))
        reply = _ack(message_id, json.dumps({"response": None}))
        if message_id in self._seen:
            self.duplicates += 1
            return Reaction(reply=reply, duplicate=True)
        self._seen[message_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.received += 1
        return Reaction(reply=reply, message=parse_incoming(str(data)))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: the first at once, then ``initial`` doubling
    up to ``maximum`` seconds, each up to ``jitter`` longer at random."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.maximum) or self.factor < 1 or self.jitter < 0:
            raise ConfigError("Backoff needs 0 <= initial <= maximum, factor >= 1, jitter >= 0")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``failures + 1`` (0 after a working connection)."""
        if failures <= 0:
            return 0.0
        base = min(self.maximum, self.initial * self.factor ** (failures - 1))
        return base * (1 + self.jitter * (rng or random).random())
