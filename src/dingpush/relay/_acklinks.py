"""Signed one-time ack links, for webhook-robot targets (which receive nothing).

An alert message to a custom robot's group carries ``<public_url>/ack/<n>/<token>``, where the
token is ``<expiry>.<HMAC-SHA256(ack_secret, "ack:<n>:<expiry>")>`` (base64url, 128 bits). A
``GET`` shows a confirmation page and changes nothing (chat clients and link previewers fetch
links on their own); its button ``POST``s, which acknowledges the incident (``via="link"``)
once: the store's acknowledge keeps the first acknowledgement, and a token that was used is
refused afterwards. Expired, forged and used links get a page that says so, with a 4xx status.
The secret is never logged, shown or put in a page::

    [relay]
    public_url = "https://relay.example.com"
    ack_secret = "${DINGPUSH_ACK_SECRET}"
    ack_link_ttl = "24h"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dingpush import Message, parse_message
from dingpush.lowlevel import SYSTEM_CLOCK

from ._http import read_body
from ._incidents import Incident, IncidentState, IncidentStore

if typing.TYPE_CHECKING:
    from dingpush import Clock

__all__ = ["AckLinks", "LinkRefused"]

#: The longest name a person may give on the confirmation page.
NAME_MAX = 64
#: How many used tokens are remembered (beyond that, the incident's state still refuses them).
USED_MAX = 10_000


class LinkRefused(Exception):
    """Why a link does not acknowledge: an HTTP status and a sentence for the page."""

    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(text)
        self.status, self.title, self.text = status, title, text


@dataclass(frozen=True, slots=True)
class Checked:
    number: int
    expires_at: int
    token: str


def _mac(secret: bytes, number: int, expires_at: int) -> str:
    digest = hmac.new(secret, f"ack:{number}:{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


class AckLinks:
    """Make and check signed ack links; serve ``GET``/``POST /ack/{number}/{token}``.

    Args:
        secret: the HMAC key (``[relay] ack_secret``); never shown.
        public_url: where people's browsers reach the relay (``[relay] public_url``).
        incidents: the incident store links acknowledge in.
        ttl: seconds a link stays valid.
        clock: where time comes from.
        announce: called with an incident a link acknowledged, to tell its group.
    """

    def __init__(
        self,
        secret: str,
        public_url: str,
        incidents: IncidentStore,
        *,
        ttl: float = 86400.0,
        clock: Clock | None = None,
        announce: Callable[[Incident], Awaitable[None]] | None = None,
    ) -> None:
        self._secret = secret.encode()
        self.public_url = public_url.rstrip("/")
        self.incidents = incidents
        self.ttl = ttl
        self.clock = clock or SYSTEM_CLOCK
        self.announce = announce
        self._used: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"AckLinks({self.public_url!r}, ttl={self.ttl:g})"

    # -- links ----------------------------------------------------------------------------

    def token(self, number: int, *, now: float | None = None) -> str:
        expires_at = int((self.clock.time() if now is None else now) + self.ttl)
        return f"{expires_at}.{_mac(self._secret, number, expires_at)}"

    def link(self, number: int, *, now: float | None = None) -> str:
        """The link that acknowledges incident ``number``."""
        return f"{self.public_url}/ack/{number}/{self.token(number, now=now)}"

    def decorate(self, message: Message, number: int) -> Message:
        """``message`` with a line that links to the acknowledgement of ``number``."""
        link = self.link(number)
        payload = message.to_payload()
        if payload.get("msgtype") == "markdown":
            markdown = dict(payload["markdown"])
            markdown["text"] = f"{markdown['text']}\n\n[Acknowledge #{number}]({link})"
            payload["markdown"] = markdown
        elif payload.get("msgtype") == "text":
            text = dict(payload["text"])
            text["content"] = f"{text['content']}\n\nAcknowledge #{number}: {link}"
            payload["text"] = text
        elif payload.get("msgtype") == "actionCard":
            card = dict(payload["actionCard"])
            card["text"] = f"{card['text']}\n\n[Acknowledge #{number}]({link})"
            payload["actionCard"] = card
        else:
            return message  # link, feedCard: no room for a line of ours

        return parse_message(payload)

    def check(self, number: int, token: str, *, now: float | None = None) -> Checked:
        """The token's expiry if it is this incident's and still valid; else ``LinkRefused``."""
        expiry, dot, mac = token.partition(".")
        if not dot or not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12:
            raise LinkRefused(404, "Not a valid link", "This link is not an acknowledgement link.")
        expires_at = int(expiry)
        # Bytes: compare_digest refuses str with non-ASCII characters (a path may carry any).
        given = mac.encode("utf-8", "replace")
        if not hmac.compare_digest(_mac(self._secret, number, expires_at).encode(), given):
            raise LinkRefused(
                403,
                "Not a valid link",
                "This link was not made by this relay (or was changed): it cannot acknowledge "
                "anything. Open the link in the alert message itself.",
            )
        if (self.clock.time() if now is None else now) >= expires_at:
            raise LinkRefused(
                410,
                "This link has expired",
                f"The link to acknowledge #{number} has expired. Acknowledge it in the "
                "dashboard, or ask the relay's admin for a longer ack_link_ttl.",
            )
        if token in self._used:
            raise LinkRefused(
                410, "This link was used", f"This link already acknowledged #{number}."
            )
        return Checked(number, expires_at, token)

    def _remember(self, token: str) -> None:
        self._used[token] = None
        while len(self._used) > USED_MAX:
            self._used.popitem(last=False)

    # -- pages ----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route("/ack/{number:int}/{token}", self._serve, methods=["GET", "POST"])]

    async def _serve(self, request: Request) -> Response:
        number: int = request.path_params["number"]
        token: str = request.path_params["token"]
        try:
            self.check(number, token)
            incident = await self.incidents.get(number)
            if incident is None:
                raise LinkRefused(404, "No such incident", f"There is no incident #{number}.")
            if request.method == "GET":
                if incident.state is not IncidentState.OPEN:
                    raise LinkRefused(409, f"#{number} is {incident.state}", _settled(incident))
                return _page(200, f"Acknowledge #{number}?", _confirm(incident))
            return await self._acknowledge(request, incident, token)
        except LinkRefused as refused:
            return _page(refused.status, refused.title, f"<p>{html.escape(refused.text)}</p>")

    async def _acknowledge(self, request: Request, incident: Incident, token: str) -> Response:
        form = (await read_body(request, 4096)).decode("utf-8", "replace")
        name = _form_value(form, "name")[:NAME_MAX].strip()
        if not name.isprintable():  # a line break would forge a line in the group's message
            raise LinkRefused(
                400,
                "Not a name",
                "A name is one line of text, without control characters: go back and type "
                "it again.",
            )
        who = name or "someone with the link"
        if incident.state is not IncidentState.OPEN:
            raise LinkRefused(409, f"#{incident.number} is {incident.state}", _settled(incident))
        after = await self.incidents.acknowledge(
            incident.number, who=who, via="link", now=self.clock.time()
        )
        self._remember(token)
        if after.acknowledged_by != who:  # someone else was first
            raise LinkRefused(409, f"#{after.number} is {after.state}", _settled(after))
        if self.announce is not None:
            await self.announce(after)
        return _page(
            200,
            f"#{after.number} acknowledged",
            f"<p>#{after.number} ({html.escape(after.title)}) is acknowledged by "
            f"{html.escape(who)}. Its escalation has stopped; the group is told.</p>",
        )


def _form_value(form: str, key: str) -> str:
    import urllib.parse

    values = urllib.parse.parse_qs(form, max_num_fields=4).get(key)
    return values[0] if values else ""


def _settled(incident: Incident) -> str:
    if incident.state is IncidentState.ACKNOWLEDGED:
        return f"#{incident.number} was already acknowledged by {incident.acknowledged_by}."
    if incident.state is IncidentState.SILENCED:
        return f"#{incident.number} is silenced: nothing to acknowledge."
    return f"#{incident.number} is resolved: nothing to acknowledge."


def _confirm(incident: Incident) -> str:
    title = html.escape(incident.title)
    return (
        f"<p>#{incident.number}: <strong>{title}</strong> is open.</p>"
        '<form method="post">'
        '<label>Your name <input name="name" maxlength="64" autocomplete="name"></label> '
        f'<button type="submit">Acknowledge #{incident.number}</button>'
        "</form>"
        "<p>Acknowledging stops its escalation and tells the group who took it.</p>"
    )


def _page(status: int, title: str, body: str) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem}button{font-size:1rem;padding:.4rem 1rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        page,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
        },
    )
