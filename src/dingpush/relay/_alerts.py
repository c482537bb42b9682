"""The relay's alert receivers: Alertmanager, Grafana, any JSON hook, prometheus-webhook-dingtalk.

    POST /alertmanager/{route}[/{token}]     Alertmanager's webhook (version 4)
    POST /dingtalk/{route}/send              prometheus-webhook-dingtalk's path and payload
    POST /grafana/{route}[/{token}]          Grafana's webhook contact point
    POST /hooks/{route}[/{token}]            any JSON, rendered by the route's template

``{route}`` names a route table (``[routes.NAME]``). A body goes through
:func:`dingpush.alerts.process_alerts` (parse, route, render, mention) and the messages it makes
are committed to the outbox, all or none, through the relay's one enqueue path; the receiver
answers 200 only then. It answers 5xx when the outbox cannot commit (Alertmanager and Grafana
retry), and 4xx only for a body that can never succeed (Alertmanager drops it): 400 for what is
not JSON, 422 with a JSON pointer for JSON that breaks the sender's schema; neither is stored.

Each message's idempotency key is made of its route, the group key, the status, every alert's
fingerprint and status, its target, its incident's number (if it opens one) and a time bucket
of ``dedup_window`` seconds: a sender that
re-sends the same notification (its retry after a lost answer, a timeout) makes no second
message, while a reminder a ``repeat_interval`` later is a new one (unless the route's
``repeat_window`` holds it back).

Auth: the API's bearer tokens; or, for a route table with ``token``, that token as a bearer
token, in the ``X-Dingpush-Token`` header or as the path's last part (for tools that cannot send
headers). With neither configured the receivers are open, as the API is (on loopback only), and
refuse cross-site requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from dingpush import ConfigError
from dingpush.alerts import (
    AlertMessage,
    AlertOutcome,
    AlertSettings,
    MemoryRepeatLog,
    PayloadError,
    People,
    ReceiverKind,
    RepeatLog,
    Route,
    Templates,
    process_alerts,
)

from ._http import (
    HTTPProblem,
    authorized,
    cross_site,
    json_answer,
    problem,
    read_body,
    require_json,
    token_matches,
    unauthorized,
)
from ._oncall import OnCall
from .stores import StoreUnavailable

if typing.TYPE_CHECKING:
    from ._relay import Accepted, Relay

__all__ = ["DEDUP_WINDOW", "MENTION_WARNING", "OFF_LOOP_BYTES", "AlertReceivers"]

log = logging.getLogger("dingpush.relay")

#: Seconds within which the same notification sent again is the same message (idempotency).
DEDUP_WINDOW = 600.0
#: Bodies larger than this are parsed and rendered in a worker thread, off the event loop.
OFF_LOOP_BYTES = 16 * 1024
#: The header a tool that cannot send ``Authorization`` may carry a route's token in.
TOKEN_HEADER = "x-dingpush-token"
#: The target kinds that cannot receive, whose alert messages carry a signed ack link.
LINKED = ("robot", "pool")
#: Words that mark a route problem as a warning (a mention the target cannot make), not an error.
MENTION_WARNING = "cannot @-mention"

_KINDS: Mapping[str, ReceiverKind] = {
    "alertmanager": "alertmanager",
    "dingtalk": "alertmanager",
    "grafana": "grafana",
    "hooks": "generic",
}


class AlertReceivers:
    """The compiled alert configuration a relay serves its receivers from.

    Args:
        settings: ``[routes]``, ``[templates]`` and ``[people]``.
        tokens: per route table, the token a caller may present instead of an API token.
        repeats: where sent notifications are remembered for ``repeat_window`` (memory by
            default; a shared implementation lets several relays agree; its blocking calls
            are made in a worker thread).
        base_dir: where relative template files are read from.
        dedup_window: seconds within which a re-sent notification is the same message.
        templates: compiled templates (``settings`` are compiled when omitted).
        oncall: escalation policies and on-call schedules; with them, every firing
            notification opens (or joins) an incident and a resolved one closes it.
        policies: the policy of each route path (``ops/critical``) that follows one.

    Raises:
        TemplateError: a template does not compile (file, line and fix).
    """

    def __init__(
        self,
        settings: AlertSettings,
        *,
        tokens: Mapping[str, str] | None = None,
        repeats: RepeatLog | None = None,
        base_dir: Path | str | None = None,
        dedup_window: float = DEDUP_WINDOW,
        templates: Templates | None = None,
        oncall: OnCall | None = None,
        policies: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        #: ``[policies]`` and ``[schedules]``; with them, alerts open incidents (``_escalation``).
        self.oncall = oncall
        #: The escalation policy of each route path that has one (``ops/critical`` → ``page``).
        self.policies = dict(policies or {})
        unknown = sorted(set(tokens or {}) - set(settings.routes))
        if unknown:
            raise ConfigError(f"route tokens for route tables that do not exist: {unknown}")
        self.tokens = dict(tokens or {})
        if templates is None:
            templates = settings.compile(base_dir).templates
        self.templates = templates
        self.people = People(settings.people.values())
        self.repeats: RepeatLog = repeats if repeats is not None else MemoryRepeatLog()
        self._memory_log = isinstance(self.repeats, MemoryRepeatLog)
        self.dedup_window = dedup_window

    @property
    def routes(self) -> Mapping[str, Route]:
        return self.settings.routes

    def check(self, target_kinds: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """``(errors, warnings)`` of the routes against the relay's targets (name → kind)."""
        problems = self.settings.check(target_kinds)
        warnings = [p for p in problems if MENTION_WARNING in p]
        return [p for p in problems if MENTION_WARNING not in p], warnings

    def process(self, kind: ReceiverKind, table: str, body: object, relay: Relay) -> AlertOutcome:
        """Parse, route and render one body for route table ``table`` (no I/O)."""
        return process_alerts(
            kind,
            self.routes[table],
            typing.cast(typing.Any, body),
            people=self.people,
            templates=self.templates,
            clock=relay.clock,
            repeats=self.repeats,
            name=table,
            target_kinds={name: t.kind for name, t in relay.targets.items()},
        )

    def idempotency_key(self, repeat_key: str, target: str, index: int, now: float) -> str:
        """The key of one message: the same notification within ``dedup_window``, same key."""
        bucket = int(now // self.dedup_window) if self.dedup_window > 0 else 0
        text = f"{repeat_key}\x00{target}\x00{index}\x00{bucket}"
        return "alert:" + hashlib.sha256(text.encode()).hexdigest()[:40]

    def starlette_routes(self, relay: Relay) -> list[StarletteRoute]:
        """The receivers' HTTP routes (``create_app`` serves them beside the API)."""
        made: list[StarletteRoute] = []
        for prefix, kind in _KINDS.items():
            if prefix == "dingtalk":
                paths = ["/dingtalk/{route}/send"]
            else:
                paths = [f"/{prefix}/{{route}}", f"/{prefix}/{{route}}/{{token}}"]
            for path in paths:
                made.append(
                    StarletteRoute(
                        path,
                        _endpoint(self, relay, kind, prefix),
                        methods=["POST"],
                        name=f"alerts-{prefix}-{path.count('/')}",
                    )
                )
        return made

    # -- one request ---------------------------------------------------------------------------

    def _authorize(self, relay: Relay, request: Request, table: str) -> None:
        api_tokens = relay.settings.api_tokens
        route_token = self.tokens.get(table)
        if not api_tokens and route_token is None:
            why = cross_site(request, relay.hosts)
            if why is not None:
                raise HTTPProblem(
                    403,
                    f"refused: this request comes from another site ({why}), and neither the "
                    "relay nor this route has a token; set api_tokens in [relay] or token in "
                    f"[routes.{table}]",
                )
            return
        if api_tokens and authorized(request, api_tokens):
            return
        if route_token is not None:
            offered = [
                request.path_params.get("token"),
                request.headers.get(TOKEN_HEADER),
                _bearer(request),
            ]
            if any(o and token_matches(o.strip(), [route_token]) for o in offered):
                return
        raise unauthorized()

    async def receive(
        self, relay: Relay, request: Request, kind: ReceiverKind, prefix: str
    ) -> Response:
        table = request.path_params["route"]
        if table not in self.routes:
            # Before auth would say nothing more useful; names of tables are not secrets.
            known = ", ".join(sorted(self.routes)) or "none are configured"
            raise HTTPProblem(
                404,
                f"no route table named {table!r} for /{prefix}/…; the route tables are: {known} "
                "(add [routes.NAME] to the configuration)",
                pointer="",
            )
        self._authorize(relay, request, table)
        if "token" in request.path_params and table not in self.tokens:
            raise unauthorized()
        require_json(request)
        raw = await read_body(request, relay.settings.max_body)
        body = raw  # the alert parsers read JSON strictly themselves (pointer, 400/422)
        try:
            # A repeat log other than memory (a shared one) may block on I/O: off the loop too.
            if len(raw) > OFF_LOOP_BYTES or not self._memory_log:
                outcome = await asyncio.to_thread(self.process, kind, table, body, relay)
            else:
                outcome = self.process(kind, table, body, relay)
        except PayloadError as exc:
            raise HTTPProblem(
                exc.status, relay.redact(str(exc)), pointer=exc.pointer, rule=exc.rule
            ) from None
        now = relay.clock.time()
        numbers = await _incident_numbers(relay, outcome.messages, outcome.kind, now)
        batch: list[tuple[Accepted, str | None]] = []
        seen: dict[tuple[str, str], int] = {}
        for item in outcome.messages:
            target = relay.target(item.target, "")
            message = item.message
            number = numbers.get((item.route, item.group_key))
            if number is not None and relay.ack_links is not None and target.kind in LINKED:
                message = relay.ack_links.decorate(message, number)
            try:
                accepted = relay.check(target, message.to_payload())
            except HTTPProblem as exc:
                # The configuration made a message its target cannot carry (a keyword missing
                # from a template, say): not the sender's fault, and not fixed by retrying.
                raise HTTPProblem(
                    500,
                    f"route {item.route}: target {item.target!r} refuses the message rendered by "
                    f"template {item.template!r}: {exc.detail}; fix the route or the template",
                ) from None
            index = seen.get((item.repeat_key, item.target), 0)
            seen[(item.repeat_key, item.target)] = index + 1
            episode = item.repeat_key if number is None else f"{item.repeat_key}\x00#{number}"
            key = self.idempotency_key(episode, item.target, index, now)
            batch.append((accepted, key))
        answers = await relay.enqueue_many(batch) if batch else []
        if relay.escalation is not None and outcome.messages:
            # After the commit and before answering: a failure here is a 503, and the
            # sender's retry finds the same messages (their keys) and the same incident.
            await relay.escalation.notified(outcome.messages, answers, kind=outcome.kind)
        if self._memory_log:
            outcome.remember(self.repeats, now)
        else:
            await asyncio.to_thread(outcome.remember, self.repeats, now)
        failed_routes = {f.route for f in outcome.render_failures}
        for failure in outcome.render_failures:
            log.warning("alert template failed: %s", relay.redact(str(failure)))
        for problem_text in outcome.problems:
            log.warning("alert: %s", relay.redact(problem_text))
        for item, answer in zip(outcome.messages, answers, strict=True):
            if answer.created:
                relay.metrics.count("alerts", item.target, item.alerts)
                if item.route in failed_routes:
                    relay.metrics.count("alert_render_failures", item.target)
        return json_answer(
            {
                "status": "queued",
                "messages": [
                    {
                        "id": answer.id,
                        "target": item.target,
                        "route": item.route,
                        "template": item.template,
                        "alerts": item.alerts,
                        "duplicate": not answer.created,
                    }
                    for item, answer in zip(outcome.messages, answers, strict=True)
                ],
                "suppressed": [{"route": s.route, "alerts": s.alerts} for s in outcome.suppressed],
                "render_failures": [relay.redact(str(f)) for f in outcome.render_failures],
                "problems": [relay.redact(p) for p in outcome.problems],
            }
        )


async def _incident_numbers(
    relay: Relay, messages: Sequence[AlertMessage], kind: str, now: float
) -> dict[tuple[str, str], int]:
    """The incident of each firing alert group, opened before its messages are committed.

    Its number goes into the messages' idempotency keys: a group that fires, resolves and
    fires again within ``dedup_window`` sends the same notification twice, and the second is
    a new incident whose messages must reach the chat, not be taken for the first's. It is
    also what the signed ack links of webhook-robot messages name. ``notified`` finds the same
    incident after the commit; a sender's retry finds it too, and so the same keys.
    """
    if relay.escalation is None:
        return {}
    groups: dict[tuple[str, str], list[AlertMessage]] = {}
    for item in messages:
        groups.setdefault((item.route, item.group_key), []).append(item)
    numbers = {}
    for key, items in groups.items():
        if items[0].status != "resolved" and relay.escalation.opens(key[0], kind):
            incident = await relay.escalation.open_for(items[0], [i.target for i in items], now)
            numbers[key] = incident.number
    return numbers


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given if scheme.lower() == "bearer" and given else None


def _endpoint(
    receivers: AlertReceivers, relay: Relay, kind: ReceiverKind, prefix: str
) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        try:
            return await receivers.receive(relay, request, kind, prefix)
        except HTTPProblem as exc:
            return problem(exc)
        except StoreUnavailable as exc:
            return problem(
                HTTPProblem(
                    503,
                    "the outbox cannot commit right now, nothing was stored: retry later "
                    f"({relay.redact(str(exc))})",
                    headers={"Retry-After": "1"},
                )
            )

    return serve


_ANSWER_SCHEMA: dict[str, typing.Any] = {
    "type": "object",
    "required": ["status", "messages", "suppressed", "render_failures", "problems"],
    "properties": {
        "status": {"const": "queued"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "target": {"type": "string"},
                    "route": {"type": "string"},
                    "template": {"type": "string"},
                    "alerts": {"type": "integer"},
                    "duplicate": {"type": "boolean"},
                },
            },
        },
        "suppressed": {"type": "array", "items": {"type": "object"}},
        "render_failures": {"type": "array", "items": {"type": "string"}},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
_SUMMARIES = {
    "alertmanager": "Alertmanager's webhook (version 4), through route table {route}",
    "dingtalk": "prometheus-webhook-dingtalk's path: Alertmanager's webhook, route table {route}",
    "grafana": "Grafana's webhook contact point, through route table {route}",
    "hooks": "Any JSON, rendered by route table {route}'s template",
}


async def _not_served(relay: Relay, request: Request) -> Response:  # pragma: no cover
    raise AssertionError("described only: the receivers are served by AlertReceivers")


def openapi_paths() -> dict[str, dict[str, typing.Any]]:
    """The receivers' operations for ``/openapi.json`` (``create_app`` adds them when served)."""
    from ._api import Endpoint, Param
    from ._openapi import _operation

    route = Param("route", "path", {"type": "string"}, "A route table ([routes.NAME]).", True)
    token = Param(
        "token",
        "path",
        {"type": "string"},
        "The route table's token, for senders without headers.",
        True,
    )
    answers: dict[int, tuple[str, str | None]] = {
        200: ("Every message committed to the outbox (or held back as a repeat).", None),
        400: ("Not JSON; `pointer` says where. Never stored: do not retry.", "Problem"),
        401: ("No API token, nor the route's token.", "Problem"),
        404: ("No such route table.", "Problem"),
        413: ("The body is larger than max_body.", "Problem"),
        422: (
            "JSON that breaks the sender's schema; `pointer` and `rule`. Never stored.",
            "Problem",
        ),
        503: ("The outbox cannot commit now; nothing was stored. Retry.", "Problem"),
    }
    paths: dict[str, dict[str, typing.Any]] = {}
    for prefix in _KINDS:
        variants = (
            [("/dingtalk/{route}/send", (route,))]
            if prefix == "dingtalk"
            else [
                (f"/{prefix}/{{route}}", (route,)),
                (f"/{prefix}/{{route}}/{{token}}", (route, token)),
            ]
        )
        for path, params in variants:
            endpoint = Endpoint(
                "POST",
                path,
                f"alerts_{prefix}{'_token' if len(params) > 1 else ''}",
                _SUMMARIES[prefix].format(route="{route}"),
                _not_served,
                "alerts",
                answers,
                params=params,
                description="Answers 200 only once every message the body made is committed; "
                "see docs/alerts.md.",
            )
            operation = _operation(endpoint)
            operation["responses"]["200"]["content"] = {
                "application/json": {"schema": _ANSWER_SCHEMA}
            }
            operation["responses"]["415"] = {
                "description": "The body is not declared as application/json.",
                "content": operation["responses"]["400"]["content"],
            }
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {}}},
            }
            if len(params) > 1:
                operation["security"] = []  # the token in the path stands for it
            paths[path] = {"post": operation}
    return paths
