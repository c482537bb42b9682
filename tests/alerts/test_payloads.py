"""Webhook payloads are read strictly: right types or a PayloadError naming pointer and rule.

The bodies follow the senders' documented schemas: Alertmanager's webhook receiver (version 4:
``template.Data`` plus ``version``, ``groupKey``, ``truncatedAlerts``) and Grafana's webhook
contact point (the same group plus ``orgId``, ``title``, ``state``, ``message``; per alert
``values``, ``valueString``, ``silenceURL``, ``dashboardURL``, ``panelURL``, ``imageURL``).
"""

from __future__ import annotations

import datetime
import json
import typing

import pytest

from dingpush.alerts import (
    PayloadError,
    parse_alertmanager,
    parse_generic,
    parse_grafana,
    parse_payload,
    sample,
)

UTC = datetime.UTC


def am(**changes: typing.Any) -> dict[str, typing.Any]:
    body = sample("alertmanager-firing")[1]
    body.update(changes)
    return body


def am_alert(**changes: typing.Any) -> dict[str, typing.Any]:
    body = am()
    body["alerts"][0].update(changes)
    return body


def test_alertmanager_firing_reads_every_documented_field() -> None:
    payload = parse_alertmanager(json.dumps(am()).encode())
    assert payload.kind == "alertmanager"
    assert payload.version == "4"
    assert payload.status == "firing"
    assert payload.receiver == "dingpush"
    assert payload.group_key == '{}/{team="infra"}:{alertname="HighCPU"}'
    assert payload.truncated_alerts == 0
    assert payload.group_labels == {"alertname": "HighCPU"}
    assert payload.common_labels["severity"] == "critical"
    assert payload.external_url == "http://alertmanager.example:9093"
    (alert,) = payload.alerts
    assert alert.status == "firing" and alert.firing
    assert alert.labels.instance == "web-01:9100"
    assert alert.labels.missing == ""  # a label the alert lacks reads as "" in templates
    assert alert.summary == "CPU above 90% on web-01"
    assert alert.runbook_url == "https://runbooks.example/cpu"
    assert alert.starts_at == datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time while firing
    assert alert.generator_url.startswith("http://prometheus.example:9090/graph?")
    assert alert.fingerprint == "0000c1a8e1b20001"
    assert alert.silence_url.startswith(
        "http://alertmanager.example:9093/#/silences/new?filter=%7Balertname%3D%22HighCPU%22"
    )


def test_resolved_alert_keeps_its_end_and_duration() -> None:
    payload = parse_alertmanager(sample("alertmanager-resolved")[1])
    (alert,) = payload.resolved
    assert payload.status == "resolved" and not payload.firing
    assert alert.ends_at == datetime.datetime(2024, 5, 1, 12, 35, tzinfo=UTC)
    assert alert.duration(datetime.datetime(2030, 1, 1, tzinfo=UTC)) == 35 * 60


TIMES: list[tuple[str | None, datetime.datetime | None]] = [
    ("2024-05-01T12:00:00Z", datetime.datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ("2024-05-01T12:00:00.123456789Z", datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, UTC)),
    (
        "2024-05-01T20:00:00+08:00",
        datetime.datetime(2024, 5, 1, 12, tzinfo=UTC),
    ),
    ("0001-01-01T00:00:00Z", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), TIMES)
def test_times_are_rfc3339_as_go_writes_them(text: str | None, expected: object) -> None:
    payload = parse_alertmanager(am_alert(startsAt=text))
    assert payload.alerts[0].starts_at == expected


def test_unknown_fields_are_ignored_for_newer_senders() -> None:
    body = am_alert(newField={"x": 1})
    body["someFutureField"] = True
    assert parse_alertmanager(body).alerts[0].labels["alertname"] == "HighCPU"


def test_optional_group_fields_may_be_absent_or_null() -> None:
    body: dict[str, object] = {
        "status": "resolved",
        "alerts": [{"status": "resolved", "labels": {"a": "b"}}],
    }
    payload = parse_alertmanager(body)
    assert payload.common_labels == {} and payload.external_url == ""
    assert payload.alerts[0].annotations == {} and payload.alerts[0].silence_url == ""
    body["commonAnnotations"] = None
    assert parse_alertmanager(body).common_annotations == {}


# (changes to the body, the JSON pointer, the rule)
ALERTMANAGER_REFUSALS: list[tuple[dict[str, typing.Any], str, str]] = [
    ({"status": "FIRING"}, "/status", 'one of "firing", "resolved"'),
    ({"status": True}, "/status", 'one of "firing", "resolved"'),
    ({"version": "3"}, "/version", '"4"'),
    ({"version": 4}, "/version", "a string"),
    ({"alerts": {}}, "/alerts", "an array"),
    ({"truncatedAlerts": -1}, "/truncatedAlerts", "an integer >= 0"),
    ({"truncatedAlerts": True}, "/truncatedAlerts", "an integer"),
    ({"truncatedAlerts": 1.5}, "/truncatedAlerts", "an integer"),
    ({"truncatedAlerts": "2"}, "/truncatedAlerts", "an integer"),
    ({"commonLabels": {"severity": 1}}, "/commonLabels/severity", "a string"),
    ({"groupLabels": ["alertname"]}, "/groupLabels", "an object"),
    ({"externalURL": 9093}, "/externalURL", "a string"),
    ({"receiver": None, "groupKey": False}, "/groupKey", "a string"),
]


@pytest.mark.parametrize(("changes", "pointer", "rule"), ALERTMANAGER_REFUSALS)
def test_alertmanager_group_refusals(
    changes: dict[str, typing.Any], pointer: str, rule: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(am(**changes))
    assert (caught.value.pointer, caught.value.rule, caught.value.status) == (pointer, rule, 422)
    assert pointer in str(caught.value) and caught.value.source == "alertmanager"


ALERT_REFUSALS: list[tuple[dict[str, typing.Any], str, str]] = [
    ({"status": "pending"}, "/alerts/0/status", 'one of "firing", "resolved"'),
    ({"labels": {"severity": None}}, "/alerts/0/labels/severity", "a string"),
    ({"labels": {"a/b": 3}}, "/alerts/0/labels/a~1b", "a string"),  # RFC 6901 escaping
    ({"labels": "severity=critical"}, "/alerts/0/labels", "an object"),
    ({"annotations": {"summary": ["x"]}}, "/alerts/0/annotations/summary", "a string"),
    (
        {"startsAt": "yesterday"},
        "/alerts/0/startsAt",
        "an RFC 3339 time such as 2024-05-01T12:00:00Z",
    ),
    ({"startsAt": "2024-13-01T00:00:00Z"}, "/alerts/0/startsAt", "a valid RFC 3339 time"),
    ({"startsAt": 1714564800}, "/alerts/0/startsAt", "a string"),
    ({"generatorURL": {}}, "/alerts/0/generatorURL", "a string"),
    ({"fingerprint": 7}, "/alerts/0/fingerprint", "a string"),
]


@pytest.mark.parametrize(("changes", "pointer", "rule"), ALERT_REFUSALS)
def test_alert_refusals(changes: dict[str, typing.Any], pointer: str, rule: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(am_alert(**changes))
    assert (caught.value.pointer, caught.value.rule) == (pointer, rule)


def test_missing_required_members_are_named() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager({"status": "firing"})
    assert caught.value.pointer == "/alerts"
    body = am()
    del body["alerts"][0]["labels"]
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(body)
    assert caught.value.pointer == "/alerts/0/labels"
    body = am()
    del body["status"]
    with pytest.raises(PayloadError, match="/status"):
        parse_alertmanager(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b'{"status": NaN}',
        b'{"status": "firing", "status": "resolved"}',
        b"\xff\xfe{}",
    ],
)
def test_bodies_that_are_not_json_are_400(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(body)
    assert caught.value.status == 400 and caught.value.pointer == ""


@pytest.mark.parametrize("body", [b"[]", b'"firing"', b"3", b"null"])
def test_a_body_that_is_not_an_object_is_422_at_the_root(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alertmanager(body)
    assert caught.value.status == 422 and caught.value.pointer == ""
    assert caught.value.rule == "an object"


def test_grafana_reads_its_extra_fields() -> None:
    payload = parse_grafana(json.dumps(sample("grafana-firing")[1]))
    assert payload.kind == "grafana"
    assert (payload.org_id, payload.state, payload.version) == (1, "alerting", "1")
    assert payload.title.startswith("[FIRING:1] DiskFull")
    (alert,) = payload.alerts
    assert alert.values == {"A": 95.7, "B": 1.0}
    assert alert.value_string.startswith("[ var='A'")
    assert alert.dashboard_url == "http://grafana.example:3000/d/disk01?orgId=1"
    assert alert.panel_url.endswith("viewPanel=4")
    assert alert.image_url == "https://grafana.example/public/img/disk01.png"
    assert alert.silence_url.startswith("http://grafana.example:3000/alerting/silence/new?")


def test_grafana_values_may_be_null_and_image_absent() -> None:
    body = sample("grafana-firing")[1]
    body["alerts"][0]["values"] = None
    del body["alerts"][0]["imageURL"]
    alert = parse_grafana(body).alerts[0]
    assert alert.values is None and alert.image_url == ""


GRAFANA_REFUSALS: list[tuple[str, typing.Any, str, str]] = [
    ("orgId", "1", "/orgId", "an integer"),
    ("state", "firing", "/state", 'one of "alerting", "ok", "no_data", "pending", "paused"'),
    ("version", "4", "/version", '"1"'),
    ("title", 5, "/title", "a string"),
]


@pytest.mark.parametrize(("key", "value", "pointer", "rule"), GRAFANA_REFUSALS)
def test_grafana_refusals(key: str, value: object, pointer: str, rule: str) -> None:
    body = sample("grafana-firing")[1]
    body[key] = value
    with pytest.raises(PayloadError) as caught:
        parse_grafana(body)
    assert (caught.value.pointer, caught.value.rule, caught.value.source) == (
        pointer,
        rule,
        "grafana",
    )


@pytest.mark.parametrize(
    ("values", "pointer"),
    [
        ({"A": "95.7"}, "/alerts/0/values/A"),
        ({"A": True}, "/alerts/0/values/A"),
        ([1], "/alerts/0/values"),
    ],
)
def test_grafana_values_are_numbers(values: object, pointer: str) -> None:
    body = sample("grafana-firing")[1]
    body["alerts"][0]["values"] = values
    with pytest.raises(PayloadError) as caught:
        parse_grafana(body)
    assert caught.value.pointer == pointer


def test_grafana_infinite_values_are_refused() -> None:
    body = json.dumps(sample("grafana-firing")[1]).replace("95.7", "1e400")
    with pytest.raises(PayloadError) as caught:
        parse_grafana(body)
    assert caught.value.pointer == "/alerts/0/values/A" and caught.value.rule == "a finite number"


def test_generic_flattens_scalars_for_routing() -> None:
    payload = parse_generic(json.dumps(sample("generic-gitlab")[1]))
    assert payload.fields["object_kind"] == "pipeline"
    assert payload.fields["object_attributes.status"] == "failed"
    assert payload.fields["object_attributes.duration"] == "63"
    assert parse_generic(b'[{"ok": true}]').fields == {"0.ok": "true"}
    assert parse_generic({"a": {"b": "x"}}).digest == parse_generic(b'{"a":{"b":"x"}}').digest


@pytest.mark.parametrize("body", [b'"text"', b"42", b"null", b"true"])
def test_generic_wants_an_object_or_an_array(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_generic(body)
    assert caught.value.rule == "a JSON object or array" and caught.value.status == 422


def test_parse_payload_dispatches_by_kind() -> None:
    assert parse_payload("grafana", sample("grafana-firing")[1]).kind == "grafana"
    with pytest.raises(ValueError, match="unknown receiver kind"):
        parse_payload("zabbix", {})  # type: ignore[arg-type]
