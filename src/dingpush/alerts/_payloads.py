"""Typed webhook payloads: Alertmanager's (version 4), Grafana's contact point, any JSON.

The models are frozen and parsed strictly from JSON (see :mod:`._json`): a field of the wrong
type is a :class:`PayloadError` naming its JSON pointer, never a value coerced by truthiness.
Fields the senders add in later versions are ignored, so a newer Alertmanager still works.

Alertmanager's webhook body (``notify/webhook``: ``template.Data`` plus ``version``,
``groupKey`` and ``truncatedAlerts``)::

    {"version": "4", "groupKey": "{}:{alertname=\\"HighCPU\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "dingpush", "groupLabels": {...},
     "commonLabels": {...}, "commonAnnotations": {...}, "externalURL": "http://am:9093",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "2024-05-01T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "http://prom:9090/graph?...", "fingerprint": "c1a8..."}]}

Grafana's webhook contact point sends the same group fields plus ``orgId``, ``title``,
``state`` and ``message``, and per alert ``values``, ``valueString``, ``silenceURL``,
``dashboardURL``, ``panelURL`` and ``imageURL``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._json import Reader, load_json, pointer_join
from ._labels import EMPTY, LabelSet, common, matcher_text

__all__ = [
    "Alert",
    "AlertGroup",
    "AlertStatus",
    "AlertmanagerPayload",
    "GenericPayload",
    "GrafanaPayload",
    "Payload",
    "ReceiverKind",
    "parse_alertmanager",
    "parse_generic",
    "parse_grafana",
    "parse_payload",
    "silence_url",
]

AlertStatus = typing.Literal["firing", "resolved"]
ReceiverKind = typing.Literal["alertmanager", "grafana", "generic"]
_STATUSES = ("firing", "resolved")
#: Grafana's ``state``: ``alerting``/``ok`` from unified alerting; the rest from legacy alerting.
_GRAFANA_STATES = ("alerting", "ok", "no_data", "pending", "paused")

Body = bytes | str | Mapping[str, object] | Sequence[object]


def silence_url(external_url: str, labels: Mapping[str, str]) -> str:
    """Alertmanager's "new silence" form prefilled with ``labels`` (``""`` without a URL)."""
    if not external_url or not labels:
        return ""
    query = urllib.parse.quote(matcher_text(labels), safe="")
    return f"{external_url.rstrip('/')}/#/silences/new?filter={query}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert of a group, as Alertmanager (and Grafana) describe it."""

    status: AlertStatus
    labels: LabelSet
    annotations: LabelSet = EMPTY
    #: When the alert started firing (aware datetime), ``None`` when the sender gave none.
    starts_at: datetime.datetime | None = None
    #: When it ended; ``None`` while it fires (Go's zero time on the wire).
    ends_at: datetime.datetime | None = None
    generator_url: str = ""
    fingerprint: str = ""
    #: A prefilled silence form: Grafana's ``silenceURL``; for Alertmanager, built from the
    #: group's ``externalURL`` and this alert's labels (``externalURL/#/silences/new?filter=…``).
    silence_url: str = ""
    # Grafana only.
    values: Mapping[str, float] | None = None
    value_string: str = ""
    dashboard_url: str = ""
    panel_url: str = ""
    image_url: str = ""
    org_id: int | None = None

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def runbook_url(self) -> str:
        return self.annotations.get("runbook_url", "")

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    def duration(self, now: datetime.datetime) -> float | None:
        """Seconds it has fired (until ``now``), or fired for (until ``ends_at``) once resolved."""
        if self.starts_at is None:
            return None
        end = self.ends_at if self.ends_at is not None and not self.firing else now
        return max((end - self.starts_at).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertGroup:
    """What Alertmanager and Grafana share: a group of alerts and its labels."""

    status: AlertStatus
    alerts: tuple[Alert, ...]
    receiver: str = ""
    group_key: str = ""
    group_labels: LabelSet = EMPTY
    common_labels: LabelSet = EMPTY
    common_annotations: LabelSet = EMPTY
    external_url: str = ""
    #: Alerts the sender left out (its ``max_alerts``); shown, never hidden.
    truncated_alerts: int = 0
    version: str = ""

    kind: typing.ClassVar[ReceiverKind]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @property
    def silence_url(self) -> str:
        """A silence form for the whole group (its common labels), when the sender links one."""
        return silence_url(self.external_url, self.common_labels)

    def select(self, alerts: Sequence[Alert]) -> AlertGroup:
        """The same group with only ``alerts``: status and common labels recomputed."""
        if len(alerts) == len(self.alerts):
            return self
        status: AlertStatus = "firing" if any(a.firing for a in alerts) else "resolved"
        return dataclasses.replace(
            self,
            alerts=tuple(alerts),
            status=status,
            common_labels=common(a.labels for a in alerts),
            common_annotations=common(a.annotations for a in alerts),
        )

    def fields(self) -> Mapping[str, str]:
        """What routes match on for the group as a whole: its common labels."""
        return self.common_labels


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertmanagerPayload(AlertGroup):
    """Alertmanager's webhook body, version 4."""

    kind: typing.ClassVar[ReceiverKind] = "alertmanager"


@dataclass(frozen=True, slots=True, kw_only=True)
class GrafanaPayload(AlertGroup):
    """Grafana's alerting webhook contact point body."""

    kind: typing.ClassVar[ReceiverKind] = "grafana"

    org_id: int | None = None
    #: Grafana's own rendered title and message (its templates' ``default.title``/``message``).
    title: str = ""
    message: str = ""
    #: ``alerting`` or ``ok`` (legacy alerting also sends ``no_data``, ``pending``, ``paused``).
    state: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericPayload:
    """Any JSON body (GitLab, Jenkins, Zabbix, a cron job): the template makes the message.

    Routes match on ``fields``: the body's scalar values under their dotted paths
    (``object_attributes.status``), JSON-written (``true``, ``3``) as strings.
    """

    kind: typing.ClassVar[ReceiverKind] = "generic"

    body: object
    fields: Mapping[str, str]

    @property
    def digest(self) -> str:
        """A hash of the body's canonical JSON: identical bodies have identical digests."""
        text = json.dumps(self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


Payload = AlertmanagerPayload | GrafanaPayload | GenericPayload


def _decoded(body: Body, source: str) -> object:
    if isinstance(body, bytes | bytearray | str):
        return load_json(bytes(body) if isinstance(body, bytearray) else body, source=source)
    return body


def _alert(read: Reader, value: object, pointer: str, *, grafana: bool, external: str) -> Alert:
    data = read.mapping(value, pointer)
    at = pointer_join
    if "labels" not in data:
        read.fail(at(pointer, "labels"), "an object of strings", None, "every alert has labels")
    labels = LabelSet(read.string_map(data["labels"], at(pointer, "labels")))
    status = read.choice(data.get("status"), at(pointer, "status"), _STATUSES)
    extra: dict[str, typing.Any] = {}
    if grafana:
        extra = {
            "values": read.number_map(data.get("values"), at(pointer, "values")),
            "value_string": read.optional_string(data, "valueString", pointer),
            "dashboard_url": read.optional_string(data, "dashboardURL", pointer),
            "panel_url": read.optional_string(data, "panelURL", pointer),
            "image_url": read.optional_string(data, "imageURL", pointer),
            "silence_url": read.optional_string(data, "silenceURL", pointer),
        }
        if data.get("orgId") is not None:
            extra["org_id"] = read.integer(data["orgId"], at(pointer, "orgId"))
    else:
        extra["silence_url"] = silence_url(external, labels)
    return Alert(
        status=typing.cast(AlertStatus, status),
        labels=labels,
        annotations=LabelSet(read.string_map(data.get("annotations"), at(pointer, "annotations"))),
        starts_at=read.timestamp(data.get("startsAt"), at(pointer, "startsAt")),
        ends_at=read.timestamp(data.get("endsAt"), at(pointer, "endsAt")),
        generator_url=read.optional_string(data, "generatorURL", pointer),
        fingerprint=read.optional_string(data, "fingerprint", pointer),
        **extra,
    )


def _group(read: Reader, body: Body, *, grafana: bool, version: str) -> dict[str, typing.Any]:
    data = read.mapping(_decoded(body, read.source), "")
    if data.get("version") is not None:
        found = read.string(data["version"], "/version")
        if found != version:
            read.fail(
                "/version",
                f'"{version}"',
                found,
                f"this receiver reads {read.source}'s webhook version {version}",
            )
    if "alerts" not in data:
        read.fail("/alerts", "an array of alerts", None, "the body has no alerts")
    external = read.optional_string(data, "externalURL", "")
    alerts = tuple(
        _alert(read, item, pointer_join("/alerts", index), grafana=grafana, external=external)
        for index, item in enumerate(read.array(data["alerts"], "/alerts"))
    )
    if data.get("status") is None and not grafana:
        read.fail("/status", 'one of "firing", "resolved"', None)
    if data.get("status") is not None:
        status = read.choice(data["status"], "/status", _STATUSES)
    else:  # Grafana's legacy bodies carry only ``state``
        status = "firing" if any(a.firing for a in alerts) else "resolved"
    truncated = data.get("truncatedAlerts")
    return {
        "status": status,
        "alerts": alerts,
        "receiver": read.optional_string(data, "receiver", ""),
        "group_key": read.optional_string(data, "groupKey", ""),
        "group_labels": LabelSet(read.string_map(data.get("groupLabels"), "/groupLabels")),
        "common_labels": LabelSet(read.string_map(data.get("commonLabels"), "/commonLabels")),
        "common_annotations": LabelSet(
            read.string_map(data.get("commonAnnotations"), "/commonAnnotations")
        ),
        "external_url": external,
        "truncated_alerts": 0
        if truncated is None
        else read.integer(truncated, "/truncatedAlerts", minimum=0),
        "version": version if data.get("version") is not None else "",
        "_data": data,
    }


def parse_alertmanager(body: Body) -> AlertmanagerPayload:
    """Read Alertmanager's webhook body (version 4); raise :class:`PayloadError` if malformed."""
    fields = _group(Reader("alertmanager"), body, grafana=False, version="4")
    del fields["_data"]
    return AlertmanagerPayload(**fields)


def parse_grafana(body: Body) -> GrafanaPayload:
    """Read Grafana's webhook contact point body; raise :class:`PayloadError` if malformed."""
    read = Reader("grafana")
    fields = _group(read, body, grafana=True, version="1")
    data = fields.pop("_data")
    state = data.get("state")
    if state is not None:
        read.choice(state, "/state", _GRAFANA_STATES)
    org_id = data.get("orgId")
    return GrafanaPayload(
        **fields,
        org_id=None if org_id is None else read.integer(org_id, "/orgId"),
        title=read.optional_string(data, "title", ""),
        message=read.optional_string(data, "message", ""),
        state=typing.cast(str, state or ""),
    )


#: How deep and how many of a generic body's values routes can match on.
MAX_FIELD_DEPTH = 6
MAX_FIELDS = 500


def _flatten(value: object, prefix: str, out: dict[str, str], depth: int) -> None:
    if len(out) >= MAX_FIELDS:
        return
    if isinstance(value, Mapping):
        if depth >= MAX_FIELD_DEPTH:
            return
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(value, list):
        if depth >= MAX_FIELD_DEPTH:
            return
        for index, item in enumerate(value[:MAX_FIELDS]):
            _flatten(item, f"{prefix}.{index}" if prefix else str(index), out, depth + 1)
    elif isinstance(value, str):
        out[prefix] = value
    elif value is not None:
        out[prefix] = json.dumps(value)


def parse_generic(body: Body) -> GenericPayload:
    """Read any JSON object or array; routes match on its flattened scalar fields."""
    read = Reader("generic")
    data = _decoded(body, "generic")
    if not isinstance(data, Mapping | list):
        read.fail("", "a JSON object or array", data)
    fields: dict[str, str] = {}
    _flatten(data, "", fields, 0)
    return GenericPayload(body=data, fields=fields)


_PARSERS: Mapping[str, typing.Callable[[Body], Payload]] = {
    "alertmanager": parse_alertmanager,
    "grafana": parse_grafana,
    "generic": parse_generic,
}


def parse_payload(kind: ReceiverKind, body: Body) -> Payload:
    """Read ``body`` as the receiver ``kind`` expects it."""
    try:
        parser = _PARSERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown receiver kind {kind!r}: use one of {', '.join(_PARSERS)}"
        ) from None
    return parser(body)
