"""Recall through the relay: take a delivered app-robot message back out of the chat (§11).

The dispatcher keeps every ``processQueryKey`` of an app-robot send in the message's reply
(``process_query_keys``: each part's, for a split message; the group's
``open_conversation_id``). :func:`recall_message` recalls them through the library
(``AsyncApp.recall``: 20 keys a call; a one-to-one message only within 24 hours) and records
the recall on the message (``reply["recall"]``) and on the timeline of the incident the
message belongs to. A digest is one message: recalling it, or any original it carries,
recalls all of its keys. A message not sent yet is cancelled instead (it becomes a dead letter
that says who cancelled it, whatever its target); a delivered webhook robot's message cannot
be recalled at all (no key, §11).

The API (``POST /v1/messages/{id}/recall``) and the dashboard's Recall button both call here.
"""

from __future__ import annotations

import asyncio
import logging
import typing
import weakref
from collections.abc import Mapping, Sequence

from dingpush import APIError, DingPushError, QueryKeyExpired, RecallResult, RetryPolicy

from ._dispatcher import DING_KIND
from ._http import HTTPProblem
from ._incidents import EventKind, TimelineEvent
from ._relay import Relay
from ._targets import RelayTarget
from .stores import OutboxMessage, Status

__all__ = ["recall_message"]

log = logging.getLogger("dingpush.relay")


def _keys(message: OutboxMessage) -> list[str]:
    reply: Mapping[str, typing.Any] = message.reply or {}
    keys = reply.get("process_query_keys")
    if not keys and reply.get("process_query_key"):  # delivered before every key was kept
        keys = [reply["process_query_key"]]
    return [str(k) for k in keys or ()]


def _recalled_before(message: OutboxMessage) -> list[str]:
    """The keys (or DING ids) earlier recalls of ``message`` recalled."""
    recall = (message.reply or {}).get("recall")
    return [str(k) for k in recall.get("recalled", ())] if isinstance(recall, Mapping) else []


def _already_recalled(
    relay: Relay, message: OutboxMessage, answer: dict[str, typing.Any], done: list[str]
) -> dict[str, typing.Any]:
    """The answer when earlier recalls took everything there was: nothing is asked again."""
    return {
        **answer,
        "outcome": "recalled",
        "recalled": done,
        "failed": {},
        "already": True,
        "message": relay.summary(message),
    }


#: One recall at a time per relay: two people pressing Recall together must not each record
#: what the other's call did as "failed" (DingTalk reports a key recalled twice as failed).
_LOCKS: weakref.WeakKeyDictionary[Relay, asyncio.Lock] = weakref.WeakKeyDictionary()


async def recall_message(
    relay: Relay, message_id: str, *, who: str, via: str
) -> dict[str, typing.Any]:
    """Recall (or, not sent yet, cancel) a message; the answer ``POST …/recall`` gives.

    Raises ``HTTPProblem``: 409 when the message cannot be recalled (a webhook robot's, being
    sent, failed, past DingTalk's 24 h window), 502/503 when DingTalk refused or failed.
    """
    lock = _LOCKS.setdefault(relay, asyncio.Lock())
    async with lock:
        return await _recall(relay, message_id, who=who, via=via)


async def _recall(relay: Relay, message_id: str, *, who: str, via: str) -> dict[str, typing.Any]:
    asked = await relay.store.get(message_id)
    message = asked
    if asked.status is Status.DIGESTED and asked.digest_id:
        message = await relay.store.get(asked.digest_id)  # a digest recalls as one message
    originals = [o.id for o in await relay.store.digest_originals(message.id)]
    target = relay.targets.get(message.target)
    if target is None and message.status is not Status.QUEUED:
        raise HTTPProblem(
            409,
            f"message {message.id!r} went to target {message.target!r}, which is no longer "
            "configured: recall it with `dingpush recall` and the app's credentials",
        )
    now = relay.clock.time()
    answer: dict[str, typing.Any] = {"id": message.id, "target": message.target, "asked": asked.id}
    if message.status is Status.QUEUED:
        reason = f"cancelled by {who} via {via} before it was sent (a recall of a queued message)"
        cancelled = await relay.store.cancel(message.id, reason=reason)
        relay.metrics.count("cancelled", message.target)
        await _on_timeline(relay, [message.id, *originals], now, who, "cancelled before sending")
        log.info("message %s of %s cancelled by %s via %s", message.id, message.target, who, via)
        return {
            **answer,
            "outcome": "cancelled",
            "recalled": [],
            "failed": {},
            "message": relay.summary(cancelled),
        }
    assert target is not None
    if message.status is Status.SENDING:
        raise HTTPProblem(
            409,
            f"message {message.id!r} is being sent right now: recall it once it is delivered "
            "(in a few seconds)",
            headers={"Retry-After": "2"},
        )
    if message.status is not Status.DELIVERED:
        raise HTTPProblem(
            409,
            f"message {message.id!r} is {message.status}: it never reached the chat, so there "
            "is nothing to recall",
        )
    refusal = target.recall_refusal()
    if refusal is not None:
        raise HTTPProblem(409, f"target {target.name!r}: {refusal}")
    if message.kind == DING_KIND:
        return await _recall_ding(relay, target, message, answer, originals, who=who, via=via)
    keys = _keys(message)
    if not keys:
        raise HTTPProblem(
            409,
            f"DingTalk returned no processQueryKey for message {message.id!r}, so it cannot be "
            "recalled (protocol §11)",
        )
    done = _recalled_before(message)
    todo = [k for k in keys if k not in done]
    if not todo:
        return _already_recalled(relay, message, answer, done)
    group = (message.reply or {}).get("open_conversation_id")
    try:
        result = await target.recall(todo, group=group if isinstance(group, str) else None)
    except QueryKeyExpired as exc:
        raise HTTPProblem(
            409,
            f"too late to recall message {message.id!r}: DingTalk recalls one-to-one messages "
            f"only within 24 hours of sending (protocol §11.2). {relay.redact(str(exc))}",
        ) from None
    except DingPushError as exc:
        # Keys recalled by the calls before the failing one are recalled: keep them, so a
        # second recall asks only for the rest.
        partial = getattr(exc, "partial", None)
        if isinstance(partial, RecallResult) and partial.recalled:
            record = {
                "at": now,
                "by": who,
                "via": via,
                "recalled": [*done, *partial.recalled],
                "failed": dict(partial.failed),
            }
            await relay.store.note_recall(message.id, record)
            if not done:
                relay.metrics.count("recalled", target.name)
        raise _dingtalk_problem(relay, exc) from None
    recalled = [*done, *result.recalled]
    failed = dict(result.failed)
    record = {"at": now, "by": who, "via": via, "recalled": recalled, "failed": failed}
    noted = await relay.store.note_recall(message.id, record)
    if result.recalled and not done:  # once a message, however many recalls it takes
        relay.metrics.count("recalled", target.name)
    await _on_timeline(relay, [message.id, *originals], now, who, f"via {via}")
    log.info(
        "message %s of %s recalled by %s via %s: %d of %d keys",
        message.id,
        target.name,
        who,
        via,
        len(recalled),
        len(keys),
    )
    return {
        **answer,
        "outcome": "recalled" if not failed else "partly_recalled",
        "recalled": recalled,
        "failed": failed,
        "message": relay.summary(noted),
    }


async def _recall_ding(
    relay: Relay,
    target: RelayTarget,
    message: OutboxMessage,
    answer: dict[str, typing.Any],
    originals: Sequence[str],
    *,
    who: str,
    via: str,
) -> dict[str, typing.Any]:
    """A delivered DING (an escalation step's): recalled by its ``openDingId``s (§14.2)."""
    ids = [str(i) for i in (message.reply or {}).get("open_ding_ids") or ()]
    if not ids:
        raise HTTPProblem(
            409,
            f"DingTalk returned no openDingId for the DING {message.id!r}, so it cannot be "
            "recalled (protocol §14.2)",
        )
    done = _recalled_before(message)
    todo = [i for i in ids if i not in done]
    if not todo:
        return _already_recalled(relay, message, answer, done)
    now = relay.clock.time()
    try:
        recalled = [*done, *await target.recall_ding(todo)]
    except DingPushError as exc:
        raise _dingtalk_problem(relay, exc) from None
    record = {"at": now, "by": who, "via": via, "recalled": recalled, "failed": {}}
    noted = await relay.store.note_recall(message.id, record)
    if not done:
        relay.metrics.count("recalled", target.name)
    await _on_timeline(relay, [message.id, *originals], now, who, f"the DING, via {via}")
    log.info("DING %s of %s recalled by %s via %s", message.id, target.name, who, via)
    return {
        **answer,
        "outcome": "recalled",
        "recalled": recalled,
        "failed": {},
        "message": relay.summary(noted),
    }


def _dingtalk_problem(relay: Relay, exc: DingPushError) -> HTTPProblem:
    text = relay.redact(str(exc))
    if RetryPolicy.retryable(exc):
        return HTTPProblem(
            503,
            f"DingTalk did not recall it this time, retry later: {text}",
            headers={"Retry-After": "5"},
        )
    code = exc.errcode if isinstance(exc, APIError) else None
    return HTTPProblem(502, f"DingTalk refused the recall ({code}): {text}")


async def _on_timeline(
    relay: Relay, message_ids: Sequence[str], now: float, who: str, detail: str
) -> None:
    """A RECALLED event on the incident each message belongs to (each incident once)."""
    seen: set[int] = set()
    for message_id in message_ids:
        incident = await relay.incidents.find_by_message(message_id)
        if incident is None or incident.number in seen:
            continue
        seen.add(incident.number)
        event = TimelineEvent(now, EventKind.RECALLED, who, f"{detail} ({message_id})")
        await relay.incidents.record(incident.number, event)
