"""Routes of the app APIs (protocol §2–§5) and their ``/_emulator/…`` control endpoints.

Every app route runs the same way as ``/robot/send``: faults first (by path, or by app name
through ``robot=``), then the endpoint's checks under the emulator's lock, then the answer in
the endpoint family's shape (v1.0: HTTP status plus ``{code, message, requestid}`` and an
``x-acs-request-id`` header; oapi: HTTP 200 with ``errcode``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ._appchecks import OapiError
from ._apps import app_from_dict, app_from_patch
from ._appstate import Api, AppAnswer, AppCall, Outcome, oapi_error
from ._control import Handler, json_object, json_routes
from ._faults import gateway_page
from ._robot import ALL_METHODS, SERVER_HEADER, _DroppedResponse, method_not_allowed
from ._webhook import wrong_method

if TYPE_CHECKING:
    from ._state import Emulator

__all__ = ["app_routes"]

Judge = Callable[[AppCall, float], Outcome]

#: §3.4 [OBS]: api.dingtalk.com answers carry ``Content-Type: application/json;charset=utf-8``.
_V1_MEDIA_TYPE = "application/json;charset=utf-8"


def _response(answer: AppAnswer) -> Response:
    if answer.status is None:
        return _DroppedResponse()
    if answer.body is None:
        return PlainTextResponse(
            gateway_page(), status_code=answer.status, headers=SERVER_HEADER, media_type="text/html"
        )
    if answer.api == "v1":
        headers = {"x-acs-request-id": answer.request_id, "x-acs-trace-id": answer.request_id}
        return JSONResponse(
            dict(answer.body),
            status_code=answer.status,
            headers=headers,
            media_type=_V1_MEDIA_TYPE,
        )
    return JSONResponse(dict(answer.body), status_code=answer.status, headers=SERVER_HEADER)


async def _call_from(request: Request) -> AppCall:
    raw_query = request.scope.get("query_string", b"").decode("utf-8", "replace")
    return AppCall(
        path=request.url.path,
        query=tuple(urllib.parse.parse_qsl(raw_query, keep_blank_values=True)),
        content_type=request.headers.get("content-type"),
        body=await request.body(),
        client_ip=request.client.host if request.client else None,
        header_token=request.headers.get("x-acs-dingtalk-access-token"),
    )


def _wrong_method(allowed: str) -> Judge:
    error = wrong_method(allowed)

    def judge(call: AppCall, now: float) -> Outcome:
        return oapi_error(OapiError(error.errcode, error.errmsg, error.reason))

    return judge


def _endpoint(emulator: Emulator, api: Api, judge: Judge, method: str) -> Handler:
    refuse = _wrong_method(method)
    allowed = {method, "HEAD"} if method == "GET" else {method}

    async def endpoint(request: Request) -> Response:
        if request.method not in allowed:
            # The legacy oapi routes answer a wrong method in their own format, recorded like
            # any refusal (43001/43002, see EmulatorOptions.wrong_method); v1.0 routes do not
            # get here (their routes take their one method, as api.dingtalk.com's answer to
            # others is not known).
            if emulator.options.wrong_method == "http405":
                return method_not_allowed(request, method)
            call = await _call_from(request)
            return _response(emulator.handle_app_call(call, api, refuse))
        call = await _call_from(request)
        app = emulator.app_for_token(call.token)
        before = emulator.take_fault(path=call.path, robot=app, after_accept=False)
        if before is not None and before.kind != "delay":
            return _response(emulator.record_app_fault(call, before, api))
        if before is not None:
            await anyio.sleep(before.delay)
        after = emulator.take_fault(path=call.path, robot=app, after_accept=True)
        answer = emulator.handle_app_call(call, api, judge, delayed=before, answer_fault=after)
        if after is not None and after.kind == "delay":
            await anyio.sleep(after.delay)
        return _response(answer)

    return endpoint


class _AppControl:
    """``/_emulator/apps``, ``/_emulator/media`` and ``/_emulator/notices``."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _app_json(self, name: str) -> dict[str, Any]:
        app = self.emulator.app(name)
        return {**app.to_dict(), "token_requests": self.emulator.token_requests(name)}

    async def list_apps(self, request: Request) -> Response:
        return JSONResponse({"apps": [self._app_json(a.name) for a in self.emulator.apps()]})

    async def add_app(self, request: Request) -> Response:
        app = self.emulator.add_app(app_from_dict(await json_object(request, optional=True)))
        return JSONResponse(self._app_json(app.name), status_code=201)

    async def get_app(self, request: Request) -> Response:
        return JSONResponse(self._app_json(request.path_params["name"]))

    async def patch_app(self, request: Request) -> Response:
        changes = app_from_patch(await json_object(request, optional=True))
        app = self.emulator.update_app(request.path_params["name"], **changes)
        return JSONResponse(self._app_json(app.name))

    async def delete_app(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.emulator.remove_app(name)
        return JSONResponse({"deleted": name})

    async def expire_tokens(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.emulator.expire_tokens(name)
        return JSONResponse(self._app_json(name))

    async def list_media(self, request: Request) -> Response:
        app = request.query_params.get("app") or None
        return JSONResponse({"media": [m.to_dict() for m in self.emulator.media_items(app=app)]})

    async def get_media(self, request: Request) -> Response:
        media = self.emulator.media(request.path_params["media_id"])
        quoted = urllib.parse.quote(media.filename)
        return Response(
            media.data,
            media_type=media.content_type,
            headers={"Content-Disposition": f"inline; filename*=UTF-8''{quoted}"},
        )

    async def list_notices(self, request: Request) -> Response:
        app = request.query_params.get("app") or None
        tasks = self.emulator.notice_tasks(app=app)
        return JSONResponse({"notices": [t.to_dict() for t in tasks]})

    async def read_notice(self, request: Request) -> Response:
        data = await json_object(request, optional=True)
        users = data.get("users")
        if not isinstance(users, list):
            raise ValueError("'users' must be a list of userIds")
        try:
            task_id = int(request.path_params["task_id"])
        except ValueError:
            raise KeyError(f"no work-notification task {request.path_params['task_id']}") from None
        task = self.emulator.read_notice(task_id, [str(u) for u in users])
        return JSONResponse(task.to_dict())

    # -- the people of §11/§14: read messages, read and confirm DINGs ----------------------

    async def list_app_messages(self, request: Request) -> Response:
        keys = self.emulator.app_messages()
        return JSONResponse({"app_messages": [k.to_dict() for k in keys]})

    async def read_app_message(self, request: Request) -> Response:
        """``{"process_query_key": …, "users": [...]}``: these users read the message."""
        data = await json_object(request, optional=True)
        key, users = data.get("process_query_key"), data.get("users")
        if not isinstance(key, str) or not isinstance(users, list):
            raise ValueError("give 'process_query_key' (a string) and 'users' (a list)")
        sent = self.emulator.read_app_message(key, [str(u) for u in users])
        return JSONResponse(sent.to_dict())

    async def list_dings(self, request: Request) -> Response:
        return JSONResponse({"dings": [d.to_dict() for d in self.emulator.dings()]})

    async def read_ding(self, request: Request) -> Response:
        """``{"users": [...], "confirm": false}``: these receivers read (confirm) the DING."""
        data = await json_object(request, optional=True)
        users = data.get("users")
        if not isinstance(users, list):
            raise ValueError("'users' must be a list of userIds")
        ding = self.emulator.read_ding(
            request.path_params["ding_id"],
            [str(u) for u in users],
            confirm=data.get("confirm") is True,
        )
        return JSONResponse(ding.to_dict())

    # -- the people of §12/§13: post to the robot; the Stream gateway -----------------------

    async def post_as_user(self, request: Request) -> Response:
        """``{"app", "user", "text", "group": cid or title or null, "mention": true}``."""
        data = await json_object(request, optional=True)
        app, user, text = data.get("app"), data.get("user"), data.get("text")
        group, mention = data.get("group"), data.get("mention", True)
        if not all(isinstance(v, str) and v for v in (app, user, text)):
            raise ValueError("give 'app', 'user' and 'text' (non-empty strings)")
        if group is not None and not isinstance(group, str):
            raise ValueError("'group' must be an openConversationId or a title")
        # A callback to an HTTP-mode app is a blocking request: off the event loop.
        body = await anyio.to_thread.run_sync(
            lambda: self.emulator.post_as_user(
                str(app), str(user), str(text), group=group, mention=mention is not False
            )
        )
        return JSONResponse({"delivered": body is not None, "body": body})

    async def list_callbacks(self, request: Request) -> Response:
        return JSONResponse({"callbacks": [c.to_dict() for c in self.emulator.callbacks()]})

    async def stream_state(self, request: Request) -> Response:
        app = request.query_params.get("app") or None
        gateway = self.emulator.stream
        return JSONResponse(
            {
                "connections": gateway.connections(app),
                "opened": gateway.opened,
                "redelivered": gateway.redelivered,
                "pending": gateway.pending(app) if app else None,
            }
        )

    async def drop_stream(self, request: Request) -> Response:
        """``{"app": name or null, "mid_frame": false}``: cut the app's connections."""
        data = await json_object(request, optional=True)
        app = data.get("app")
        count = self.emulator.stream.drop(
            str(app) if app else None, mid_frame=data.get("mid_frame") is True
        )
        return JSONResponse({"dropped": count})

    async def ignore_acks(self, request: Request) -> Response:
        """``{"app": name, "count": n}``: the gateway ignores the app's next n acks (§13.3)."""
        data = await json_object(request, optional=True)
        app, count = data.get("app"), data.get("count", 1)
        if not isinstance(app, str) or not isinstance(count, int):
            raise ValueError("give 'app' (a name) and 'count' (an integer)")
        self.emulator.stream.ignore_acks(app, count)
        return JSONResponse({"app": app, "count": count})


def _methods(api: Api, method: str) -> list[str]:
    return ALL_METHODS if api == "oapi" else [method]


def app_routes(emulator: Emulator) -> list[BaseRoute]:
    """Return the app API routes and their control endpoints, bound to ``emulator``."""
    api: list[tuple[str, str, Api, Judge]] = [
        ("/v1.0/oauth2/accessToken", "POST", "v1", emulator.judge_token),
        ("/gettoken", "GET", "oapi", emulator.judge_gettoken),
        ("/v1.0/robot/groupMessages/send", "POST", "v1", emulator.judge_group_send),
        ("/v1.0/robot/oToMessages/batchSend", "POST", "v1", emulator.judge_batch_send),
        # §11: recall and read status; the paths' casing differs, as on DingTalk.
        ("/v1.0/robot/groupMessages/recall", "POST", "v1", emulator.judge_group_recall),
        ("/v1.0/robot/otoMessages/batchRecall", "POST", "v1", emulator.judge_oto_recall),
        ("/v1.0/robot/groupMessages/query", "POST", "v1", emulator.judge_group_query),
        ("/v1.0/robot/oToMessages/readStatus", "GET", "v1", emulator.judge_oto_read),
        # §13.1: Stream mode; §12.4: replies through a sessionWebhook.
        ("/v1.0/gateway/connections/open", "POST", "v1", emulator.judge_stream_open),
        ("/robot/sendBySession", "POST", "oapi", emulator.judge_session_send),
        # §14: DING.
        ("/v1.0/robot/ding/send", "POST", "v1", emulator.judge_ding_send),
        ("/v1.0/robot/ding/recall", "POST", "v1", emulator.judge_ding_recall),
        ("/v1.0/robot/ding/readStatuses/query", "POST", "v1", emulator.judge_ding_read),
        (
            "/topapi/message/corpconversation/asyncsend_v2",
            "POST",
            "oapi",
            emulator.judge_notice_send,
        ),
        (
            "/topapi/message/corpconversation/getsendprogress",
            "POST",
            "oapi",
            emulator.judge_notice_progress,
        ),
        (
            "/topapi/message/corpconversation/getsendresult",
            "POST",
            "oapi",
            emulator.judge_notice_result,
        ),
        ("/media/upload", "POST", "oapi", emulator.judge_upload),
    ]
    routes: list[BaseRoute] = [
        # oapi routes take every method and refuse the wrong ones themselves.
        Route(path, _endpoint(emulator, family, judge, method), methods=_methods(family, method))
        for path, method, family, judge in api
    ]
    control = _AppControl(emulator)
    return routes + json_routes(
        [
            ("/apps", "GET", control.list_apps),
            ("/apps", "POST", control.add_app),
            ("/apps/{name}", "GET", control.get_app),
            ("/apps/{name}", "PATCH", control.patch_app),
            ("/apps/{name}", "DELETE", control.delete_app),
            ("/apps/{name}/expire-tokens", "POST", control.expire_tokens),
            ("/media", "GET", control.list_media),
            ("/media/{media_id:path}", "GET", control.get_media),
            ("/notices", "GET", control.list_notices),
            ("/notices/{task_id}/read", "POST", control.read_notice),
            ("/app-messages", "GET", control.list_app_messages),
            ("/app-messages/read", "POST", control.read_app_message),
            ("/dings", "GET", control.list_dings),
            ("/dings/{ding_id}/read", "POST", control.read_ding),
            ("/people/post", "POST", control.post_as_user),
            ("/callbacks", "GET", control.list_callbacks),
            ("/stream", "GET", control.stream_state),
            ("/stream/drop", "POST", control.drop_stream),
            ("/stream/ignore-acks", "POST", control.ignore_acks),
        ]
    )
