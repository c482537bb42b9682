"""The alert pipeline: a webhook body in, the messages to enqueue per target out.

:func:`process_alerts` is a pure function of the receiver kind, the route table, the body, the
people directory, the compiled templates and a clock: no HTTP, no outbox. The relay calls it
for ``POST /alertmanager/{route}``, ``/grafana/{route}``, ``/hooks/{route}`` and
``/dingtalk/{target}/send``, commits the messages, and only then tells the repeat log what it
sent (:meth:`AlertOutcome.remember`).

Each alert is routed on its own labels, so one Alertmanager group may reach several routes;
each route gets one message with the alerts it took (its own common labels, its own status).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dingpush import ActionCard, Clock, Markdown, Message, SystemClock

from ._filters import escape_markdown, resolve_timezone
from ._labels import LabelSet
from ._payloads import (
    Alert,
    AlertGroup,
    Body,
    GenericPayload,
    Payload,
    ReceiverKind,
    parse_payload,
)
from ._people import Mentions, People, resolve_mentions
from ._routes import RepeatLog, ResolvedRoute, Route, repeat_key, select_routes
from ._settings import MENTIONING_TARGET_KINDS
from ._templates import BUILTIN_TEMPLATES, Rendered, RenderFailure, Templates

__all__ = ["AlertMessage", "AlertOutcome", "Suppressed", "process_alerts"]

#: A group with more alerts than this is shown one line per alert by the builtin templates.
COMPACT_AFTER = 10
#: Above this many bytes an action card (which cannot be split) is sent as markdown instead,
#: which the relay splits: DingTalk's 20,000 less room for the msgUuid and a keyword.
CARD_LIMIT = 19_000
_SEVERITY_RANK = {
    "critical": 0,
    "page": 0,
    "fatal": 0,
    "emergency": 0,
    "error": 1,
    "high": 1,
    "major": 1,
    "warning": 2,
    "warn": 2,
    "medium": 2,
    "minor": 2,
    "info": 3,
    "low": 3,
    "none": 4,
}
_GENERIC_TITLE_FIELDS = (
    "title",
    "subject",
    "summary",
    "event_name",
    "object_kind",
    "event",
    "name",
    "message",
    "text",
)


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One message to enqueue for one target."""

    target: str
    message: Message
    #: The route that chose it (``ops/critical``) and the template that rendered it.
    route: str
    template: str
    #: The notification's identity for repeat suppression (route, group, status, alerts).
    repeat_key: str
    #: How many alerts the message carries.
    alerts: int
    #: The notification's status (``firing`` or ``resolved``), its alert group's key (the
    #: sender's ``groupKey``; the body's digest for a generic hook), the group's common labels
    #: and headline: what the relay's on-call loop tracks an incident by.
    status: str = "firing"
    group_key: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    headline: str = ""


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A notification held back as an identical repeat within its route's window."""

    route: str
    repeat_key: str
    alerts: int


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """What one webhook body became."""

    kind: ReceiverKind
    messages: tuple[AlertMessage, ...]
    #: Configured templates that failed while rendering (their message used the builtin one).
    render_failures: tuple[RenderFailure, ...] = ()
    #: Mentions that could not be made, routes without targets: things to show, not to drop.
    problems: tuple[str, ...] = ()
    suppressed: tuple[Suppressed, ...] = ()
    #: ``(repeat_key, window)`` of each sent notification whose route suppresses repeats.
    repeat_windows: tuple[tuple[str, float], ...] = ()

    def remember(self, log: RepeatLog, now: float) -> None:
        """Record the sent notifications in ``log`` (call it after the messages are committed)."""
        for key, window in self.repeat_windows:
            log.remember(key, now, window)


def _fingerprint(alert: Alert) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    text = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _severity(group: AlertGroup) -> str:
    if group.common_labels.get("severity"):
        return group.common_labels["severity"]
    found = [a.severity for a in group.alerts if a.severity]
    if not found:
        return ""
    return min(found, key=lambda s: _SEVERITY_RANK.get(s.lower(), 5))


def _headline(group: AlertGroup) -> str:
    for labels in (group.group_labels, group.common_labels):
        if labels.get("alertname"):
            return labels["alertname"]
    values = [v for _, v in group.group_labels.sorted_pairs() if v]
    if values:
        return " ".join(values)
    names = list(dict.fromkeys(a.name for a in group.alerts if a.name))
    return ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "") or "alerts"


def _group_title(group: AlertGroup, headline: str, severity: str) -> str:
    count = f":{len(group.firing)}" if group.status == "firing" else ""
    icon = "🔥" if group.status == "firing" else "✅"
    tail = f" · {severity}" if severity else ""
    return f"{icon} [{group.status.upper()}{count}] {headline}{tail}"


def _group_variables(
    group: AlertGroup, route: ResolvedRoute, now: datetime.datetime, tz: datetime.tzinfo | None
) -> dict[str, object]:
    headline = _headline(group)
    severity = _severity(group)
    shared = LabelSet(group.common_labels).without("alertname", "severity")
    variables: dict[str, object] = {
        "kind": group.kind,
        "payload": group,
        "status": group.status,
        "alerts": group.alerts,
        "firing": group.firing,
        "resolved": group.resolved,
        "receiver": group.receiver,
        "group_key": group.group_key,
        "group_labels": group.group_labels,
        "common_labels": group.common_labels,
        "common_annotations": group.common_annotations,
        "external_url": group.external_url,
        "truncated_alerts": group.truncated_alerts,
        "silence_url": group.silence_url,
        "route": route.path,
        "now": now,
        "timezone": tz,
        "headline": headline,
        "severity": severity,
        "shared_labels": shared.sorted_pairs(),
        "compact": len(group.alerts) > COMPACT_AFTER,
        "default_title": _group_title(group, headline, severity),
    }
    for attr in ("state", "message", "org_id"):
        if hasattr(group, attr):
            variables[attr] = getattr(group, attr)
    return variables


def _generic_variables(
    payload: GenericPayload,
    route: ResolvedRoute,
    now: datetime.datetime,
    tz: datetime.tzinfo | None,
) -> dict[str, object]:
    heading = next((payload.fields[k] for k in _GENERIC_TITLE_FIELDS if payload.fields.get(k)), "")
    return {
        "kind": "generic",
        "payload": payload,
        "body": payload.body,
        "fields": payload.fields,
        "status": "firing",
        "route": route.path,
        "now": now,
        "timezone": tz,
        "headline": heading or route.path,
        "default_title": f"📨 {heading or route.path}",
    }


def _card_size(card: Message) -> int:
    body = json.dumps(card.to_payload(), ensure_ascii=False, separators=(",", ":"))
    return len(body.encode("utf-8")) + 64  # the msgUuid dingpush adds


def _message(rendered: Rendered, mentions: Mentions, route: str, problems: list[str]) -> Message:
    if not rendered.buttons:
        return Markdown(rendered.title, rendered.text, at=mentions.at or None)
    user_ids, card_problems = mentions.for_card()
    problems.extend(f"route {route}: {p}" for p in card_problems)
    text = rendered.text
    if user_ids:
        text = f"{text}\n\n{' '.join('@' + u for u in user_ids)}"
    card = ActionCard(rendered.title, text, buttons=rendered.buttons)
    if _card_size(card) <= CARD_LIMIT:
        return card
    problems.append(
        f"route {route}: the action card is over {CARD_LIMIT} bytes and cannot be split; "
        "sent as markdown (split into parts), its buttons as links"
    )
    links = " · ".join(f"[{b.title}]({b.url})" for b in rendered.buttons)
    return Markdown(rendered.title, f"{rendered.text}\n\n{links}", at=mentions.at or None)


def _noted(rendered: Rendered, failure: RenderFailure) -> Rendered:
    """The fallback rendering with the failure on the message itself, last, as a quote: whoever
    reads the alert in the group sees that its template needs fixing."""
    where = f" ({failure.file}:{failure.line})" if failure.file and failure.line else ""
    note = escape_markdown(
        f"⚠️ template {failure.template!r}{where} failed: {failure.error}; "
        f"shown with the builtin template {failure.fallback!r}"
    )
    return dataclasses.replace(rendered, text=f"{rendered.text}\n\n> {note}")


def _without_mentions(message: Message) -> Message:
    if isinstance(message, Markdown):
        return Markdown(message.title, message.text)
    return message


class _Run:
    """The state of one :func:`process_alerts` call."""

    def __init__(
        self,
        kind: ReceiverKind,
        people: People,
        templates: Templates,
        repeats: RepeatLog | None,
        clock: Clock,
        target_kinds: Mapping[str, str] | None,
    ) -> None:
        self.kind = kind
        self.target_kinds = target_kinds or {}
        self.people = people
        self.templates = templates
        self.repeats = repeats
        self.stamp = clock.time()
        self.now = datetime.datetime.fromtimestamp(self.stamp, datetime.UTC)
        self.messages: list[AlertMessage] = []
        self.failures: list[RenderFailure] = []
        self.problems: list[str] = []
        self.suppressed: list[Suppressed] = []
        self.windows: list[tuple[str, float]] = []

    def emit(
        self,
        route: ResolvedRoute,
        key: str,
        status: str,
        count: int,
        variables: dict[str, object],
        sources: Sequence[tuple[Mapping[str, str], Mapping[str, str]]],
    ) -> None:
        window = route.repeat_window
        if window > 0 and status != "resolved":
            if self.repeats is not None and self.repeats.seen(key, self.stamp):
                self.suppressed.append(Suppressed(route.path, key, count))
                return
            self.windows.append((key, window))
        if not route.targets:
            self.problems.append(
                f"route {route.path}: no targets; {count} alert(s) could not be sent "
                "(give the route or its parent targets = [...])"
            )
            return
        mentions = resolve_mentions(
            people=self.people,
            route_mentions=route.mention,
            mention_all=route.mention_all,
            allow_mention_all=route.allow_mention_all,
            sources=sources,
            keys=route.mention_labels,
        )
        self.problems.extend(f"route {route.path}: {p}" for p in mentions.problems)
        written = " ".join(f"@{t}" for t in mentions.at.targets)
        written += " @all" if mentions.at.all else ""
        template = route.template or BUILTIN_TEMPLATES[self.kind]
        rendered = self.templates.render(
            template, variables, kind=self.kind, route=route.path, mentions=written.strip()
        )
        if rendered.failure is not None:
            self.failures.append(rendered.failure)
            rendered = _noted(rendered, rendered.failure)
        message = _message(rendered, mentions, route.path, self.problems)
        group_key, labels, headline = _identity(variables, key)
        plain: Message | None = None
        for target in route.targets:
            kind = self.target_kinds.get(target)
            chosen = message
            if message.mentions and kind is not None and kind not in MENTIONING_TARGET_KINDS:
                if plain is None:
                    plain = _without_mentions(message)
                chosen = plain
                self.problems.append(
                    f"route {route.path}: target {target!r} is a {kind} target, which cannot "
                    "@-mention; its message goes without the mentions"
                )
            self.messages.append(
                AlertMessage(
                    target,
                    chosen,
                    route.path,
                    rendered.template,
                    key,
                    count,
                    status=status,
                    group_key=group_key,
                    labels=labels,
                    headline=headline,
                )
            )

    def outcome(self) -> AlertOutcome:
        return AlertOutcome(
            kind=self.kind,
            messages=tuple(self.messages),
            render_failures=tuple(self.failures),
            problems=tuple(dict.fromkeys(self.problems)),
            suppressed=tuple(self.suppressed),
            repeat_windows=tuple(self.windows),
        )


def _identity(variables: Mapping[str, object], key: str) -> tuple[str, dict[str, str], str]:
    """``(group key, common labels, headline)`` of a notification, from its variables."""
    common = variables.get("common_labels")
    labels = (
        {str(k): str(v) for k, v in dict(common).items()} if isinstance(common, Mapping) else {}
    )
    group_key = str(variables.get("group_key") or "")
    if not group_key:
        grouped = variables.get("group_labels")
        pairs = sorted(dict(grouped).items()) if isinstance(grouped, Mapping) else []
        group_key = json.dumps(pairs, separators=(",", ":")) if pairs else key
    headline = str(variables.get("headline") or variables.get("title") or "")
    return group_key, labels, headline


def _timezone(route: ResolvedRoute) -> datetime.tzinfo | None:
    return resolve_timezone(route.timezone)


def process_alerts(
    kind: ReceiverKind,
    routes: Route,
    payload: Body | Payload,
    *,
    people: People | None = None,
    templates: Templates,
    clock: Clock | None = None,
    repeats: RepeatLog | None = None,
    name: str = "",
    target_kinds: Mapping[str, str] | None = None,
) -> AlertOutcome:
    """Turn one webhook body into the messages to enqueue.

    Args:
        kind: the receiver: ``alertmanager`` (also prometheus-webhook-dingtalk's path),
            ``grafana`` or ``generic``.
        routes: the route table named in the request's path (its root is the default route).
        payload: the body (bytes, text or decoded JSON), or a payload parsed already.
        people: the people directory mentions are resolved in.
        templates: the compiled templates.
        clock: where "now" comes from (durations such as "firing for 12 min").
        repeats: the log of sent notifications, for routes with ``repeat_window``; read only
            here — call :meth:`AlertOutcome.remember` once the messages are committed.
        name: the route table's name, the first part of every route path.
        target_kinds: each target's kind (``robot``, ``pool``, ``app-group``…); a target
            that cannot @-mention gets the message without its mentions, and a problem says so.

    Raises:
        PayloadError: the body breaks its sender's schema (answer 400/422; never stored).
    """
    parsed = (
        payload
        if isinstance(payload, AlertGroup | GenericPayload)
        else parse_payload(kind, payload)
    )
    if parsed.kind != kind:
        raise ValueError(f"a {parsed.kind} payload given to the {kind} receiver")
    run = _Run(kind, people or People(), templates, repeats, clock or SystemClock(), target_kinds)
    if isinstance(parsed, GenericPayload):
        for route in select_routes(routes, parsed.fields, name):
            variables = _generic_variables(parsed, route, run.now, _timezone(route))
            key = repeat_key(route.path, parsed.digest, "firing", ())
            run.emit(route, key, "firing", 1, variables, [(parsed.fields, {})])
        return run.outcome()
    chosen: dict[str, tuple[ResolvedRoute, list[Alert]]] = {}
    for alert in parsed.alerts:
        for route in select_routes(routes, alert.labels, name):
            chosen.setdefault(route.path, (route, []))[1].append(alert)
    if not parsed.alerts:
        for route in select_routes(routes, parsed.common_labels, name):
            chosen.setdefault(route.path, (route, []))
    for route, alerts in chosen.values():
        group = parsed.select(alerts) if alerts else parsed
        key = repeat_key(
            route.path, group.group_key, group.status, ((_fingerprint(a), a.status) for a in alerts)
        )
        variables = _group_variables(group, route, run.now, _timezone(route))
        sources = [(a.labels, a.annotations) for a in alerts]
        run.emit(route, key, group.status, len(alerts), variables, sources)
    return run.outcome()
