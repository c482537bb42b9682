"""JSON schemas of the relay's bodies (OpenAPI 3.1 components), by name.

The message schemas follow protocol §1.3 field by field (and dingpush's own forms of images,
files and OA cards, ``docs/apps.md``); the library's message models stay the authority that
accepts or refuses a message, these describe it to API clients and schema-driven tests.
"""

from __future__ import annotations

import typing

__all__ = ["SCHEMAS"]

Schema = dict[str, typing.Any]

_TEXT: Schema = {"type": "string", "minLength": 1, "pattern": r"\S"}
_URL: Schema = {"type": "string", "format": "uri", "pattern": r"^https?://\S+$"}
_TIME: Schema = {"type": "number", "description": "Seconds since the epoch."}
_MAYBE_TIME: Schema = {"type": ["number", "null"], "description": "Seconds since the epoch."}
_ERRCODE: Schema = {"type": ["integer", "string", "null"]}
# DingTalk's switches are the strings "0"/"1" (protocol §1.3); DingtalkChatbot sends 0/1.
_FLAG: Schema = {"enum": ["0", "1", 0, 1], "description": '"0" or "1"; the integers 0 and 1 too.'}
_WARNINGS: Schema = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Warning"},
    "description": "Fields that were ignored (unknown to the message type or the request).",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _message(kind: str, body: Schema, *, at: bool = False) -> Schema:
    properties: Schema = {"msgtype": {"type": "string", "const": kind}, kind: body}
    if at:
        properties["at"] = _ref("At")
    return {"type": "object", "required": ["msgtype", kind], "properties": properties}


def _object(required: list[str], properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


_MESSAGES: dict[str, Schema] = {
    "TextMessage": _message("text", _object(["content"], {"content": _TEXT}), at=True),
    "MarkdownMessage": _message(
        "markdown", _object(["title", "text"], {"title": _TEXT, "text": _TEXT}), at=True
    ),
    "LinkMessage": _message(
        "link",
        _object(
            ["title", "text", "messageUrl"],
            {"title": _TEXT, "text": _TEXT, "messageUrl": _URL, "picUrl": _URL},
        ),
    ),
    "ActionCardMessage": _message(
        "actionCard",
        _object(
            ["title", "text"],
            {
                "title": _TEXT,
                "text": _TEXT,
                "singleTitle": _TEXT,
                "singleURL": _URL,
                "btns": {
                    "type": "array",
                    "items": _object(["title", "actionURL"], {"title": _TEXT, "actionURL": _URL}),
                },
                "btnOrientation": _FLAG,
                "hideAvatar": _FLAG,
            },
        ),
    ),
    "FeedCardMessage": _message(
        "feedCard",
        _object(
            ["links"],
            {
                "links": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        ["title", "messageURL", "picURL"],
                        {"title": _TEXT, "messageURL": _URL, "picURL": _URL},
                    ),
                }
            },
        ),
    ),
    "ImageMessage": _message(
        "image",
        {
            "type": "object",
            "description": "One of picURL, mediaId, or data (Base64) with fileName; apps only.",
            "properties": {
                "picURL": _URL,
                "mediaId": _TEXT,
                "data": {"type": "string", "contentEncoding": "base64"},
                "fileName": _TEXT,
            },
        },
    ),
    "FileMessage": _message(
        "file",
        {
            "type": "object",
            "description": "mediaId, or data (Base64) with fileName; apps only.",
            "properties": {
                "mediaId": _TEXT,
                "data": {"type": "string", "contentEncoding": "base64"},
                "fileName": _TEXT,
            },
        },
    ),
    "OAMessage": _message(
        "oa",
        {
            "type": "object",
            "required": ["message_url"],
            "description": "The work notification's oa object (protocol §4.1); apps only.",
            "properties": {
                "message_url": _URL,
                "head": {"type": "object"},
                "body": {"type": "object"},
            },
        },
    ),
}

_SUMMARY: Schema = {
    "type": "object",
    "required": ["id", "target", "kind", "status", "created_at", "attempts"],
    "properties": {
        "id": {"type": "string", "description": "A UUID, sent to DingTalk as msgUuid."},
        "target": {"type": "string"},
        "kind": {"type": "string", "description": "The msgtype, or 'digest'."},
        "status": {
            "type": "string",
            "enum": ["queued", "sending", "delivered", "digested", "failed"],
        },
        "created_at": _TIME,
        "updated_at": _TIME,
        "due_at": _TIME,
        "delivered_at": _MAYBE_TIME,
        "attempts": {"type": "integer", "minimum": 0},
        "last_error": {"type": ["string", "null"]},
        "last_errcode": _ERRCODE,
        "digest_id": {"type": ["string", "null"], "description": "The digest carrying it."},
        "carries": {"type": "integer", "description": "For a digest: originals it carries."},
        "recalled": {
            "type": ["object", "null"],
            "description": "A delivered app-robot message taken back out of the chat.",
            "properties": {
                "at": _TIME,
                "by": {"type": "string"},
                "via": {"type": "string", "description": "api or dashboard."},
                "keys": {"type": "integer", "description": "processQueryKeys recalled."},
                "failed": {"type": "integer", "description": "Keys DingTalk did not recall."},
            },
        },
    },
}

_EVENT: Schema = _object(
    ["at", "kind"],
    {
        "at": _TIME,
        "kind": {
            "type": "string",
            "enum": [
                "opened",
                "sent",
                "read",
                "ding",
                "notified",
                "acknowledged",
                "silenced",
                "resolved",
                "recalled",
                "note",
            ],
        },
        "who": {"type": ["string", "null"]},
        "detail": {"type": "string"},
    },
)

_INCIDENT: Schema = _object(
    ["number", "route", "title", "state", "opened_at"],
    {
        "number": {"type": "integer", "description": "What people type in `@robot ack 42`."},
        "route": {"type": "string"},
        "group_key": {"type": "string"},
        "title": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "policy": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": ["open", "acknowledged", "silenced", "resolved"]},
        "opened_at": _TIME,
        "closed_at": _MAYBE_TIME,
        "step": {"type": "integer"},
        "due_at": _MAYBE_TIME,
        "targets": {"type": "array", "items": {"type": "string"}},
        "message_ids": {"type": "array", "items": {"type": "string"}},
        "acknowledged_by": {"type": ["string", "null"]},
    },
)

SCHEMAS: dict[str, Schema] = {
    "At": {
        "type": "object",
        "properties": {
            "atMobiles": {"type": "array", "items": _TEXT, "maxItems": 50},
            "atUserIds": {"type": "array", "items": _TEXT, "maxItems": 50},
            "atDingtalkIds": {
                "type": "array",
                "items": _TEXT,
                "maxItems": 50,
                "description": "Old clients' name for atUserIds.",
            },
            "isAtAll": {"type": "boolean", "description": "A JSON boolean; nothing else."},
        },
    },
    **_MESSAGES,
    "RobotMessage": {
        "oneOf": [_ref(name) for name in _MESSAGES],
        "discriminator": {
            "propertyName": "msgtype",
            "mapping": {
                "text": "#/components/schemas/TextMessage",
                "markdown": "#/components/schemas/MarkdownMessage",
                "link": "#/components/schemas/LinkMessage",
                "actionCard": "#/components/schemas/ActionCardMessage",
                "feedCard": "#/components/schemas/FeedCardMessage",
                "image": "#/components/schemas/ImageMessage",
                "file": "#/components/schemas/FileMessage",
                "oa": "#/components/schemas/OAMessage",
            },
        },
    },
    "SendRequest": _object(
        ["target", "message"],
        {"target": {"type": "string", "minLength": 1}, "message": _ref("RobotMessage")},
    ),
    "BatchRequest": _object(
        ["messages"],
        {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": _object(
                    ["target", "message"],
                    {
                        "target": {"type": "string", "minLength": 1},
                        "message": _ref("RobotMessage"),
                        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                ),
            }
        },
    ),
    "Accepted": _object(
        ["id", "status", "duplicate", "warnings"],
        {
            "id": {"type": "string"},
            "status": {"type": "string", "const": "queued"},
            "duplicate": {"type": "boolean", "description": "The Idempotency-Key was seen."},
            "warnings": _WARNINGS,
        },
    ),
    "BatchAccepted": _object(
        ["ids", "duplicates", "status", "warnings"],
        {
            "ids": {"type": "array", "items": {"type": "string"}},
            "duplicates": {"type": "array", "items": {"type": "boolean"}},
            "status": {"type": "string", "const": "queued"},
            "warnings": _WARNINGS,
        },
    ),
    "Warning": _object(
        ["pointer", "detail"],
        {
            "pointer": {"type": "string", "description": "JSON pointer of the ignored field."},
            "detail": {"type": "string"},
        },
    ),
    "Problem": _object(
        ["title", "status", "detail"],
        {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "pointer": {"type": "string", "description": "JSON pointer of the offending value."},
            "field": {"type": "string"},
            "rule": {"type": "string"},
        },
    ),
    "MessageSummary": _SUMMARY,
    "Attempt": _object(
        ["number", "outcome", "finished_at"],
        {
            "number": {"type": "integer"},
            "outcome": {
                "type": "string",
                "enum": ["delivered", "retry", "failed", "lease_expired"],
            },
            "started_at": _MAYBE_TIME,
            "finished_at": _TIME,
            "errcode": _ERRCODE,
            "error": {"type": ["string", "null"]},
        },
    ),
    "MessageDetail": {
        "allOf": [
            _ref("MessageSummary"),
            _object(
                ["payload", "attempt_history", "originals", "links"],
                {
                    "payload": {"type": "object", "description": "As stored, secrets masked."},
                    "reply": {"type": ["object", "null"]},
                    "idempotency_key": {"type": ["string", "null"]},
                    "lease_until": _MAYBE_TIME,
                    "attempt_history": {"type": "array", "items": _ref("Attempt")},
                    "originals": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "For a digest: the ids of the messages it carries.",
                    },
                    "links": {"type": "object"},
                },
            ),
        ]
    },
    "MessagePage": _object(
        ["items", "next_cursor"],
        {
            "items": {"type": "array", "items": _ref("MessageSummary")},
            "next_cursor": {"type": ["string", "null"]},
        },
    ),
    "TargetInfo": _object(
        ["name", "kind", "destination", "backlog", "sent_recently"],
        {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "destination": {"type": "string", "description": "Secrets masked."},
            "rate": {"type": "string"},
            "backlog": {"type": "integer"},
            "queued": {"type": "integer"},
            "sending": {"type": "integer"},
            "failed": {"type": "integer"},
            "sent_recently": {"type": "integer"},
            "window": {"type": "number"},
            "cooldown_until": _MAYBE_TIME,
            "next_slot_in": {"type": "number"},
            "last_error": {"type": ["string", "null"]},
            "last_errcode": _ERRCODE,
            "outage": {
                "type": ["object", "null"],
                "description": (
                    "While the target fails for transient causes: its queue rests, and one "
                    "message (the probe) tries again at next_probe_at."
                ),
                "required": ["since", "failures", "next_probe_at", "probing", "last_error"],
                "properties": {
                    "since": _TIME,
                    "failures": {"type": "integer"},
                    "next_probe_at": _TIME,
                    "probing": {"type": "boolean"},
                    "last_error": {"type": "string"},
                },
            },
        },
    ),
    "RetryFilter": {
        "type": "object",
        "description": "Which dead letters to queue again; every field narrows, {} takes all.",
        "properties": {
            "target": {"type": "string", "minLength": 1},
            "errcode": {
                "type": ["integer", "string"],
                "description": 'The last errcode, exactly (300001 and "300001" differ).',
            },
            "error": {
                "type": "string",
                "minLength": 1,
                "description": "A piece of the last error's text, case-sensitive.",
            },
            "failed_since": {**_TIME, "description": "Failed at or after (epoch seconds)."},
            "failed_before": {**_TIME, "description": "Failed before (epoch seconds)."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
            "dry_run": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
    "RetryResult": _object(
        ["retried", "ids", "more", "dry_run"],
        {
            "retried": {"type": "integer", "description": "How many were queued again."},
            "ids": {"type": "array", "items": {"type": "string"}, "description": "Oldest first."},
            "more": {
                "type": "boolean",
                "description": "More dead letters match beyond limit: send the filter again.",
            },
            "dry_run": {"type": "boolean"},
            "cancelled_left_out": {
                "type": "integer",
                "description": "Messages recalled while queued (errcode cancelled) that match "
                'the rest of the filter but were left out; errcode "cancelled" takes them.',
            },
        },
    ),
    "RetryRequest": {
        "type": "object",
        "description": "Optional: confirms sending a cancelled (recalled while queued) message.",
        "properties": {"resend_cancelled": {"type": "boolean"}},
        "additionalProperties": False,
    },
    "RecallRequest": {
        "type": "object",
        "description": "Optional: who recalls (recorded; the API token's label otherwise).",
        "properties": {"by": {"type": "string", "minLength": 1, "maxLength": 64}},
        "additionalProperties": False,
    },
    "RecallResult": _object(
        ["id", "target", "outcome", "recalled", "failed", "message"],
        {
            "id": {
                "type": "string",
                "description": "The message recalled (a digest for its originals).",
            },
            "asked": {"type": "string", "description": "The id in the request."},
            "target": {"type": "string"},
            "outcome": {
                "type": "string",
                "enum": ["recalled", "partly_recalled", "cancelled"],
                "description": "cancelled: it was still queued, and will not be sent.",
            },
            "recalled": {"type": "array", "items": {"type": "string"}},
            "failed": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "processQueryKey → DingTalk's reason: recall again to retry them.",
            },
            "already": {"type": "boolean", "description": "It had been recalled before."},
            "message": _ref("MessageSummary"),
        },
    ),
    "TimelineEvent": _EVENT,
    "Incident": _INCIDENT,
    "IncidentDetail": {
        "allOf": [
            _ref("Incident"),
            _object(["timeline"], {"timeline": {"type": "array", "items": _ref("TimelineEvent")}}),
        ]
    },
    "IncidentList": _object(["items"], {"items": {"type": "array", "items": _ref("Incident")}}),
    "AckRequest": {
        "type": "object",
        "description": "Optional: who acknowledges (the API token's label otherwise).",
        "properties": {"by": {"type": "string", "minLength": 1, "maxLength": 64}},
        "additionalProperties": False,
    },
    "TargetList": _object(["targets"], {"targets": {"type": "array", "items": _ref("TargetInfo")}}),
    "Health": _object(["status"], {"status": {"type": "string"}}),
    "DingTalkReply": _object(
        ["errcode", "errmsg"],
        {"errcode": {"type": "integer"}, "errmsg": {"type": "string"}},
    ),
}
