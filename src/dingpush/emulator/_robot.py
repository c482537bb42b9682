"""``POST /robot/send``: the custom group robot webhook (protocol §1), with fault injection."""

from __future__ import annotations

import logging
import urllib.parse

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ._faults import gateway_page
from ._records import RequestRecord
from ._state import Emulator
from ._webhook import WebhookCall, query_value

__all__ = [
    "ConnectionDropped",
    "DropFilter",
    "install_drop_log_filter",
    "method_not_allowed",
    "robot_routes",
]

#: The methods routes that refuse wrong methods themselves take (Starlette's default is GET).
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: oapi answers carry this header (observed, protocol §8).
SERVER_HEADER = {"Server": "DingTalk/1.0.0"}
_SEND_PATH = "/robot/send"


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised inside the app to cut a connection on purpose (a ``drop`` fault).

    Over a socket, uvicorn closes the connection mid-response. Over ``httpx.ASGITransport`` the
    exception reaches the client itself; subclassing ``httpx.RemoteProtocolError`` makes it the
    same error type a client sees from a real peer that hangs up.
    """


class DropFilter(logging.Filter):
    """Silence uvicorn's traceback for connections the emulator dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


def install_drop_log_filter() -> None:
    """Attach the filter to uvicorn's error logger once (it logs every app exception there)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropFilter) for f in logger.filters):
        logger.addFilter(DropFilter())


class _DroppedResponse(Response):
    """Send the status line and headers promising a body, then hang up."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"server", SERVER_HEADER["Server"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"27"),  # the length of {"errcode":0,"errmsg":"ok"}
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionDropped("the emulator dropped the connection (injected fault)")


def _answer(record: RequestRecord) -> Response:
    """Turn what was recorded as the answer into the HTTP response."""
    if record.http_status is None:
        return _DroppedResponse()
    if record.errcode is None:
        return PlainTextResponse(
            gateway_page(),
            status_code=record.http_status,
            headers=SERVER_HEADER,
            media_type="text/html",
        )
    body = {"errcode": record.errcode, "errmsg": record.errmsg}
    return JSONResponse(body, status_code=record.http_status, headers=SERVER_HEADER)


async def _call_from(request: Request) -> WebhookCall:
    # Decode the query exactly once, as a form-decoding server does ('+' becomes a space).
    raw_query = request.scope.get("query_string", b"").decode("utf-8", "replace")
    query = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    return WebhookCall(
        path=request.url.path,
        query=tuple(query),
        content_type=request.headers.get("content-type"),
        body=await request.body(),
        client_ip=request.client.host if request.client else None,
        forwarded_for=request.headers.get("x-forwarded-for"),
    )


def method_not_allowed(request: Request, allowed: str) -> Response:
    """The bare HTTP 405 of ``EmulatorOptions(wrong_method="http405")``."""
    body = {"error": "Method Not Allowed", "path": request.url.path}
    return JSONResponse(body, status_code=405, headers={"Allow": allowed})


def robot_routes(emulator: Emulator) -> list[BaseRoute]:
    """Return the routes of the custom-robot webhook, bound to ``emulator``."""

    async def send(request: Request) -> Response:
        if request.method != "POST":
            # GET, PUT… answer in DingTalk's format (a client such as DingtalkChatbot reads
            # errcode), unless the options ask for a bare 405.
            if emulator.options.wrong_method == "http405":
                return method_not_allowed(request, "POST")
            return _answer(emulator.record_wrong_method(await _call_from(request)))
        call = await _call_from(request)
        robot = emulator.robot_for_token(query_value(call.query, "access_token"))
        before = emulator.take_fault(path=call.path, robot=robot, after_accept=False)
        if before is not None and before.kind != "delay":
            return _answer(emulator.record_fault(call, before))
        if before is not None:
            await anyio.sleep(before.delay)
        after = emulator.take_fault(path=call.path, robot=robot, after_accept=True)
        record = emulator.robot_send(call, delayed=before, answer_fault=after)
        if after is not None and after.kind == "delay":
            await anyio.sleep(after.delay)
        return _answer(record)

    # Every method: the endpoint answers the wrong ones itself.
    return [Route(_SEND_PATH, send, methods=ALL_METHODS)]
