"""The relay's HTTP API, declared once: ``ENDPOINTS`` builds both the routes and ``/openapi.json``.

Each :class:`Endpoint` names its method, path, handler, parameters, request body and answers
(schemas by name from ``_schemas.py``); ``routes()`` wraps the handlers (auth, problems, 503 on
a store that cannot commit) and ``_openapi.document()`` writes the description from the same
list, so the two cannot drift apart.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ._bulk_retry import from_json, retry_dead_letters
from ._http import (
    HTTPProblem,
    authorized,
    cross_site,
    escape_pointer,
    json_answer,
    parse_json,
    problem,
    read_body,
    require_json,
    unauthorized,
)
from ._ingress import robot_send as _ingress
from ._oncall_api import ack_incident, get_incident, list_incidents, recall
from ._relay import Accepted, Relay
from .stores import (
    IncidentNotFound,
    InvalidTransition,
    MessageNotFound,
    OutboxMessage,
    Page,
    Status,
    StoreUnavailable,
)

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "Param",
    "message_detail",
    "message_page",
    "retry_failed",
    "routes",
]

log = logging.getLogger("dingpush.relay")

Handler = Callable[[Relay, Request], Awaitable[Response]]

#: The most messages one batch may carry.
MAX_BATCH = 1000
_KEY_MAX = 200


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter."""

    name: str
    where: typing.Literal["path", "query", "header"]
    schema: Mapping[str, typing.Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation of the API: how to serve it and how to describe it."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    tag: str
    responses: Mapping[int, tuple[str, str | None]]  # status → (description, schema name)
    params: Sequence[Param] = ()
    body: str | None = None  # the request body's schema name
    auth: bool = True
    description: str = ""
    media_type: str = "application/json"
    #: False: the body may be left out (an empty request is not refused for its media type).
    body_required: bool = True
    extra: Mapping[str, typing.Any] = field(default_factory=dict)


def _store_unavailable(exc: StoreUnavailable, relay: Relay) -> HTTPProblem:
    return HTTPProblem(
        503,
        "the outbox cannot commit right now, nothing was stored: retry later "
        f"({relay.redact(str(exc))})",
        headers={"Retry-After": "1"},
    )


def _guard(endpoint: Endpoint, relay: Relay, request: Request) -> None:
    """Refuse what a web page could make the user's browser send to a relay without tokens."""
    if not relay.settings.api_tokens:
        why = cross_site(request, relay.hosts)
        if why is not None:
            raise HTTPProblem(
                403,
                f"refused: this request comes from another site ({why}), and this relay has no "
                "API tokens, so a web page must not change anything through it. Call it from "
                "a tool, or set api_tokens in [relay] and send Authorization: Bearer …",
            )
    if endpoint.body is not None and (endpoint.body_required or _has_body(request)):
        require_json(request)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _wrap(endpoint: Endpoint, relay: Relay) -> Callable[[Request], Awaitable[Response]]:
    # The ingress answers in DingTalk's format and checks the same things itself.
    guarded = endpoint.method != "GET" and endpoint.tag != "ingress"

    async def serve(request: Request) -> Response:
        try:
            if endpoint.auth and not authorized(request, relay.settings.api_tokens):
                raise unauthorized()
            if guarded:
                _guard(endpoint, relay, request)
            return await endpoint.handler(relay, request)
        except HTTPProblem as exc:
            return problem(exc)
        except StoreUnavailable as exc:
            return problem(_store_unavailable(exc, relay))
        except (MessageNotFound, IncidentNotFound) as exc:
            return problem(HTTPProblem(404, str(exc)))
        except InvalidTransition as exc:
            return problem(HTTPProblem(409, relay.redact(str(exc))))

    return serve


def routes(relay: Relay) -> list[Route]:
    return [
        Route(e.path, _wrap(e, relay), methods=[e.method], name=e.operation_id) for e in ENDPOINTS
    ]


# -- handlers ---------------------------------------------------------------------------------


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > _KEY_MAX:
        raise HTTPProblem(
            400, f"Idempotency-Key must be 1 to {_KEY_MAX} characters", field="Idempotency-Key"
        )
    return key


async def _body(relay: Relay, request: Request) -> typing.Any:
    return parse_json(await read_body(request, relay.settings.max_body))


def _envelope(
    relay: Relay, item: object, warnings: list[dict[str, str]], where: str = ""
) -> Accepted:
    if not isinstance(item, dict):
        raise HTTPProblem(
            400, 'the body must be a JSON object: {"target": …, "message": {…}}', pointer=where
        )
    if "message" not in item:
        raise HTTPProblem(400, "message is missing", pointer=f"{where}/message")
    target = relay.target(item.get("target"), f"{where}/target")
    accepted = relay.check(target, item["message"], f"{where}/message")
    if "msgUuid" in item["message"]:
        warnings.append(
            {
                "pointer": f"{where}/message/msgUuid",
                "detail": "msgUuid is ignored: the relay sends the message with its own id as "
                "msgUuid; to make your retries safe, send an Idempotency-Key header "
                "(idempotency_key in a batch)",
            }
        )
    for unknown in accepted.unknown:
        warnings.append({"pointer": f"{where}/message{unknown.pointer}", "detail": str(unknown)})
    envelope = ("target", "message", "idempotency_key") if where else ("target", "message")
    _warn_unknown(warnings, item, envelope, where)
    return accepted


def _warn_unknown(
    warnings: list[dict[str, str]], body: Mapping[str, object], known: Sequence[str], where: str
) -> None:
    for key in body:
        if key not in known:
            warnings.append(
                {
                    "pointer": f"{where}/{escape_pointer(key)}",
                    "detail": f"{key!r} is not a field of the request and was ignored; "
                    f"the fields are {', '.join(known)}",
                }
            )


async def send_message(relay: Relay, request: Request) -> Response:
    key = _key(request)
    warnings: list[dict[str, str]] = []
    accepted = _envelope(relay, await _body(relay, request), warnings)
    answer = await relay.enqueue(accepted, key)
    return json_answer(
        {
            "id": answer.id,
            "status": "queued",
            "duplicate": not answer.created,
            "warnings": warnings,
        },
        status=202,
    )


async def send_batch(relay: Relay, request: Request) -> Response:
    body = await _body(relay, request)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise HTTPProblem(
            400, 'the body must be {"messages": [{"target": …, "message": {…}}, …]}', pointer=""
        )
    items = body["messages"]
    if not 1 <= len(items) <= MAX_BATCH:
        raise HTTPProblem(
            400, f"a batch carries 1 to {MAX_BATCH} messages, not {len(items)}", pointer="/messages"
        )
    warnings: list[dict[str, str]] = []
    _warn_unknown(warnings, body, ("messages",), "")
    batch: list[tuple[Accepted, str | None]] = []
    for index, item in enumerate(items):
        where = f"/messages/{index}"
        accepted = _envelope(relay, item, warnings, where)
        key = item.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= _KEY_MAX):
            raise HTTPProblem(
                400,
                f"idempotency_key must be a string of 1 to {_KEY_MAX} characters",
                pointer=f"{where}/idempotency_key",
            )
        batch.append((accepted, key))
    answers = await relay.enqueue_many(batch)
    return json_answer(
        {
            "ids": [a.id for a in answers],
            "duplicates": [not a.created for a in answers],
            "status": "queued",
            "warnings": warnings,
        },
        status=202,
    )


def _status(value: str | None) -> Status | None:
    if value is None:
        return None
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise HTTPProblem(400, f"status must be one of {known}", field="status") from None


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise HTTPProblem(400, "limit must be a whole number from 1 to 500", field="limit")
    return int(value)


async def message_page(relay: Relay, query: Mapping[str, str]) -> Page[OutboxMessage]:
    """A page of the outbox for ``status``, ``target``, ``limit`` and ``cursor`` in ``query``.

    The API's ``GET /v1/messages`` and the dashboard's list both read through here, so they
    accept and refuse the same filters (400, or 404 naming the known targets).
    """
    target = query.get("target")
    if target is not None and target not in relay.targets:
        relay.target(target, "")  # a 404 naming the known targets
    try:
        return await relay.store.list_messages(
            status=_status(query.get("status")),
            target=target,
            limit=_limit(query.get("limit")),
            cursor=query.get("cursor") or None,
        )
    except ValueError as exc:  # a cursor we did not make
        raise HTTPProblem(400, str(exc), field="cursor") from None


async def message_detail(relay: Relay, message_id: str) -> dict[str, typing.Any]:
    """Everything about one message, as ``GET /v1/messages/{id}`` answers (secrets masked)."""
    message = await relay.store.get(message_id)
    attempts = await relay.store.attempts(message_id)
    originals = await relay.store.digest_originals(message_id)
    return relay.detail(message, attempts, originals)


#: The field (API body) and form field (dashboard) that confirm sending a cancelled message.
RESEND_CANCELLED = "resend_cancelled"


async def retry_failed(
    relay: Relay, message_id: str, *, resend_cancelled: bool = False
) -> dict[str, typing.Any]:
    """Queue a failed message again and wake its target's dispatcher (the API and dashboard).

    A cancelled message (recalled while it was queued) is sent only with ``resend_cancelled``:
    someone took it back on purpose, so a retry must say so and be confirmed (409 otherwise).
    """
    found = await relay.store.get(message_id)
    if found.cancelled and not resend_cancelled:
        raise HTTPProblem(
            409,
            f"message {message_id!r} was recalled before it was sent "
            f"({relay.redact(found.last_error or 'cancelled')}); retrying it sends it after "
            f'all. To send it anyway, post {{"{RESEND_CANCELLED}": true}}',
            field=RESEND_CANCELLED,
        )
    message = await relay.store.retry(message_id)
    relay.dispatcher.kick(message.target)
    return relay.summary(message)


async def list_messages(relay: Relay, request: Request) -> Response:
    page = await message_page(relay, request.query_params)
    return json_answer(
        {"items": [relay.summary(m) for m in page.items], "next_cursor": page.next_cursor}
    )


async def get_message(relay: Relay, request: Request) -> Response:
    return json_answer(await message_detail(relay, request.path_params["id"]))


async def retry_message(relay: Relay, request: Request) -> Response:
    raw = await read_body(request, relay.settings.max_body)
    resend = False
    if raw.strip():
        require_json(request)
        body = parse_json(raw)
        if not isinstance(body, dict) or set(body) - {RESEND_CANCELLED}:
            raise HTTPProblem(
                400,
                f'the body is optional; it takes only {{"{RESEND_CANCELLED}": true}}',
                pointer="",
            )
        resend = body.get(RESEND_CANCELLED, False)
        if not isinstance(resend, bool):
            raise HTTPProblem(
                400, f"{RESEND_CANCELLED} must be true or false", pointer=f"/{RESEND_CANCELLED}"
            )
    answer = await retry_failed(relay, request.path_params["id"], resend_cancelled=resend)
    return json_answer(answer)


async def retry_messages(relay: Relay, request: Request) -> Response:
    retry = from_json(relay, await _body(relay, request))
    return json_answer(await retry_dead_letters(relay, retry))


async def list_targets(relay: Relay, request: Request) -> Response:
    return json_answer({"targets": await relay.target_views()})


async def healthz(relay: Relay, request: Request) -> Response:
    return json_answer({"status": "ok"})


async def readyz(relay: Relay, request: Request) -> Response:
    """Ready: started, delivering, and a real write to the outbox commits (probed at most
    once every ``Relay.probe_interval`` seconds, so a full disk or an immutable file shows)."""
    if not relay.started or not relay.dispatcher.running:
        raise HTTPProblem(503, "not ready: the relay is starting or stopping")
    why = await relay.outbox_problem()
    if why is not None:
        # Not the wording of a refused write ("nothing was stored"): a probe stores nothing.
        raise HTTPProblem(
            503, f"not ready: the outbox cannot take writes: {why}", headers={"Retry-After": "1"}
        )
    return json_answer({"status": "ready"})


async def metrics(relay: Relay, request: Request) -> Response:
    stats = await relay.store.stats(window=relay.settings.stats_window)
    depth = {name: figures.backlog for name, figures in stats.targets.items()}
    text = relay.metrics.render(relay.targets, depth)
    return PlainTextResponse(relay.redact(text), media_type="text/plain; version=0.0.4")


_ID = Param("id", "path", {"type": "string"}, "The message id (also its msgUuid).", True)
_NUMBER = Param(
    "number", "path", {"type": "integer", "minimum": 1}, "The incident's number (#42).", True
)
_IDEMPOTENCY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": _KEY_MAX, "pattern": r"\S"},
    "A key of yours: the same key again returns the first message's id and stores nothing.",
)
_PROBLEMS = {
    400: ("Malformed JSON or envelope; `pointer` says where.", "Problem"),
    401: ("No valid bearer token.", "Problem"),
}
_STORE_DOWN = {503: ("The outbox cannot commit now; nothing was stored. Retry.", "Problem")}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/messages",
        "sendMessage",
        "Queue a message for a target",
        send_message,
        "messages",
        {
            202: ("Committed to the outbox.", "Accepted"),
            **_PROBLEMS,
            404: ("No such target.", "Problem"),
            413: ("The body is larger than max_body.", "Problem"),
            422: ("The message breaks a rule; `field` and `rule` say which.", "Problem"),
            **_STORE_DOWN,
        },
        params=(_IDEMPOTENCY,),
        body="SendRequest",
        description="Answers 202 only once the message is durably in the outbox.",
    ),
    Endpoint(
        "POST",
        "/v1/messages:batch",
        "sendBatch",
        "Queue several messages, all or none",
        send_batch,
        "messages",
        {
            202: ("All committed to the outbox.", "BatchAccepted"),
            **_PROBLEMS,
            404: ("No such target.", "Problem"),
            413: ("The body is larger than max_body.", "Problem"),
            422: ("A message breaks a rule; `pointer` says which.", "Problem"),
            **_STORE_DOWN,
        },
        body="BatchRequest",
    ),
    Endpoint(
        "GET",
        "/v1/messages",
        "listMessages",
        "List messages, newest first",
        list_messages,
        "messages",
        {
            200: ("A page of messages.", "MessagePage"),
            **_PROBLEMS,
            404: ("No such target.", "Problem"),
            **_STORE_DOWN,
        },
        params=(
            Param(
                "status",
                "query",
                {"type": "string", "enum": [s.value for s in Status]},
                "Only messages in this status.",
            ),
            Param("target", "query", {"type": "string"}, "Only messages to this target."),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                "Page size.",
            ),
            Param("cursor", "query", {"type": "string"}, "next_cursor of the previous page."),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/messages/{id}",
        "getMessage",
        "A message: status, payload, attempts, digest links",
        get_message,
        "messages",
        {
            200: ("The message.", "MessageDetail"),
            401: _PROBLEMS[401],
            404: ("No such message.", "Problem"),
            **_STORE_DOWN,
        },
        params=(_ID,),
    ),
    Endpoint(
        "POST",
        "/v1/messages/{id}/retry",
        "retryMessage",
        "Queue a failed message again",
        retry_message,
        "messages",
        {
            200: ("Queued again, with a fresh attempt count.", "MessageSummary"),
            400: _PROBLEMS[400],
            401: _PROBLEMS[401],
            404: ("No such message.", "Problem"),
            409: (
                "The message is not failed, or it was cancelled (recalled before it was sent) "
                "and the body does not confirm resend_cancelled.",
                "Problem",
            ),
            413: ("The body is larger than max_body.", "Problem"),
            **_STORE_DOWN,
        },
        params=(_ID,),
        body="RetryRequest",
        body_required=False,
        description=(
            "A failed message goes back to the queue with a fresh attempt count; its history "
            "is kept. A cancelled one (recalled while it was queued: errcode 'cancelled') was "
            'taken back on purpose: it is sent again only with {"resend_cancelled": true}, '
            "409 otherwise."
        ),
    ),
    Endpoint(
        "POST",
        "/v1/messages:retry",
        "retryMessages",
        "Queue dead letters again in bulk: by target, error and time",
        retry_messages,
        "messages",
        {
            200: ("Queued again (or, with dry_run, only counted), oldest first.", "RetryResult"),
            **_PROBLEMS,
            404: ("No such target.", "Problem"),
            413: ("The body is larger than max_body.", "Problem"),
            **_STORE_DOWN,
        },
        body="RetryFilter",
        description=(
            "Every failed message the filter selects goes back to the queue with a fresh "
            "attempt count, as POST /v1/messages/{id}/retry does for one: e.g. "
            '{"target": "ops", "errcode": 300001} once a revoked token is replaced, or '
            '{"error": "TransportError", "failed_since": …} after an outage. At most limit '
            "(1,000 by default) a request; more says whether others are left."
        ),
    ),
    Endpoint(
        "POST",
        "/v1/messages/{id}/recall",
        "recallMessage",
        "Recall a delivered app-robot message (a queued one is cancelled)",
        recall,
        "messages",
        {
            200: ("Recalled (or cancelled before sending); see outcome.", "RecallResult"),
            400: _PROBLEMS[400],
            401: _PROBLEMS[401],
            404: ("No such message.", "Problem"),
            409: (
                "It cannot be recalled: a webhook robot's or a work notification, being sent, "
                "failed, or past DingTalk's 24 h window for one-to-one messages.",
                "Problem",
            ),
            413: ("The body is larger than max_body.", "Problem"),
            502: ("DingTalk refused the recall (errcode and advice in detail).", "Problem"),
            503: ("DingTalk or the outbox failed for now; retry after Retry-After.", "Problem"),
        },
        params=(_ID,),
        body="RecallRequest",
        body_required=False,
        description=(
            "Takes every processQueryKey of the message back out of the chat through the "
            "app's API (protocol §11: 20 keys a call; one-to-one messages within 24 hours). A "
            "digest recalls as one message: recalling it, or an original it carries, recalls "
            "the whole digest. A message still queued is cancelled instead (it becomes a dead "
            "letter with errcode 'cancelled'). Webhook robots cannot recall (no "
            "processQueryKey, protocol §11): 409. The recall is recorded on the message "
            "(recalled, and reply.recall) and on its incident's timeline. The optional body "
            'names who recalls ({"by": "alice"}); the API token\'s label otherwise.'
        ),
    ),
    Endpoint(
        "GET",
        "/v1/incidents",
        "listIncidents",
        "Incidents of the on-call loop, newest first",
        list_incidents,
        "incidents",
        {
            200: ("Incidents (without their timelines).", "IncidentList"),
            400: _PROBLEMS[400],
            401: _PROBLEMS[401],
            **_STORE_DOWN,
        },
        params=(
            Param(
                "state",
                "query",
                {"type": "string", "enum": ["open", "acknowledged", "silenced", "resolved"]},
                "Only incidents in this state (repeat it, or separate states by commas).",
            ),
            Param("target", "query", {"type": "string"}, "Only incidents sent to this target."),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                "At most this many.",
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/incidents/{number}",
        "getIncident",
        "An incident with its timeline",
        get_incident,
        "incidents",
        {
            200: ("The incident and its timeline, oldest event first.", "IncidentDetail"),
            401: _PROBLEMS[401],
            404: ("No such incident.", "Problem"),
            **_STORE_DOWN,
        },
        params=(_NUMBER,),
    ),
    Endpoint(
        "POST",
        "/v1/incidents/{number}/ack",
        "ackIncident",
        "Acknowledge an incident: its escalation stops",
        ack_incident,
        "incidents",
        {
            200: ("Acknowledged (a second ack keeps the first one).", "IncidentDetail"),
            400: _PROBLEMS[400],
            401: _PROBLEMS[401],
            404: ("No such incident.", "Problem"),
            409: ("The incident is resolved.", "Problem"),
            413: ("The body is larger than max_body.", "Problem"),
            **_STORE_DOWN,
        },
        params=(_NUMBER,),
        body="AckRequest",
        body_required=False,
        description=(
            "Recorded with who (the optional body's by, or the API token's label) and "
            'via "api"; the incident\'s groups are told "acknowledged by …".'
        ),
    ),
    Endpoint(
        "GET",
        "/v1/targets",
        "listTargets",
        "Targets: backlog, sent recently, cool-down, last error",
        list_targets,
        "targets",
        {200: ("Every target.", "TargetList"), 401: _PROBLEMS[401], **_STORE_DOWN},
    ),
    Endpoint(
        "GET",
        "/healthz",
        "healthz",
        "The process is up",
        healthz,
        "operations",
        {200: ("Alive.", "Health")},
        auth=False,
    ),
    Endpoint(
        "GET",
        "/readyz",
        "readyz",
        "The outbox takes writes and the dispatcher runs",
        readyz,
        "operations",
        {200: ("Ready.", "Health"), 503: ("Not ready.", "Problem")},
        auth=False,
    ),
    Endpoint(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics",
        metrics,
        "operations",
        {200: ("Prometheus text exposition format.", None), **_STORE_DOWN},
        auth=False,
        media_type="text/plain",
    ),
    Endpoint(
        "POST",
        "/robot/send",
        "robotSend",
        "DingTalk-compatible ingress for existing webhook tools",
        _ingress,
        "ingress",
        {
            200: (
                "DingTalk's answer: errcode 0 once committed, DingTalk's codes otherwise.",
                "DingTalkReply",
            ),
            503: ("The outbox cannot commit now (errcode -1); retry.", "DingTalkReply"),
        },
        params=(
            Param(
                "access_token",
                "query",
                {"type": "string"},
                "The target's relay ingress token (not the robot's DingTalk token).",
                True,
            ),
            Param("timestamp", "query", {"type": "string"}, "加签: milliseconds since the epoch."),
            Param("sign", "query", {"type": "string"}, "加签: Base64 HMAC-SHA256 (protocol §1.2)."),
        ),
        body="RobotMessage",
        auth=False,
        description=(
            "Point DingtalkChatbot, Grafana, Jenkins or a CI plugin at "
            "http://RELAY/robot/send?access_token=RELAY_TOKEN: the message goes through the "
            "outbox (durable, paced, coalesced). Answers in DingTalk's format."
        ),
    ),
)
