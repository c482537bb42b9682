"""What the dashboard's templates show, built from the relay's own JSON views.

The targets panel reads :meth:`Relay.target_views` (what ``GET /v1/targets`` answers), the list
reads :meth:`Relay.summary` of a page from ``message_page`` (``GET /v1/messages``), the detail
reads ``message_detail`` (``GET /v1/messages/{id}``): the dashboard computes nothing the API
does not, it only lays it out. Payloads arrive here with the relay's secrets already masked.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dingpush import DingPushError, Rate, parse_message
from dingpush.lowlevel import app_robot_template, notice_msg
from dingpush.web import TimeLabel, time_label, view_for

from ._dispatcher import DING_KIND
from ._relay import Relay
from .stores import OutboxMessage, Status

__all__ = [
    "AttemptRow",
    "Badge",
    "MessageRow",
    "TargetRow",
    "attempt_rows",
    "badge",
    "channel_payload",
    "list_rows",
    "message_row",
    "pretty_json",
    "target_rows",
]

#: A sign beside each status word, so status is never told by colour alone.
_ICONS = {
    "queued": "◷",
    "sending": "↻",
    "delivered": "✓",
    "digested": "⇢",
    "failed": "✕",
    "retry": "↺",
    "lease_expired": "⌛",
}
_PREVIEW_CHARS = 90


@dataclass(frozen=True, slots=True)
class Badge:
    """A status as a word with a sign (and a colour, which only repeats them)."""

    value: str
    label: str
    icon: str


def badge(value: str) -> Badge:
    return Badge(value, value.replace("_", " "), _ICONS.get(value, "•"))


def _short(text: str, limit: int = _PREVIEW_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.0f} min"
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


# -- targets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target in the panel: what ``GET /v1/targets`` says about it."""

    name: str
    kind: str
    destination: str
    description: str
    backlog: int
    queued: int
    sending: int
    failed: int
    sent: str
    rate: str
    cooldown_until: TimeLabel | None
    next_slot: str
    last_error: str | None
    last_errcode: typing.Any
    last_error_at: TimeLabel | None


def _sent(view: Mapping[str, typing.Any]) -> str:
    window = float(view["window"])
    rate = Rate.parse(str(view["rate"]))
    if rate.window == window:
        return f"{view['sent_recently']} of {rate.limit} in {_seconds(window)}"
    return f"{view['sent_recently']} in the last {_seconds(window)} (limit {rate})"


def target_rows(views: Sequence[Mapping[str, typing.Any]]) -> list[TargetRow]:
    """The panel's rows, from :meth:`Relay.target_views`."""
    rows = []
    for view in views:
        next_slot = float(view["next_slot_in"])
        rows.append(
            TargetRow(
                name=view["name"],
                kind=view["kind"],
                destination=view["destination"],
                description=view["description"],
                backlog=view["backlog"],
                queued=view["queued"],
                sending=view["sending"],
                failed=view["failed"],
                sent=_sent(view),
                rate=view["rate"],
                cooldown_until=time_label(view["cooldown_until"]),
                next_slot="now" if next_slot <= 0 else f"in {_seconds(next_slot)}",
                last_error=view["last_error"],
                last_errcode=view["last_errcode"],
                last_error_at=time_label(view["last_error_at"]),
            )
        )
    return rows


# -- messages -----------------------------------------------------------------------------------


def channel_payload(
    relay: Relay, target: str, payload: Mapping[str, typing.Any], kind: str | None = None
) -> tuple[Mapping[str, typing.Any], str | None]:
    """The payload as the target's channel carries it, for the renderer.

    Robots and pools take the stored body as is; app targets send it as an app robot's
    ``msgKey``/``msgParam`` or a work notification's ``msg`` (the library's own mapping). A
    DING (outbox ``kind`` :data:`DING_KIND`, an escalation step's) is drawn as a DING.
    """
    if kind == DING_KIND:
        return payload, "ding"
    found = relay.targets.get(target)
    kind = found.kind if found is not None else "robot"
    if kind in ("robot", "pool"):
        return payload, None
    try:
        message = parse_message(payload)
        if kind == "work-notice":
            return {"msg": notice_msg(message, placeholder=True)}, "work-notice"
        key, param = app_robot_template(message, placeholder=True)
    except DingPushError:
        return payload, None
    return {"msgKey": key, "msgParam": param}, "app-robot"


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message as the list shows it."""

    id: str
    status: Badge
    target: str
    kind: str
    preview: str
    attempts: int
    created: TimeLabel | None
    updated: TimeLabel | None
    due: TimeLabel | None
    delivered: TimeLabel | None
    last_error: str | None
    last_errcode: typing.Any
    digest_id: str | None
    carries: int


def message_row(
    relay: Relay, summary: Mapping[str, typing.Any], payload: Mapping[str, typing.Any]
) -> MessageRow:
    """A row from :meth:`Relay.summary` and the (masked) payload it previews."""
    shown, channel = channel_payload(relay, summary["target"], payload, summary["kind"])
    status = str(summary["status"])
    return MessageRow(
        id=summary["id"],
        status=badge(status),
        target=summary["target"],
        kind=summary["kind"],
        preview=_short(view_for(shown, channel).preview) or "(empty)",
        attempts=summary["attempts"],
        created=time_label(summary["created_at"]),
        updated=time_label(summary["updated_at"]),
        due=time_label(summary["due_at"]) if status == Status.QUEUED else None,
        delivered=time_label(summary["delivered_at"]),
        last_error=summary["last_error"],
        last_errcode=summary["last_errcode"],
        digest_id=summary["digest_id"],
        carries=summary["carries"],
    )


def list_rows(relay: Relay, messages: Sequence[OutboxMessage]) -> list[MessageRow]:
    """Rows of a page of the outbox, previews drawn from payloads with secrets masked."""
    return [
        message_row(relay, relay.summary(m), json.loads(relay.redact.known(m.payload)))
        for m in messages
    ]


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One delivery attempt in the detail view."""

    number: int
    outcome: Badge
    started: TimeLabel | None
    finished: TimeLabel | None
    errcode: typing.Any
    error: str | None


def attempt_rows(detail: Mapping[str, typing.Any]) -> list[AttemptRow]:
    """The attempt history of ``message_detail``'s answer."""
    return [
        AttemptRow(
            number=a["number"],
            outcome=badge(a["outcome"]),
            started=time_label(a["started_at"]),
            finished=time_label(a["finished_at"]),
            errcode=a["errcode"],
            error=a["error"],
        )
        for a in detail["attempt_history"]
    ]


def pretty_json(value: typing.Any) -> str:
    """JSON laid out for reading (the stored text is compact; the content is the same)."""
    return json.dumps(value, ensure_ascii=False, indent=2)
