"""HTTP plumbing of the relay: problem answers, body reading, JSON pointers, who may call.

Errors are ``application/problem+json`` (RFC 9457) with the extra members ``pointer`` (the JSON
pointer of the offending value), ``field`` and ``rule``. The status tells the sender what to do:
4xx means "this request will never be accepted, fix it", 5xx "try again" — a transient cause is
never a 4xx, because Alertmanager and most webhook senders retry only on 5xx.

A relay without API tokens trusts whoever can reach it, which on loopback means the user, and
also every web page the user's browser opens. :class:`RelayHosts` says which ``Host`` names the
relay answers to (a DNS-rebinding page sends its own name: 421) and which origins are its own
pages; :func:`cross_site` says why a browser's request comes from elsewhere (``Origin``, Fetch
Metadata), so that state-changing routes refuse it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import typing
import urllib.parse
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dingpush.lowlevel import MAX_JSON_DEPTH, field_name, lone_surrogate, too_deep

__all__ = [
    "BodyTooLarge",
    "HTTPProblem",
    "HostGuard",
    "RelayHosts",
    "authorized",
    "cross_site",
    "json_answer",
    "pointer_at",
    "problem",
    "read_body",
    "token_matches",
]

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Malformed request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    421: "Misdirected request",
    422: "Invalid message",
    503: "Service unavailable",
}


class HTTPProblem(Exception):
    """Raised by handlers to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        pointer: str | None = None,
        field: str | None = None,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.pointer = pointer
        self.field = field
        self.rule = rule
        self.headers = headers


class BodyTooLarge(HTTPProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit:,} bytes, the relay's max_body: send "
            "smaller messages (images by URL or media id), or raise max_body in [relay]",
        )


def problem(exc: HTTPProblem) -> Response:
    body: dict[str, typing.Any] = {
        "type": "about:blank",
        "title": _TITLES.get(exc.status, "Error"),
        "status": exc.status,
        "detail": exc.detail,
    }
    for name in ("pointer", "field", "rule"):
        value = getattr(exc, name)
        if value is not None:
            body[name] = value
    return JSONResponse(body, status_code=exc.status, headers=exc.headers, media_type=PROBLEM_TYPE)


def json_answer(body: typing.Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> typing.Any:
    """Parse a request body; what cannot be read is a 400 naming where it is.

    Syntax errors, nesting deeper than ``MAX_JSON_DEPTH`` (bounded before parsing: the parser
    recurses), numbers Python will not convert, and strings holding a lone surrogate (which
    no UTF-8 writer takes) are all refused here, before anything stores or echoes the value.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPProblem(400, f"the body is not UTF-8 text (byte {exc.start})") from None
    offset = too_deep(text)
    if offset is not None:
        raise HTTPProblem(
            400,
            f"the body nests JSON more than {MAX_JSON_DEPTH} levels deep (at character "
            f"{offset + 1}); a request needs far fewer",
            pointer=pointer_at(text, offset),
            rule=f"at most {MAX_JSON_DEPTH} levels of nesting",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPProblem(
            400,
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            pointer=pointer_at(text, exc.pos),
            rule="JSON syntax",
        ) from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise HTTPProblem(400, f"the body has a number the relay cannot read: {exc}") from None
    where = lone_surrogate(value, text)
    if where is not None:
        raise HTTPProblem(
            400,
            f"{field_name(where) or 'the body'}: the string holds a lone surrogate (an "
            "unpaired \\ud800-\\udfff escape), which is not Unicode text; encode characters "
            "outside the BMP as a surrogate pair or as UTF-8",
            pointer=where,
            field=field_name(where) or None,
            rule="Unicode text",
        )
    return value


def authorized(request: Request, tokens: Sequence[str]) -> bool:
    """Whether the request carries one of ``tokens`` as its bearer token (none: open)."""
    if not tokens:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return token_matches(given.strip(), tokens)


def token_matches(candidate: str, tokens: Sequence[str]) -> bool:
    """Whether ``candidate`` is one of ``tokens``, compared in constant time."""
    given = candidate.encode()
    # Compare with every token, always: the time taken says nothing about which one matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.encode())
    return matched


def unauthorized() -> HTTPProblem:
    return HTTPProblem(
        401,
        "this relay requires an API token: send 'Authorization: Bearer <token>' with one of "
        "the api_tokens in its [relay] configuration",
        headers={"WWW-Authenticate": 'Bearer realm="dingpush relay"'},
    )


def escape_pointer(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: str | int) -> str:
    return "".join("/" + escape_pointer(p) for p in parts)


class _Frame:
    __slots__ = ("container", "expect_key", "key")

    def __init__(self, container: str) -> None:
        self.container = container
        self.key: str | int | None = 0 if container == "array" else None
        self.expect_key = container == "object"


def pointer_at(text: str, position: int) -> str:
    """The JSON pointer of the value being read at ``position`` of (broken) JSON ``text``.

    A best effort for syntax errors: it follows objects, keys and array indexes up to the
    error, so ``{"message": {"text": {"content": "a}}`` points at ``/message/text/content``.
    """
    stack: list[_Frame] = []
    index = 0
    end = min(position, len(text))
    while index < end:
        char = text[index]
        if char == '"':
            close = index + 1
            while close < len(text) and text[close] != '"':
                close += 2 if text[close] == "\\" else 1
            if stack and stack[-1].expect_key:
                try:
                    stack[-1].key = json.loads(text[index : close + 1])
                except ValueError:
                    stack[-1].key = text[index + 1 : close]
                stack[-1].expect_key = False
            index = close + 1
            continue
        if char == "{":
            stack.append(_Frame("object"))
        elif char == "[":
            stack.append(_Frame("array"))
        elif char in "}]" and stack:
            stack.pop()
        elif char == "," and stack:
            frame = stack[-1]
            if frame.container == "array":
                frame.key = typing.cast(int, frame.key) + 1
            else:
                frame.key, frame.expect_key = None, True
        index += 1
    return pointer(*(f.key for f in stack if f.key is not None))


# -- who may call ------------------------------------------------------------------------------

#: Names that can only mean this machine: a rebinding page cannot make a browser send them.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Paths answered whatever the Host: probes and scrapers call a pod by its IP.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_name(value: str) -> str:
    """The name of a ``Host`` header or URL authority, lower case, port and brackets removed."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        value = value.partition(":")[0]
    return value.rstrip(".")


@dataclass(frozen=True, slots=True)
class RelayHosts:
    """The names the relay answers to, and the origins of its own pages, from its settings.

    ``names``: the bind address, ``localhost``, ``127.0.0.1``, ``::1``, the host of
    ``public_url`` and ``allowed_hosts``. ``any_host``: ``allowed_hosts`` has ``"*"`` (allowed
    with API tokens only). An origin is the relay's own when it is ``public_url``'s, or one of
    the names at the port the relay listens on; never because a request's ``Host`` says so.
    """

    names: frozenset[str]
    any_host: bool = False
    public_origin: str | None = None

    @classmethod
    def from_settings(cls, settings: typing.Any) -> RelayHosts:
        names = {*LOOPBACK_NAMES, _host_name(settings.host)}
        public = None
        if settings.public_url:
            parts = urllib.parse.urlsplit(settings.public_url)
            names.add(_host_name(parts.netloc))
            public = _origin(parts.scheme, parts.hostname or "", parts.port)
        extra = [_host_name(h) for h in settings.allowed_hosts if h != "*"]
        return cls(frozenset({*names, *extra} - {""}), "*" in settings.allowed_hosts, public)

    def __str__(self) -> str:
        return ", ".join(f"[{n}]" if ":" in n else n for n in sorted(self.names))

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's ``Host`` header names this relay (no header: not a browser)."""
        return host is None or self.any_host or _host_name(host) in self.names

    def own_origin(self, origin: str, port: int | None, scheme: str = "http") -> bool:
        """Whether ``origin`` is one of the relay's own pages.

        ``port`` and ``scheme`` are where and how the relay listens (the connection's, never
        the ``Host`` header's); ``public_url``'s origin is the relay's own whatever they are.
        """
        try:
            parts = urllib.parse.urlsplit(origin)
            given = _origin(parts.scheme, parts.hostname or "", parts.port)
        except ValueError:  # a port that is not a number
            return False
        if self.public_origin is not None and given == self.public_origin:
            return True
        if parts.scheme != scheme or scheme not in _DEFAULT_PORTS:
            return False
        return parts.hostname in self.names and (parts.port or _DEFAULT_PORTS[scheme]) == port


def _origin(scheme: str, host: str, port: int | None) -> str:
    scheme = scheme.lower()
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        port = None
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{scheme}://{host.lower()}" + (f":{port}" if port else "")


def listening_port(request: Request) -> int | None:
    """The port the connection came in on: the listening socket's, not the request's say.

    A server that gives none (a Unix socket, an in-process client) means the scheme's default.
    """
    server = request.scope.get("server")
    if server and server[1] is not None:
        return int(server[1])
    return _DEFAULT_PORTS.get(request.scope.get("scheme", "http"))


def cross_site(request: Request, hosts: RelayHosts) -> str | None:
    """Why the browser says this request comes from another site, or None.

    Browsers mark every request with ``Sec-Fetch-Site`` and send ``Origin`` with every
    cross-origin one (every POST, in fact); tools such as curl or Alertmanager send neither.
    """
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"the browser marked it Sec-Fetch-Site: {site}"
    origin = request.headers.get("origin")
    if origin is not None and not own_page(request, hosts, origin):
        return f"it comes from a page of {origin!r}, which is not this relay"
    return None


def own_page(request: Request, hosts: RelayHosts, origin: str) -> bool:
    """Whether ``origin`` is the relay's own, at the port and scheme this request came in on."""
    return hosts.own_origin(origin, listening_port(request), request.scope.get("scheme", "http"))


def require_json(request: Request) -> None:
    """Refuse (415) a body not declared as JSON: forms and text/plain are how pages post."""
    declared = request.headers.get("content-type", "")
    media = declared.partition(";")[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise HTTPProblem(
            415,
            "send the body as JSON with 'Content-Type: application/json' (this request said "
            f"{declared or 'nothing'!r})",
            rule="application/json",
        )


class HostGuard:
    """ASGI middleware: answer 421 to a ``Host`` the relay is not (DNS rebinding).

    ``OPEN_PATHS`` are answered whatever the name: they change nothing and carry no secret.
    """

    def __init__(
        self, app: ASGIApp, hosts: RelayHosts, open_paths: Collection[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.open_paths:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not self.hosts.host_allowed(host):
                answer = problem(
                    HTTPProblem(
                        421,
                        f"this relay does not answer to the name {host!r}; it answers to "
                        f"{self.hosts}. If that name really is this relay, add it to "
                        "allowed_hosts (or set public_url) in [relay]",
                    )
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
