"""The dashboard's template playground: a route or template, a sample or pasted body, the message.

``GET /ui/playground`` shows the form; ``POST /ui/playground/render`` (JSON in, JSON out) runs
the body through :func:`dingpush.alerts.process_alerts` with the relay's own routes, templates
and people — nothing is stored or sent — and answers each message as the chat view renders it,
with its size in bytes and who it mentions. ``static/playground.js`` calls it as you type.

The render endpoint takes only JSON with the page's CSRF token in ``X-CSRF-Token`` (a custom
header: no other site can send it without a preflight the relay never grants), from a signed-in
session when the relay has API tokens.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import typing

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._dashboard_views import channel_payload
from ._http import HTTPProblem, parse_json, read_body, require_json

if typing.TYPE_CHECKING:
    from dingpush.alerts import ReceiverKind, Templates

    from ._dashboard import _Dashboard

__all__ = ["PLAYGROUND_SAMPLES", "playground_routes"]

#: The samples offered, with their labels (``dingpush.alerts.SAMPLES`` names).
PLAYGROUND_SAMPLES = (
    ("alertmanager-firing", "Alertmanager: firing"),
    ("alertmanager-resolved", "Alertmanager: resolved"),
    ("alertmanager-storm", "Alertmanager: a 50-alert group"),
    ("grafana-firing", "Grafana: firing"),
    ("generic-gitlab", "Any JSON: a GitLab pipeline"),
)
_KINDS = ("alertmanager", "grafana", "generic")
_LIMIT = 1024 * 1024
_PREVIEW = "(preview)"


class _Playground:
    def __init__(self, dashboard: _Dashboard) -> None:
        self.dashboard = dashboard
        self.relay = dashboard.relay
        self._builtin: Templates | None = None

    def _templates(self) -> Templates:
        if self.relay.alerts is not None:
            return self.relay.alerts.templates
        if self._builtin is None:
            from dingpush.alerts import Templates

            self._builtin = Templates()
        return self._builtin

    async def page(self, request: Request) -> Response:
        from dingpush.alerts import sample

        dashboard = self.dashboard
        session = dashboard.auth.session(request)
        if session is None:
            return dashboard._to_login(request)
        alerts = self.relay.alerts
        samples = {}
        for name, _ in PLAYGROUND_SAMPLES:
            kind, body = sample(name)
            samples[name] = {"kind": kind, "body": json.dumps(body, indent=2, ensure_ascii=False)}
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return dashboard._page(
            request,
            "dashboard/playground.html",
            session,
            page_title="Template playground",
            route_names=sorted(alerts.routes) if alerts is not None else [],
            template_names=list(self._templates().names),
            samples=PLAYGROUND_SAMPLES,
            sample_bodies=samples,
            first_body=samples[PLAYGROUND_SAMPLES[0][0]]["body"],
            render_url=f"{root}/ui/playground/render",
        )

    async def render(self, request: Request) -> Response:
        dashboard = self.dashboard
        session = dashboard.auth.session(request)
        if session is None:
            return JSONResponse({"error": "sign in again"}, status_code=401)
        try:
            require_json(request)
            given = request.headers.get("x-csrf-token", "")
            if dashboard.auth.required and not hmac.compare_digest(
                given.encode(), session.csrf.encode()
            ):
                raise HTTPProblem(403, "this request did not come from the playground's page")
            request_body = parse_json(await read_body(request, _LIMIT))
            if not isinstance(request_body, dict):
                raise HTTPProblem(400, "send a JSON object")
            answer = self._render(request_body)
        except HTTPProblem as exc:
            return JSONResponse({"error": exc.detail}, status_code=exc.status)
        text = self.relay.redact(json.dumps(answer, ensure_ascii=False))
        return Response(text, media_type="application/json", headers={"Cache-Control": "no-store"})

    def _render(self, given: dict[str, typing.Any]) -> dict[str, typing.Any]:
        from dingpush.alerts import PayloadError, Route, process_alerts

        alerts = self.relay.alerts
        table = str(given.get("route") or "")
        template = str(given.get("template") or "") or None
        kind = given.get("kind") or "alertmanager"
        if kind not in _KINDS:
            raise HTTPProblem(400, f"kind is one of {', '.join(_KINDS)}")
        payload = given.get("payload")
        if not isinstance(payload, str):
            raise HTTPProblem(400, "payload is the body's JSON text")
        if alerts is not None and table:
            if table not in alerts.routes:
                raise HTTPProblem(404, f"no route table named {table!r}")
            root = alerts.routes[table]
            people = alerts.people
        else:
            root, people, table = Route(targets=[_PREVIEW]), None, table or "preview"
        if template is not None:
            if template not in self._templates():
                raise HTTPProblem(404, f"no template named {template!r}")
            root = dataclasses.replace(root, template=template)
        try:
            outcome = process_alerts(
                typing.cast("ReceiverKind", kind),
                root,
                payload.encode("utf-8"),
                people=people,
                templates=self._templates(),
                clock=self.relay.clock,
                name=table,
                target_kinds={n: t.kind for n, t in self.relay.targets.items()},
            )
        except PayloadError as exc:
            return {"error": str(exc), "pointer": exc.pointer, "messages": []}
        renderer = self.dashboard.renderer
        messages = []
        for item in outcome.messages:
            body = item.message.to_payload()
            shown, channel = channel_payload(self.relay, item.target, body)
            html = renderer.render(
                renderer.view(shown, channel=channel),
                sender=item.target,
                time=self.relay.clock.time(),
            )
            at = item.message.mentions
            who = [*(at.user_ids if at else ()), *(at.mobiles if at else ())]
            if at is not None and at.all:
                who.append("all")
            messages.append(
                {
                    "target": item.target,
                    "route": item.route,
                    "template": item.template,
                    "alerts": item.alerts,
                    "bytes": len(json.dumps(body, ensure_ascii=False).encode("utf-8")),
                    "mentions": ["@" + w for w in who],
                    "html": str(html),
                }
            )
        return {
            "messages": messages,
            "problems": list(outcome.problems),
            "render_failures": [str(f) for f in outcome.render_failures],
        }


def playground_routes(dashboard: _Dashboard) -> list[BaseRoute]:
    """``/ui/playground`` and its render endpoint, bound to the dashboard's auth and renderer."""
    view = _Playground(dashboard)
    return [
        Route("/ui/playground", dashboard.guarded(view.page), methods=["GET"]),
        Route("/ui/playground/render", view.render, methods=["POST"]),
    ]
