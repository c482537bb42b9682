"""The dashboard's Alerts: open incidents, and one incident with its timeline.

``GET /ui/alerts`` lists the incidents not resolved yet (``?state=`` shows others): number,
title, route, state, age, who acknowledged. ``GET /ui/alerts/{n}`` shows one with its timeline
(sent, read by, DING'd, acknowledged, silenced, resolved, recalled; each with a sign and words,
times in the route's ``timezone``, else the relay's, else the machine's), an Acknowledge form
and a Recall… link (a confirmation page, then every delivered app message of the incident is
recalled). Both pages poll their changing parts like the rest of the dashboard. The data comes
from the API's own functions (:func:`incident_view`, :func:`acknowledge_incident`,
:func:`recall_message`), so the dashboard and ``/v1/incidents`` cannot disagree.
"""

from __future__ import annotations

import datetime
import typing
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dingpush.web import TimeLabel

from ._http import HTTPProblem
from ._incidents import EventKind, Incident, IncidentState
from ._oncall_api import acknowledge_incident, check_name, find_incident, parse_states
from ._recall import recall_message

if typing.TYPE_CHECKING:
    from ._dashboard import _Dashboard
    from ._relay import Relay

__all__ = ["EVENT_SIGNS", "STATE_SIGNS", "alerts_routes", "zone_for"]

#: A sign and a word for each kind of timeline entry: never told by colour or icon alone.
EVENT_SIGNS: Mapping[EventKind, tuple[str, str]] = {
    # Signs of common fonts (no emoji font needed), like the outbox's status signs.
    EventKind.OPENED: ("⚑", "opened"),
    EventKind.SENT: ("✉", "sent"),
    EventKind.READ: ("◉", "read by"),
    EventKind.DING: ("☎", "DING'd"),
    EventKind.NOTIFIED: ("➜", "notified"),
    EventKind.ACKNOWLEDGED: ("☑", "acknowledged"),
    EventKind.SILENCED: ("⊘", "silenced"),
    EventKind.RESOLVED: ("✓", "resolved"),
    EventKind.RECALLED: ("↶", "recalled"),
    EventKind.NOTE: ("•", "note"),
}
STATE_SIGNS: Mapping[IncidentState, str] = {
    IncidentState.OPEN: "!",
    IncidentState.ACKNOWLEDGED: "☑",
    IncidentState.SILENCED: "⊘",
    IncidentState.RESOLVED: "✓",
}
#: What the list shows unless ``?state=`` says otherwise: every incident not closed.
ACTIVE = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.SILENCED)
_LIST_LIMIT = 200


def zone_for(relay: Relay, route: str) -> datetime.tzinfo | None:
    """The zone times of ``route``'s incidents are shown in: its ``timezone`` (inherited from
    the route's parents), else the relay's, else None (the machine's)."""
    name: str | None = None
    if relay.alerts is not None:
        top = route.split("/", 1)[0]
        tree = relay.alerts.settings.routes.get(top)
        if tree is not None:
            for path, node in tree.walk(top):
                if (route == path or route.startswith(path + "/")) and node.timezone:
                    name = node.timezone
    if name and name != "local":
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return relay.tz
    return relay.tz


def _label(timestamp: float | None, tz: datetime.tzinfo | None) -> TimeLabel | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz or None)
    moment = moment if tz is not None else moment.astimezone()
    return TimeLabel(
        short=moment.strftime("%H:%M"),
        long=moment.strftime("%H:%M:%S"),
        full=moment.strftime("%Y-%m-%d %H:%M:%S %Z"),
        iso=moment.isoformat(timespec="milliseconds"),
    )


def age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 12 min``, ``2 d 4 h``."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@dataclass(frozen=True, slots=True)
class StateBadge:
    value: str
    label: str
    icon: str


def state_badge(state: IncidentState) -> StateBadge:
    return StateBadge(state.value, state.value, STATE_SIGNS[state])


@dataclass(frozen=True, slots=True)
class IncidentRow:
    number: int
    title: str
    route: str
    state: StateBadge
    opened: TimeLabel | None
    age: str
    acknowledged_by: str | None
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRow:
    kind: str
    icon: str
    label: str
    who: str | None
    detail: str
    at: TimeLabel | None


def incident_row(relay: Relay, incident: Incident) -> IncidentRow:
    tz = zone_for(relay, incident.route)
    end = incident.closed_at if incident.closed_at is not None else relay.clock.time()
    return IncidentRow(
        number=incident.number,
        title=relay.redact(incident.title),
        route=incident.route,
        state=state_badge(incident.state),
        opened=_label(incident.opened_at, tz),
        age=age(end - incident.opened_at),
        acknowledged_by=incident.acknowledged_by,
        targets=incident.targets,
    )


def event_rows(relay: Relay, incident: Incident) -> list[EventRow]:
    tz = zone_for(relay, incident.route)
    rows = []
    for event in incident.timeline:
        icon, label = EVENT_SIGNS.get(event.kind, ("•", str(event.kind)))
        rows.append(
            EventRow(
                kind=str(event.kind),
                icon=icon,
                label=label,
                who=event.who,
                detail=relay.redact(event.detail),
                at=_label(event.at, tz),
            )
        )
    return rows


class _Alerts:
    """The Alerts pages' handlers, on the dashboard's auth, rendering and error pages."""

    def __init__(self, dashboard: _Dashboard) -> None:
        self.dashboard = dashboard
        self.relay = dashboard.relay

    def _urls(self, request: Request) -> typing.Any:
        from ._dashboard import _Urls

        return _Urls(request)

    # -- the list ------------------------------------------------------------------------------

    async def _list_context(self, request: Request) -> dict[str, typing.Any]:
        chosen = request.query_params.get("state", "").strip()
        states: Sequence[IncidentState] = parse_states([chosen]) if chosen else ACTIVE
        found = await self.relay.incidents.list_incidents(states=states, limit=_LIST_LIMIT)
        rows = [incident_row(self.relay, i) for i in found]
        urls = self._urls(request)
        return {
            "page_title": "Alerts",
            "incidents": rows,
            "policies": self.relay.escalation is not None,
            "state": chosen,
            "states": [s.value for s in IncidentState],
            "updates_url": f"{urls.root}/ui/alerts/updates"
            + (f"?state={chosen}" if chosen else ""),
        }

    async def page(self, request: Request) -> Response:
        session = self.dashboard.auth.session(request)
        if session is None:
            return self.dashboard._to_login(request)
        context = await self._list_context(request)
        return self.dashboard._page(request, "dashboard/alerts.html", session, **context)

    async def updates(self, request: Request) -> Response:
        session = self.dashboard.auth.session(request)
        if session is None:
            return JSONResponse({"login": self._urls(request).login()}, status_code=401)
        context = await self._list_context(request)
        names = {"incidents-body": "dashboard/_incidents.html"}
        return self.dashboard._fragments(request, session, names, context)

    # -- one incident --------------------------------------------------------------------------

    async def _incident_context(self, request: Request, who: str) -> dict[str, typing.Any]:
        incident = await find_incident(self.relay, request.path_params["number"])
        urls = self._urls(request)
        base = f"{urls.root}/ui/alerts/{incident.number}"
        return {
            "page_title": f"Incident #{incident.number}",
            "incident": incident_row(self.relay, incident),
            "labels": sorted(incident.labels.items()),
            "messages": list(incident.message_ids),
            "events": event_rows(self.relay, incident),
            "can_ack": incident.state is IncidentState.OPEN,
            "can_recall": bool(incident.message_ids),
            "ack_url": base + "/ack",
            "recall_url": base + "/recall",
            "updates_url": base + "/updates",
            "who": who,
            "notice": None,
            "problem": None,
        }

    async def incident(self, request: Request) -> Response:
        session = self.dashboard.auth.session(request)
        if session is None:
            return self.dashboard._to_login(request)
        context = await self._incident_context(request, session.label)
        done = request.query_params.get("done", "")
        context["notice"] = _NOTICES.get(done)
        if done == "recalled":
            count = request.query_params.get("count", "")
            if count.isdigit():
                context["notice"] = f"Recalled {count} message{'s' if count != '1' else ''}."
                kept = request.query_params.get("kept", "")
                if kept.isdigit() and kept != "0":
                    context["notice"] += (
                        f" {kept} could not be (a webhook robot's, or not delivered): "
                        "see each message's page."
                    )
        return self.dashboard._page(request, "dashboard/incident.html", session, **context)

    async def incident_updates(self, request: Request) -> Response:
        session = self.dashboard.auth.session(request)
        if session is None:
            return JSONResponse({"login": self._urls(request).login()}, status_code=401)
        context = await self._incident_context(request, session.label)
        names = {
            "incident-facts": "dashboard/_incident_facts.html",
            "incident-timeline": "dashboard/_timeline.html",
        }
        return self.dashboard._fragments(request, session, names, context)

    async def _checked_form(self, request: Request) -> tuple[typing.Any, dict[str, str]] | Response:
        from ._dashboard import _form

        session = self.dashboard.auth.session(request)
        if session is None:
            return self.dashboard._to_login(request)
        form = await _form(request)
        if not self.dashboard.auth.form_allowed(request, session, form):
            return self.dashboard._forbidden(request)
        return session, form

    async def _refused(
        self, request: Request, session: typing.Any, exc: HTTPProblem, what: str
    ) -> Response:
        context = await self._incident_context(request, session.label)
        context["problem"] = f"{what}: {self.relay.redact(exc.detail)}"
        return self.dashboard._page(
            request,
            "dashboard/incident.html",
            session,
            status=exc.status,
            **context,
        )

    async def _acting(
        self, request: Request, what: str
    ) -> tuple[typing.Any, Incident, str] | Response:
        """A checked form's session, the incident it names and who acts (``by``, else the
        signed-in label); a refusal page (``what``) when ``by`` is not a name."""
        checked = await self._checked_form(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        incident = await find_incident(self.relay, request.path_params["number"])
        given = form.get("by", "").strip()
        try:
            who = check_name(given, "by") if given else session.label
        except HTTPProblem as exc:
            return await self._refused(request, session, exc, what)
        return session, incident, who

    async def acknowledge(self, request: Request) -> Response:
        acting = await self._acting(request, "Not acknowledged")
        if isinstance(acting, Response):
            return acting
        session, incident, who = acting
        try:
            await acknowledge_incident(self.relay, incident, who=who, via="dashboard")
        except HTTPProblem as exc:
            return await self._refused(request, session, exc, "Not acknowledged")
        target = f"{self._urls(request).root}/ui/alerts/{incident.number}?done=acknowledged"
        return RedirectResponse(target, status_code=303)

    async def recall_page(self, request: Request) -> Response:
        session = self.dashboard.auth.session(request)
        if session is None:
            return self.dashboard._to_login(request)
        context = await self._incident_context(request, session.label)
        return self.dashboard._page(
            request,
            "dashboard/incident_recall.html",
            session,
            **{**context, "page_title": f"Recall incident #{context['incident'].number}?"},
        )

    async def recall(self, request: Request) -> Response:
        """Recall every message of the incident that can be (a digest once)."""
        acting = await self._acting(request, "Not recalled")
        if isinstance(acting, Response):
            return acting
        session, incident, who = acting
        recalled, problems = 0, []
        done: set[str] = set()
        for message_id in incident.message_ids:
            try:
                answer = await recall_message(self.relay, message_id, who=who, via="dashboard")
            except HTTPProblem as exc:
                problems.append(f"{message_id[:8]}: {exc.detail}")
                continue
            if answer["id"] not in done and not answer.get("already"):
                recalled += 1
            done.add(answer["id"])
        if problems and not recalled:
            problem = HTTPProblem(409, " · ".join(problems))
            return await self._refused(request, session, problem, "Not recalled")
        root = self._urls(request).root
        query = f"done=recalled&count={recalled}&kept={len(problems)}"
        target = f"{root}/ui/alerts/{incident.number}?{query}"
        return RedirectResponse(target, status_code=303)


_NOTICES = {"acknowledged": "Acknowledged: the escalation stops, and the group is told."}


def alerts_routes(dashboard: _Dashboard) -> list[BaseRoute]:
    """``/ui/alerts`` and ``/ui/alerts/{number}`` (``…/ack``, ``…/recall``, ``…/updates``)."""
    view = _Alerts(dashboard)
    guarded = dashboard.guarded
    return [
        Route("/ui/alerts", guarded(view.page), methods=["GET"]),
        Route("/ui/alerts/updates", guarded(view.updates), methods=["GET"]),
        Route("/ui/alerts/{number}", guarded(view.incident), methods=["GET"]),
        Route("/ui/alerts/{number}/updates", guarded(view.incident_updates), methods=["GET"]),
        Route("/ui/alerts/{number}/ack", guarded(view.acknowledge), methods=["POST"]),
        Route("/ui/alerts/{number}/recall", guarded(view.recall_page), methods=["GET"]),
        Route("/ui/alerts/{number}/recall", guarded(view.recall), methods=["POST"]),
    ]
