"""What goes over the wire: body encoding, reply parsing, transport-error mapping (sans-I/O),
and the checks of JSON read from it (nesting depth, lone surrogates)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import typing
from collections.abc import Callable, Iterator, Mapping

from .__version__ import __version__
from ._errors import (
    Advice,
    DingPushError,
    ProtocolError,
    Timeout,
    TransportError,
    error_from_reply,
)

__all__ = [
    "JSON_HEADERS",
    "MAX_JSON_DEPTH",
    "http_options",
    "lone_surrogate",
    "map_transport_errors",
    "parse_oapi_reply",
    "parse_v1_reply",
    "payload_bytes",
    "tls_context",
    "too_deep",
]

USER_AGENT = f"dingpush/{__version__}"
JSON_HEADERS = {
    "Content-Type": "application/json;charset=utf-8",
    "User-Agent": USER_AGENT,
}
#: Seconds: connect quickly or fail; DingTalk answers a send in well under a second.
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0

Redact = Callable[[str], str]

#: The HTTP client of a sync or async shell: ``httpx.Client`` or ``httpx.AsyncClient``. The
#: base classes the twins share (``BaseRobot``, ``BaseApp``) are generic over it and over
#: ``TransportT``, its ``httpx.BaseTransport`` or ``httpx.AsyncBaseTransport``.
HttpT = typing.TypeVar("HttpT")
TransportT = typing.TypeVar("TransportT")

if typing.TYPE_CHECKING:
    import httpx

    TimeoutTypes: typing.TypeAlias = float | httpx.Timeout | None
    ProxyTypes: typing.TypeAlias = str | httpx.Proxy | None


@functools.cache
def tls_context(trust_env: bool) -> typing.Any:
    """The TLS settings every client of the process verifies DingTalk's certificate with.

    Built once: loading the CA bundle costs ~50 ms, which httpx pays for every new client. A
    relay with 500 targets opened 500 clients on its event loop and held it for 25 s, long
    enough for other targets' connects to time out. An ``ssl.SSLContext`` is safe to share
    between clients and threads. Where httpx cannot build one (older versions), each client
    loads its own (``True``).
    """
    import httpx

    create = getattr(httpx, "create_ssl_context", None)
    return create(trust_env=trust_env) if create is not None else True


def http_options(
    timeout: TimeoutTypes,
    proxy: ProxyTypes,
    trust_env: bool,
    *,
    pool: float | None = DEFAULT_TIMEOUT,
) -> dict[str, typing.Any]:
    """The ``httpx.Client``/``AsyncClient`` arguments the robot and app shells share.

    ``pool`` bounds the wait for a free connection when ``timeout`` is not given.
    """
    import httpx

    return {
        "timeout": (
            httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT, pool=pool)
            if timeout is None
            else timeout
        ),
        "proxy": proxy,
        "trust_env": trust_env,
        "verify": tls_context(trust_env),
    }


def payload_bytes(payload: Mapping[str, typing.Any]) -> bytes:
    """Serialise a request body the way dingpush sends it: compact UTF-8 JSON.

    DingTalk counts the body's bytes against its limit; ``ensure_ascii`` would turn each CJK
    character into a 6-byte ``\\uXXXX`` escape and reach the limit twice as fast.
    """
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def excerpt(content: bytes, redact: Redact, limit: int = 200) -> str:
    """A short, secret-free, single-line piece of a reply body for error messages."""
    text = content[: limit * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return redact(text)


def parse_oapi_reply(
    status_code: int, content: bytes, redact: Redact, *, what: str = "DingTalk"
) -> dict[str, typing.Any]:
    """Return the JSON of an oapi/webhook reply, or raise the error it carries.

    DingTalk answers HTTP 200 even when it refuses a message, so the ``errcode`` in the body
    decides; it may come as a number or a string (protocol §1.6).
    """
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "errcode" not in body:
        raise ProtocolError(
            f"{what} answered HTTP {status_code} with something that is not DingTalk's JSON "
            f"reply: {excerpt(content, redact)!r}"
            + (" — check the URL and any proxy in between" if status_code < 500 else ""),
            status_code=status_code,
        )
    try:
        errcode = int(body["errcode"])
    except (TypeError, ValueError):
        raise ProtocolError(
            f"{what} answered with a non-numeric errcode {body['errcode']!r}",
            status_code=status_code,
        ) from None
    if errcode != 0:
        errmsg = redact(str(body.get("errmsg", "")))
        raise error_from_reply(
            errcode, errmsg, request_id=_request_id(body), status_code=status_code
        )
    if status_code >= 300:
        raise ProtocolError(
            f"{what} answered HTTP {status_code} with errcode 0", status_code=status_code
        )
    return body


def parse_v1_reply(
    status_code: int,
    content: bytes,
    redact: Redact,
    *,
    headers: Mapping[str, str] | None = None,
    what: str = "DingTalk",
) -> dict[str, typing.Any]:
    """Return the JSON of an api.dingtalk.com/v1.0 reply, or raise the error it carries.

    v1.0 errors use real HTTP statuses with ``{"code", "message", "requestid"}`` (protocol
    §3.4); the request id (body, or the ``x-acs-request-id`` header) stays on the exception.
    """
    try:
        body = json.loads(content) if content.strip() else {}
    except ValueError:
        body = None
    header_id = (headers or {}).get("x-acs-request-id")
    if 200 <= status_code < 300:
        if not isinstance(body, dict):
            raise ProtocolError(
                f"{what} answered HTTP {status_code} with something that is not JSON: "
                f"{excerpt(content, redact)!r}",
                status_code=status_code,
            )
        return body
    if not isinstance(body, dict) or not body.get("code"):
        raise ProtocolError(
            f"{what} answered HTTP {status_code} without DingTalk's error JSON: "
            f"{excerpt(content, redact)!r}"
            + (" — check the URL and any proxy in between" if status_code < 500 else ""),
            status_code=status_code,
        )
    message = redact(str(body.get("message", "")))
    detail = body.get("accessdenieddetail")
    if isinstance(detail, Mapping) and detail.get("requiredScopes"):
        scopes = ", ".join(str(s) for s in detail["requiredScopes"])
        message = f"{message} (required permission: {scopes})".strip()
    raise error_from_reply(
        str(body["code"]),
        message,
        request_id=_request_id(body) or header_id,
        status_code=status_code,
    )


def _request_id(body: Mapping[str, typing.Any]) -> str | None:
    value = body.get("request_id") or body.get("requestid") or body.get("requestId")
    return str(value) if value else None


@contextlib.contextmanager
def map_transport_errors(redact: Redact, where: str) -> Iterator[None]:
    """Turn httpx's exceptions into dingpush's, with secrets masked, in one place."""
    # httpx is imported where it is used: `import dingpush` and a CLI dry run stay light.
    import httpx

    # These fail before a byte of the request reaches DingTalk: no connection was made (or
    # none was free), the proxy refused the tunnel, or httpx refused to send it.
    never_sent = (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ProxyError,
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
    )
    try:
        yield
    except DingPushError:
        raise
    except httpx.TimeoutException as exc:
        sent = not isinstance(exc, never_sent)
        error: TransportError = Timeout(
            f"{where} did not answer in time ({type(exc).__name__}{_SENT[sent]}); DingTalk may "
            f"be slow or unreachable: check the network or proxy, or {_TIMEOUT.phrase}",
            maybe_delivered=sent,
        )
        error.advice = _TIMEOUT
        raise error from exc
    except httpx.HTTPError as exc:
        sent = not isinstance(exc, never_sent)
        detail = redact(str(exc)) or type(exc).__name__
        error = TransportError(
            f"could not complete the request to {where}: {detail}{_SENT[sent]}; check the "
            f"network, the proxy settings ({_PROXY.phrase}) and the URL",
            maybe_delivered=sent,
        )
        error.advice = _PROXY
        raise error from exc


_TIMEOUT = Advice("timeout", "raise timeout=")
_PROXY = Advice("proxy", "proxy= or HTTPS_PROXY")


#: What a transport error's message says of the request: the user decides on a resend by it.
_SENT = {
    False: "; the request was not sent",
    True: "; the request had been sent, so DingTalk may have acted on it",
}


# -- reading JSON: checks before and after json.loads (the messages' reader and the emulator's) --

#: How deeply JSON documents may nest: a message needs about six levels, a batch eight.
MAX_JSON_DEPTH = 32

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Only a \u escape of D800-DFFF can make a lone surrogate: UTF-8 input cannot carry one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> int | None:
    """The offset in ``text`` where nesting passes ``max_depth``, or None (scanned, not parsed).

    Brackets inside strings do not count. Broken JSON is scanned as far as it goes; the parser
    reports its syntax afterwards.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return None  # fewer opening brackets in all than levels allowed (most bodies)
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets or max(itertools.accumulate(map(_STEP.__getitem__, brackets))) <= max_depth:
        return None
    depth = 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return token.start()
        elif char in "]}":
            depth -= 1
    return None  # pragma: no cover - the count above says a level passes max_depth


def lone_surrogate(value: object, text: str | None = None) -> str | None:
    """The JSON pointer of the first string (or key) in ``value`` with a lone surrogate.

    Pass the JSON ``text`` it was parsed from to skip the walk when no escape could make one.
    """
    if text is not None and not _SURROGATE_ESCAPE.search(text):
        return None
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, pointer = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return pointer
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                where = f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
                if _SURROGATE.search(key):  # named with the escape: the pointer must encode
                    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", where)
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{pointer}/{i}") for i, child in reversed(list(enumerate(item))))
    return None
