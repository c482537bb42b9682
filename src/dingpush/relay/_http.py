"""HTTP plumbing of the relay: problem answers, body reading with a size cap, JSON pointers.

Errors are ``application/problem+json`` (RFC 9457) with the extra members ``pointer`` (the JSON
pointer of the offending value), ``field`` and ``rule``. The status tells the sender what to do:
4xx means "this request will never be accepted, fix it", 5xx "try again" — a transient cause is
never a 4xx, because Alertmanager and most webhook senders retry only on 5xx.
"""

from __future__ import annotations

import hmac
import json
import typing
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dingpush._messages._json import MAX_DEPTH, lone_surrogate, too_deep
from dingpush._messages._models import field_name

__all__ = [
    "BodyTooLarge",
    "HTTPProblem",
    "authorized",
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
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
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

    Syntax errors, nesting deeper than ``MAX_DEPTH`` (bounded before parsing: the parser
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
            f"the body nests JSON more than {MAX_DEPTH} levels deep (at character "
            f"{offset + 1}); a request needs far fewer",
            pointer=pointer_at(text, offset),
            rule=f"at most {MAX_DEPTH} levels of nesting",
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
