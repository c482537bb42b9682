"""The relay's ASGI application: the API, ``/openapi.json``, ``/docs``, and an optional emulator.

``create_app(relay)`` returns a Starlette app whose lifespan opens the outbox and starts the
dispatcher, and on shutdown stops claiming, lets in-flight sends finish within the deadline and
closes the outbox. Unknown paths and methods, and any unexpected error, answer with a problem
document that carries no internals (and no secret).
"""

from __future__ import annotations

import contextlib
import logging
import re
import typing
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ._api import ENDPOINTS, routes
from ._http import HostGuard, HTTPProblem, cross_site, problem
from ._openapi import docs_page, document
from ._relay import Relay
from ._sandbox import EMULATOR_PREFIX, emulator_app

if typing.TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ._sandbox import Emulator

__all__ = ["EMULATOR_PREFIX", "create_app"]

log = logging.getLogger("dingpush.relay")


def create_app(
    relay: Relay,
    *,
    emulator: Emulator | None = None,
    manage: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ASGI app serving ``relay`` (and ``emulator`` under ``/emulator`` when given).

    With ``manage`` (the default) the app's lifespan starts and closes the relay; ``serve()``
    passes False because it opens the relay before listening. ``extra_routes`` are served
    beside the API (the dashboard mounts itself this way; ``app.state.relay`` is the relay).
    """
    spec = document(ENDPOINTS, auth=bool(relay.settings.api_tokens))
    if relay.alerts is not None:
        from ._alerts import openapi_paths

        spec["paths"].update(openapi_paths())
    if relay.chat is not None or relay.ack_links is not None:
        from ._receivers import openapi_paths as oncall_paths

        paths = oncall_paths()
        if relay.chat is None:
            del paths["/callbacks/{app}"]
        if relay.ack_links is None:
            del paths["/ack/{number}/{token}"]
        spec["paths"].update(paths)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    page = docs_page()

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    app_routes: list[BaseRoute] = [
        *routes(relay),
        *(relay.alerts.starlette_routes(relay) if relay.alerts is not None else ()),
        *(relay.chat.routes() if relay.chat is not None else ()),
        *(relay.ack_links.routes() if relay.ack_links is not None else ()),
        *extra_routes,
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
    ]
    if emulator is not None:  # the sandbox (see _sandbox.py)
        # As the mount's middleware, so that the emulator's routes stay reachable (url_for).
        guard = Middleware(_SandboxGuard, relay=relay)
        app_routes.append(Mount(EMULATOR_PREFIX, app=emulator_app(emulator), middleware=[guard]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not manage:
            yield
            return
        await relay.start()
        try:
            yield
        finally:
            await relay.aclose()

    app = Starlette(
        routes=app_routes,
        lifespan=lifespan,
        middleware=[Middleware(HostGuard, hosts=relay.hosts)],
        exception_handlers={
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.relay = relay
    return app


class _SandboxGuard:
    """The mounted emulator's robots, faults and chat are state too: without ``api_tokens``, a
    request the browser marks as another site's may read them but not change them (403), as on
    the API, so a page the user opens cannot break or post to the sandbox."""

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app = app
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in ("GET", "HEAD", "OPTIONS")
            and not self.relay.settings.api_tokens
        ):
            why = cross_site(Request(scope), self.relay.hosts)
            if why is not None:
                answer = problem(
                    HTTPProblem(
                        403,
                        f"refused: this request comes from another site ({why}), and this "
                        "relay has no API tokens, so a web page must not change the sandbox "
                        "emulator. Call it from a tool or from the chat view itself",
                    )
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        detail = f"no such path {request.url.path!r}: see /docs for the API"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path!r}: see /docs"
    else:
        detail = str(exc.detail) if isinstance(exc, HTTPException) else "error"
    relay = getattr(request.app.state, "relay", None)
    if relay is not None:  # a path may carry a secret (an alert route's token): never echo it
        detail = relay.redact(detail)
    return problem(HTTPProblem(status, detail))


#: A signed ack link's token (``/ack/N/TOKEN``) acknowledges the incident: never logged.
_ACK_TOKEN = re.compile(r"^(/ack/[^/]*/).+")


async def _unexpected(request: Request, exc: Exception) -> Response:
    path = _ACK_TOKEN.sub(r"\1…", request.url.path)
    log.exception("unexpected error on %s %s", request.method, path)
    return problem(
        HTTPProblem(500, "the relay failed to answer this request; its log has the details")
    )
