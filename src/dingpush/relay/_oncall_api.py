"""The on-call part of the API: recall a message, list, show and acknowledge incidents.

The handlers here and the dashboard's forms share the functions below (:func:`incident_view`,
:func:`acknowledge_incident`), so the two cannot disagree. Who did it: the ``by`` of the
request's body when given, otherwise the label of the API token the caller used
(``api token #2``: its place in ``api_tokens``, never the token), or ``api`` on a relay
without tokens.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response

from ._http import HTTPProblem, json_answer, parse_json, read_body, require_json, token_matches
from ._incidents import Incident, IncidentState
from ._recall import recall_message
from ._relay import Relay

__all__ = [
    "ack_incident",
    "acknowledge_incident",
    "caller",
    "get_incident",
    "incident_view",
    "list_incidents",
    "recall",
    "token_label",
]

#: The longest name ``by`` may give.
NAME_MAX = 64
_LIST_MAX = 500


def token_label(request: Request, tokens: Sequence[str]) -> str:
    """``api token #N`` for the N-th of ``api_tokens`` the request carries; ``api`` without."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given:
        for number, token in enumerate(tokens, 1):
            if token_matches(given.strip(), [token]):
                return f"api token #{number}"
    return "api"


def check_name(value: object, where: str = "/by") -> str:
    """A person's name as given (``by``, the dashboard's name field): 1 to 64 printable chars."""
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
        raise HTTPProblem(400, f"by must be a name of 1 to {NAME_MAX} characters", pointer=where)
    name = value.strip()
    if not name.isprintable():
        raise HTTPProblem(400, "by must not contain control characters", pointer=where)
    return name


async def _optional_body(relay: Relay, request: Request) -> Mapping[str, typing.Any]:
    """The request's JSON object, or ``{}`` when it has no body (the body is optional)."""
    raw = await read_body(request, relay.settings.max_body)
    if not raw.strip():
        return {}
    require_json(request)
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise HTTPProblem(400, 'the body must be a JSON object: {"by": "alice"}', pointer="")
    unknown = [key for key in body if key != "by"]
    if unknown:
        raise HTTPProblem(
            400, f"{unknown[0]!r} is not a field of this request; it takes only by", pointer=""
        )
    return body


async def caller(relay: Relay, request: Request) -> str:
    body = await _optional_body(relay, request)
    if "by" in body:
        return check_name(body["by"])
    return token_label(request, relay.settings.api_tokens)


# -- recall -----------------------------------------------------------------------------------


async def recall(relay: Relay, request: Request) -> Response:
    who = await caller(relay, request)
    answer = await recall_message(relay, request.path_params["id"], who=who, via="api")
    return json_answer(answer)


# -- incidents --------------------------------------------------------------------------------


def incident_view(incident: Incident, *, timeline: bool = False) -> dict[str, typing.Any]:
    """An incident as the API answers it (no secret: labels, names, ids and times only)."""
    view: dict[str, typing.Any] = {
        "number": incident.number,
        "route": incident.route,
        "group_key": incident.group_key,
        "title": incident.title,
        "labels": dict(incident.labels),
        "policy": incident.policy,
        "state": str(incident.state),
        "opened_at": incident.opened_at,
        "closed_at": incident.closed_at,
        "step": incident.step,
        "due_at": incident.due_at,
        "targets": list(incident.targets),
        "message_ids": list(incident.message_ids),
        "acknowledged_by": incident.acknowledged_by,
    }
    if timeline:
        view["timeline"] = [
            {"at": e.at, "kind": str(e.kind), "who": e.who, "detail": e.detail}
            for e in incident.timeline
        ]
    return view


def parse_states(values: Sequence[str]) -> list[IncidentState]:
    states: list[IncidentState] = []
    for value in values:
        for part in value.split(","):
            try:
                states.append(IncidentState(part.strip()))
            except ValueError:
                known = ", ".join(s.value for s in IncidentState)
                raise HTTPProblem(400, f"state must be one of {known}", field="state") from None
    return states


def parse_number(value: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise HTTPProblem(404, f"no incident {value!r}: incidents have numbers (42)")
    return int(value)


async def find_incident(relay: Relay, value: str) -> Incident:
    number = parse_number(value)
    incident = await relay.incidents.get(number)
    if incident is None:
        raise HTTPProblem(404, f"no incident {number}")
    return incident


def _masked(relay: Relay, view: typing.Any) -> typing.Any:
    """A view with every configured secret masked (an alert's title or label may quote one)."""
    return json.loads(relay.redact(json.dumps(view, ensure_ascii=False)))


async def list_incidents(relay: Relay, request: Request) -> Response:
    store = relay.incidents
    query = request.query_params
    states = parse_states(query.getlist("state"))
    target = query.get("target") or None
    limit = query.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= _LIST_MAX:
        raise HTTPProblem(400, f"limit must be a whole number from 1 to {_LIST_MAX}", field="limit")
    found = await store.list_incidents(states=states, target=target, limit=int(limit))
    return json_answer(_masked(relay, {"items": [incident_view(i) for i in found]}))


async def get_incident(relay: Relay, request: Request) -> Response:
    incident = await find_incident(relay, request.path_params["number"])
    return json_answer(_masked(relay, incident_view(incident, timeline=True)))


async def acknowledge_incident(relay: Relay, incident: Incident, *, who: str, via: str) -> Incident:
    """Acknowledge an incident (the API and the dashboard), and tell its group who took it.

    A resolved or silenced incident cannot be acknowledged (409); a second acknowledgement
    keeps the first one and tells nobody again.
    """
    if incident.state is IncidentState.RESOLVED:
        raise HTTPProblem(409, f"incident {incident.number} is resolved already")
    if incident.state is IncidentState.SILENCED:
        raise HTTPProblem(
            409, f"incident {incident.number} is silenced: its escalation has stopped already"
        )
    before = incident.acknowledged_by
    acked = await relay.incidents.acknowledge(
        incident.number, who=who, via=via, now=relay.clock.time()
    )
    if before is None and acked.acknowledged_by is not None:
        await relay.announce(acked)
    return acked


async def ack_incident(relay: Relay, request: Request) -> Response:
    who = await caller(relay, request)
    incident = await find_incident(relay, request.path_params["number"])
    acked = await acknowledge_incident(relay, incident, who=who, via="api")
    return json_answer(_masked(relay, incident_view(acked, timeline=True)))
