"""The ``/_emulator/…`` JSON API: the same operations as :class:`Emulator`, over HTTP.

Tests in other processes, the CLI and the chat view drive the emulator through it. Each handler
is a thin shell over one ``Emulator`` method, so both APIs behave the same. Tokens are shown
masked and secrets never: a robot only says ``"signed": true``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._config import RobotConfig, json_tuples, options_from_dict, robot_from_dict
from ._faults import FaultKind
from ._json import loads
from ._records import conversation_id
from ._state import Emulator

__all__ = ["Handler", "control_routes", "json_object", "json_routes"]

_PREFIX = "/_emulator"
_FAULT_ARGS = (
    "count",
    "probability",
    "robot",
    "path",
    "errcode",
    "errmsg",
    "delay",
    "after_accept",
    "seed",
)

Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(ValueError):
    """The request to the control API is malformed."""


def _robot_json(robot: RobotConfig) -> dict[str, Any]:
    return {**robot.to_dict(), "conversation_id": conversation_id("group", robot.group)}


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object body (``{}`` for an empty one when ``optional``)."""
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        data = loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name!r} must be an integer") from None


def _bool_param(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise _BadRequest(f"query parameter {name!r} must be true or false")


def _errors_as_json(handler: Handler) -> Handler:
    """Answer bad input with 400 and unknown names (robots, apps, media) with 404, as JSON."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return wrapped


class _ControlAPI:
    """Request handlers bound to one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def list_robots(self, request: Request) -> Response:
        return JSONResponse({"robots": [_robot_json(r) for r in self.emulator.robots()]})

    async def add_robot(self, request: Request) -> Response:
        robot = self.emulator.add_robot(robot_from_dict(await json_object(request)))
        return JSONResponse(_robot_json(robot), status_code=201)

    async def get_robot(self, request: Request) -> Response:
        return JSONResponse(_robot_json(self.emulator.robot(request.path_params["name"])))

    async def patch_robot(self, request: Request) -> Response:
        changes = robot_from_patch(await json_object(request))
        robot = self.emulator.update_robot(request.path_params["name"], **changes)
        return JSONResponse(_robot_json(robot))

    async def delete_robot(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.emulator.remove_robot(name)
        return JSONResponse({"deleted": name})

    async def conversations(self, request: Request) -> Response:
        counts: dict[str, int] = {}
        for message in self.emulator.messages():
            counts[message.conversation_id] = counts.get(message.conversation_id, 0) + 1
        items = [
            {**c.to_dict(), "message_count": counts.get(c.id, 0)}
            for c in self.emulator.conversations()
        ]
        return JSONResponse({"conversations": items})

    async def messages(self, request: Request) -> Response:
        found = self.emulator.messages(
            robot=request.query_params.get("robot") or None,
            conversation=request.query_params.get("conversation") or None,
            since_id=_int_param(request, "since_id"),
            limit=_int_param(request, "limit"),
        )
        return JSONResponse({"messages": [m.to_dict() for m in found]})

    async def requests(self, request: Request) -> Response:
        found = self.emulator.requests(
            robot=request.query_params.get("robot") or None,
            accepted=_bool_param(request, "accepted"),
        )
        return JSONResponse({"requests": [r.to_dict() for r in found]})

    async def rejections(self, request: Request) -> Response:
        found = self.emulator.rejections(robot=request.query_params.get("robot") or None)
        return JSONResponse({"rejections": [r.to_dict() for r in found]})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.emulator.stats().to_dict())

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"faults": [f.to_dict() for f in self.emulator.faults()]})

    async def add_fault(self, request: Request) -> Response:
        data = await json_object(request)
        kind = data.pop("kind", None)
        unknown = sorted(set(data) - set(_FAULT_ARGS))
        if unknown:
            raise _BadRequest(f"unknown fault field(s): {', '.join(unknown)}")
        if not isinstance(kind, str):
            raise _BadRequest("fault field 'kind' is required")
        fault = self.emulator.inject_fault(cast(FaultKind, kind), **data)
        return JSONResponse(fault.to_dict(), status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        self.emulator.clear_faults()
        return JSONResponse({"faults": []})

    async def get_options(self, request: Request) -> Response:
        return JSONResponse(self.emulator.options.to_dict())

    async def patch_options(self, request: Request) -> Response:
        data = await json_object(request)
        self.emulator.options = options_from_dict(data, self.emulator.options)
        return JSONResponse(self.emulator.options.to_dict())

    async def reset(self, request: Request) -> Response:
        data = await json_object(request, optional=True)
        self.emulator.reset(robots=data.get("robots") is True)
        return JSONResponse({"reset": True})


def robot_from_patch(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a PATCH body's field names and list types; values are checked by the robot."""
    changes = json_tuples(dict(data), ("keywords", "ip_allowlist"))
    allowed = {f.name for f in dataclasses.fields(RobotConfig)}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise _BadRequest(f"unknown robot field(s): {', '.join(unknown)}")
    return changes


def control_routes(emulator: Emulator) -> list[BaseRoute]:
    """Return the ``/_emulator/…`` routes, bound to ``emulator``."""
    api = _ControlAPI(emulator)
    table: list[tuple[str, str, Handler]] = [
        ("/robots", "GET", api.list_robots),
        ("/robots", "POST", api.add_robot),
        ("/robots/{name}", "GET", api.get_robot),
        ("/robots/{name}", "PATCH", api.patch_robot),
        ("/robots/{name}", "DELETE", api.delete_robot),
        ("/conversations", "GET", api.conversations),
        ("/messages", "GET", api.messages),
        ("/requests", "GET", api.requests),
        ("/rejections", "GET", api.rejections),
        ("/stats", "GET", api.stats),
        ("/faults", "GET", api.list_faults),
        ("/faults", "POST", api.add_fault),
        ("/faults", "DELETE", api.clear_faults),
        ("/options", "GET", api.get_options),
        ("/options", "PATCH", api.patch_options),
        ("/reset", "POST", api.reset),
    ]
    return json_routes(table)


def json_routes(table: Iterable[tuple[str, str, Handler]]) -> list[BaseRoute]:
    """``/_emulator/…`` routes from ``(path, method, handler)`` rows, errors answered as JSON."""
    # Starlette matches routes in order and answers 405 for the first path match with the
    # wrong method, so all methods of one path must share a single Route.
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in table:
        by_path.setdefault(path, {})[method] = _errors_as_json(handler)
    return [
        Route(_PREFIX + path, _dispatch(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


def _dispatch(handlers: Mapping[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        # Starlette adds HEAD to every GET route; answer it like the GET.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint
